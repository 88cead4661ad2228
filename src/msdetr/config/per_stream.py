"""Config sections keyed by stream name (`supervision.loss_weights`, `supervision.classification_loss`).

The keys are the declared streams (`msdetr.methods.streams`: the built-in ones and those of
registered method units), so a method adding a stream adds its keys without touching the config
schema. A stream not set takes its declared default. Unknown stream names are errors, as any
unknown key; `dataclass_io` reads and writes these sections through `from_config` / `to_config`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

from msdetr.errors import MsdetrError
from msdetr.methods.streams import StreamSpec, declared


class NamedValues:
    """Values by name with declared defaults (`as_dict`: every name, defaults included), kept in
    `_values` (the names set); equal, printed and deep-copied by value."""

    _values: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"

    def __deepcopy__(self, memo: dict) -> NamedValues:
        return type(self)(**copy.deepcopy(self._values, memo))


class PerStream(NamedValues):
    """One value per declared stream, read and set as attributes (`weights.hybrid`)."""

    # the value of a stream nobody set, from its declaration
    default: ClassVar[Callable[[StreamSpec], Any]]

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_values", {})
        for name, value in values.items():
            setattr(self, name, value)

    @staticmethod
    def names() -> list[str]:
        return list(declared())

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__["_values"]
        if name not in values:
            spec = declared().get(name)
            if spec is None:
                raise AttributeError(f"{type(self).__name__} has no stream {name!r}; streams: {self.names()}")
            values[name] = type(self).default(spec)
        return values[name]

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in declared():
            raise AttributeError(f"{type(self).__name__}: unknown stream {name!r}; streams: {self.names()}")
        self._values[name] = value

    def replace(self, **changes: Any) -> PerStream:
        """A copy with `changes` (stream -> value) applied (what `dataclasses.replace` does for the
        other sections)."""
        return type(self)(**{**self._values, **changes})

    def as_dict(self) -> dict[str, Any]:
        """Every declared stream -> its value (defaults included)."""
        return {name: getattr(self, name) for name in self.names()}


    # --- dataclass_io ---------------------------------------------------------------------------

    value_type: ClassVar[Any]

    @classmethod
    def from_config(cls, data: Any, where: str, key: str, convert: Callable[..., Any]) -> PerStream:
        if not isinstance(data, dict):
            raise MsdetrError(f"{where}: '{key}' must be a mapping, got {data!r}")
        names = cls.names()
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise MsdetrError(f"{where}: unknown key '{key}.{unknown[0]}'; valid keys here: {', '.join(sorted(names))}")
        return cls(**{name: convert(cls.value_type, value, where, f"{key}.{name}") for name, value in data.items()})

    def to_config(self, convert: Callable[[Any], Any]) -> dict[str, Any]:
        return {name: convert(value) for name, value in self.as_dict().items()}
