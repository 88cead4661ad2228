"""Where each config value came from: a preset or YAML file, one of its `base:` files, or a `--set`.

The loader records every leaf key a source sets, in the order the sources are applied (bases
first, then the file, then each `--set`), so an error about a value can name the source that
gave it: `--set supervision.hybrid.k=0: supervision.hybrid.k is 0; it must be ...`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Origins:
    """Dotted key -> (source, order of application). Values nobody set (defaults) have no entry."""

    def __init__(self, default: str):
        self.default = default  # named for defaults (the top config file, or the checkpoint)
        self._sources: dict[str, tuple[str, int]] = {}
        self._count = 0

    def record(self, data: dict[str, Any], source: str, prefix: str = "") -> None:
        """Note `source` as the origin of every leaf of the nested mapping `data`."""
        if not prefix:
            self._count += 1
        for key, value in data.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                self.record(value, source, dotted)
            else:
                # a later source replaces the whole value: forget origins of its former sub-keys
                for old in [k for k in self._sources if k.startswith(dotted + ".")]:
                    del self._sources[old]
                self._sources[dotted] = (source, self._count)

    def _lookup(self, key: str) -> tuple[str, int] | None:
        parts = key.split(".")
        for end in range(len(parts), 0, -1):  # the key itself, else the mapping that set it whole
            found = self._sources.get(".".join(parts[:end]))
            if found is not None:
                return found
        inside = [found for k, found in self._sources.items() if k.startswith(key + ".")]
        return max(inside, key=lambda f: f[1]) if inside else None  # a mapping: its latest sub-key

    def of(self, key: str) -> str:
        """The source that set `key` (the default source when nothing did)."""
        found = self._lookup(key)
        return found[0] if found else self.default

    def latest(self, keys: Iterable[str]) -> str:
        """The source applied last among those that set one of `keys`: for a pair of options
        that do not fit together, the one that made the combination (usually a --set)."""
        found = [f for f in (self._lookup(k) for k in keys) if f is not None]
        return max(found, key=lambda f: f[1])[0] if found else self.default
