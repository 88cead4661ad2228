"""Strict config loading: base inheritance, dotted overrides, errors that name the key and file."""

from __future__ import annotations

import pytest

from msdetr.config.loader import dump_config, load_config, parse_override, save_config
from msdetr.errors import MsdetrError


def write(path, text):
    path.write_text(text)
    return path


def test_base_inheritance_merges_sections(tmp_path):
    parent = write(tmp_path / "parent.yaml", "name: parent\nmodel:\n  num_queries: 50\n  hidden_dim: 64\n")
    (tmp_path / "sub").mkdir()
    child = write(tmp_path / "sub" / "child.yaml", "base: ../parent.yaml\nname: child\nmodel:\n  num_queries: 20\n")
    cfg = load_config(str(child))
    assert (cfg.name, cfg.model.num_queries, cfg.model.hidden_dim) == ("child", 20, 64)
    assert load_config(str(parent)).model.num_queries == 50


def test_base_can_be_a_preset_name(tmp_path):
    child = write(tmp_path / "c.yaml", "base: msdetr_r50_300\nmodel:\n  num_queries: 100\n")
    cfg = load_config(str(child))
    assert cfg.model.num_queries == 100 and cfg.model.dim_feedforward == 2048


def test_unknown_key_in_a_file_names_file_and_key(tmp_path):
    write(tmp_path / "parent.yaml", "model:\n  num_querys: 5\n")
    child = write(tmp_path / "child.yaml", "base: parent.yaml\n")
    with pytest.raises(MsdetrError) as err:
        load_config(str(child))
    assert "parent.yaml" in str(err.value) and "model.num_querys" in str(err.value)


def test_misspelled_section_is_an_error(tmp_path):
    bad = write(tmp_path / "bad.yaml", "trian:\n  epochs: 3\n")
    with pytest.raises(MsdetrError, match="unknown key 'trian'"):
        load_config(str(bad))


def test_wrong_type_is_an_error(tmp_path):
    bad = write(tmp_path / "bad.yaml", "train:\n  epochs: three\n")
    with pytest.raises(MsdetrError, match="train.epochs"):
        load_config(str(bad))


def test_base_loop_is_reported(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(MsdetrError, match="loop"):
        load_config(str(tmp_path / "a.yaml"))


def test_dotted_overrides_parse_yaml_values():
    cfg = load_config(
        "tiny",
        [
            "model.num_queries=900",
            "train.schedule.drop_epochs=[8, 11]",
            "train.optimizer.lr=1e-4",
            "eval.nms_iou=null",
            "name=2024",
        ],
    )
    assert cfg.model.num_queries == 900
    assert cfg.train.schedule.drop_epochs == [8, 11]
    assert cfg.train.optimizer.lr == pytest.approx(1e-4)
    assert cfg.eval.nms_iou is None and cfg.name == "2024"


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.num_querys=5", "unknown key 'model.num_querys'"),
        ("model.num_queries.x=5", "has no sub-keys"),
        ("model.num_queries", "expected key=value"),
        ("train.amp=fp8", "'train.amp' is 'fp8'"),
    ],
)
def test_bad_overrides_name_the_override(override, message):
    with pytest.raises(MsdetrError) as err:
        parse_override(override)
    assert "--set" in str(err.value) and message in str(err.value)


def test_inconsistent_sections_are_an_error():
    with pytest.raises(MsdetrError, match="mixed_supervision"):
        load_config("msdetr_r50_300", ["model.mixed_supervision.enabled=false"])
    with pytest.raises(MsdetrError, match="train.batch_size"):
        load_config("tiny", ["train.batch_size=0"])


def test_unknown_preset_lists_presets():
    with pytest.raises(MsdetrError, match="msdetr_r50_300"):
        load_config("no_such_preset")


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config("msdetr_pp_r50_900", ["train.epochs=3"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(str(tmp_path / "config.yaml")) == cfg
    assert "num_queries: 900" in dump_config(cfg)
