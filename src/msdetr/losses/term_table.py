"""Named scalar loss terms kept as a few stacked tensors until a name is looked up.

The batched criterion computes the terms of many tasks as rows of a few tensors ((T,) per
term and group). Splitting them into dozens of named 0-d tensors costs a view operation
each, for every step, although the training step only needs their values on the host
(`host_values`: one transfer for all of them). `TermTable` is a mutable mapping name ->
0-d tensor that makes the views on first access only; entries may also be set directly.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import torch
from torch import Tensor


class TermTable(MutableMapping[str, Tensor]):
    """name -> 0-d tensor. `add_block(names, values)` registers len(names) entries backed by
    the 1-d tensor `values` (entry i is values[i]); nothing is split until accessed."""

    def __init__(self) -> None:
        self._items: dict[str, Tensor | None] = {}  # None: still inside a block
        self._blocks: list[tuple[list[str], Tensor]] = []

    def reserve(self, names: list[str]) -> None:
        """Fix the iteration order of entries that blocks will add later."""
        for name in names:
            self._items.setdefault(name, None)

    def add_block(self, names: list[str | None], values: Tensor) -> None:
        """values: (len(names),) tensor; entry names[i] is values[i] (skipped where None).
        Names must be new (or only reserved)."""
        if values.shape != (len(names),):
            raise ValueError(f"term block: {len(names)} names for values of shape {tuple(values.shape)}")
        for name in names:
            if name is not None:
                self._items[name] = None
        self._blocks.append((list(names), values))

    def _materialize(self) -> None:
        for names, values in self._blocks:
            for name, value in zip(names, values.unbind(0)):
                if name is not None and self._items.get(name, 0) is None:
                    self._items[name] = value
        self._blocks = []

    def __getitem__(self, name: str) -> Tensor:
        if self._blocks:
            self._materialize()
        return self._items[name]

    def __setitem__(self, name: str, value: Tensor) -> None:
        if self._blocks:
            self._materialize()
        self._items[name] = value

    def __delitem__(self, name: str) -> None:
        if self._blocks:
            self._materialize()
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"TermTable({dict(self.items())!r})"

    def host_values(self) -> dict[str, float]:
        """All entries as Python floats, detached, with one device-to-host transfer."""
        if not self._items:
            return {}
        parts, names = [], []
        pending = {name for block_names, _ in self._blocks for name in block_names if name is not None}
        for block_names, values in self._blocks:
            parts.append(values.detach().float())
            names += block_names
        for name, value in self._items.items():
            if name not in pending:
                parts.append(value.detach().float().reshape(1))
                names.append(name)
        flat = parts[0] if len(parts) == 1 else torch.cat([p.to(parts[0].device) for p in parts])
        by_name = {name: value for name, value in zip(names, flat.tolist()) if name is not None}
        return {name: by_name[name] for name in self._items}


def host_values(terms: MutableMapping[str, Tensor]) -> dict[str, float]:
    """`terms` (a `TermTable` or a plain dict of 0-d tensors) as floats, with one transfer."""
    if isinstance(terms, TermTable):
        return terms.host_values()
    if not terms:
        return {}
    values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]).tolist()
    return dict(zip(terms, values))
