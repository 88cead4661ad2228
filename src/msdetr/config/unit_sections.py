"""The method units' own config sections inside `model` and `supervision` (`methods.sections`).

`ModelConfig` and `SupervisionConfig` hold them in one field (`units`) that is written flat:
`model.mr_detr.enabled` in YAML, `cfg.model.mr_detr` in code (`WithUnitSections.__getattr__`),
`--set model.mr_detr.k=...` on the command line. A section nobody set is its dataclass's
defaults. Unknown names stay errors (`dataclass_io`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from msdetr.config.per_stream import NamedValues
from msdetr.errors import MsdetrError
from msdetr.methods.sections import declared_sections


class UnitSections(NamedValues):
    """The declared sections under one owner ("model" / "supervision"), each a dataclass instance."""

    owner: ClassVar[str]
    flat: ClassVar[bool] = True  # `dataclass_io` writes and reads the sections as keys of the owner

    def __init__(self, **values: Any) -> None:
        self._values: dict[str, Any] = dict(values)

    @classmethod
    def names(cls) -> list[str]:
        return list(declared_sections(cls.owner))

    @classmethod
    def section_type(cls, name: str) -> type:
        return declared_sections(cls.owner)[name]

    def get(self, name: str) -> Any:
        if name not in self._values:
            types = declared_sections(self.owner)
            if name not in types:
                raise AttributeError(name)
            self._values[name] = types[name]()
        return self._values[name]

    def as_dict(self) -> dict[str, Any]:
        return {name: self.get(name) for name in self.names()}

    @classmethod
    def from_flat(cls, data: dict[str, Any], where: str, path: str, convert: Callable[..., Any]) -> UnitSections:
        """The sections among the owner's keys `data` (already known to be declared)."""
        types = declared_sections(cls.owner)
        for name in data:
            if name not in types:
                raise MsdetrError(f"{where}: unknown key '{path}.{name}'")
        return cls(**{name: convert(types[name], value, where, f"{path}.{name}" if path else name)
                      for name, value in data.items()})

    def to_flat(self, convert: Callable[[Any], Any]) -> dict[str, Any]:
        return {name: convert(value) for name, value in self.as_dict().items()}


class ModelSections(UnitSections):
    owner = "model"


class SupervisionSections(UnitSections):
    owner = "supervision"


class WithUnitSections:
    """Mixin of `ModelConfig` / `SupervisionConfig`: a unit's section reads and is set as an attribute."""

    def __setattr__(self, name: str, value: Any) -> None:
        units = self.__dict__.get("units")
        if units is not None and name not in self.__dataclass_fields__ and name in units.names():
            units._values[name] = value
            return
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "units":
            raise AttributeError(name)
        try:
            return self.__dict__["units"].get(name)
        except (KeyError, AttributeError):
            raise AttributeError(f"{type(self).__name__} has no attribute or unit section {name!r}") from None
