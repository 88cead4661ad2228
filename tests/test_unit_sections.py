"""A method unit's own config sections (`model.<unit>`, `supervision.<unit>`): declared by the unit,
read from YAML and `--set`, written back flat, unknown names still errors; and per-stream report
keys of a unit's streams go to the longest stream name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from msdetr.config.dataclass_io import from_dict, to_dict
from msdetr.config.loader import load_config
from msdetr.config.model import ModelConfig
from msdetr.errors import MsdetrError
from msdetr.methods.registry import register, unregister
from msdetr.methods.unit import MethodUnit


@dataclass
class ToyModelSection:
    enabled: bool = False
    width: int = 4


@dataclass
class ToySupervisionSection:
    weight: float = 1.0


TOY = MethodUnit("toy_sections", model_section=ToyModelSection, supervision_section=ToySupervisionSection)


def test_a_units_sections_load_set_and_round_trip():
    with pytest.raises(MsdetrError, match="unknown key 'model.toy_sections'"):
        load_config("tiny", ["model.toy_sections.width=8"])
    register(TOY)
    try:
        cfg = load_config("tiny", ["model.toy_sections.width=8", "supervision.toy_sections.weight=0.5"])
        assert cfg.model.toy_sections == ToyModelSection(width=8)
        assert cfg.supervision.toy_sections.weight == 0.5
        data = to_dict(cfg.model)
        assert data["toy_sections"] == {"enabled": False, "width": 8} and "units" not in data
        assert from_dict(ModelConfig, data) == cfg.model
        with pytest.raises(MsdetrError, match="unknown key 'model.toy_sections.depth'"):
            load_config("tiny", ["model.toy_sections.depth=2"])
        with pytest.raises(MsdetrError, match="'model.toy_sections.width' must be an integer"):
            load_config("tiny", ["model.toy_sections.width=wide"])
        plain = ModelConfig()
        plain.toy_sections = ToyModelSection(enabled=True)  # set as an attribute: kept in the section
        assert to_dict(plain)["toy_sections"]["enabled"] is True and plain != ModelConfig()
    finally:
        unregister(TOY.name)
    with pytest.raises(AttributeError):
        ModelConfig().toy_sections  # noqa: B018


def test_report_keys_go_to_the_longest_stream_name():
    from msdetr.compare.report import stream_losses

    record = {"mr_sep.layer0.cls": 1.0, "mr_sep_dn.layer0.cls": 2.0, "mr_sep_dn.layer1.bbox": 3.0}
    assert stream_losses(record) == {"mr_sep": 1.0, "mr_sep_dn": 5.0}
