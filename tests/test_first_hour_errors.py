"""The first hour with a new method: errors that name the right place and the fix (issue 20).

No ImageNet download without network, a preset's split names on a `msdetr data synth` folder,
images with more objects than queries, and `--resume` with an edited config.yaml.
"""

from __future__ import annotations

import json
import logging
import urllib.error
from pathlib import Path

import pytest
import torch

from msdetr.cli import main
from msdetr.config.dataclass_io import to_dict
from msdetr.config.loader import config_from_dict, load_config, save_config
from msdetr.config.model import BackboneConfig
from msdetr.data.build import resolve_split
from msdetr.data.coco_dataset import CocoDataset
from msdetr.data.synthetic import create_synthetic_dataset
from msdetr.engine.data_setup import crowded_images_warning
from msdetr.engine.resume_config import check_config_not_edited, set_option
from msdetr.engine.trainer import Trainer
from msdetr.errors import MsdetrError
from msdetr.modeling.backbone import Backbone
from test_train_support import tiny_run_config


def test_imagenet_download_without_network_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty hub cache

    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(MsdetrError) as err:
        Backbone(BackboneConfig(name="resnet18", weights="imagenet"))
    message = str(err.value)
    assert message.startswith("model.backbone.weights: imagenet: the ImageNet weights of resnet18 could not be "
                              "downloaded"), message
    assert "Temporary failure in name resolution" in message
    expected_file = tmp_path / "torch_home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected_file) in message  # where to put the file by hand
    assert "--set model.backbone.weights=null" in message and "--init-backbone" in message
    assert "\n" not in message


def test_preset_split_names_on_a_synth_folder_name_the_set(tmp_path):
    root = create_synthetic_dataset(tmp_path / "synth", train=2, val=1, size=32, seed=0)
    cfg = load_config("ddetr_r50_300", [f"data.root={root}"])  # splits train2017 / val2017
    with pytest.raises(MsdetrError) as err:
        resolve_split(cfg.data, "train")
    message = str(err.value)
    assert "no split named 'train2017'" in message
    assert message.endswith("add --set data.train_split=train --set data.val_split=val"), message
    fixed = load_config("ddetr_r50_300", [f"data.root={root}", "data.train_split=train", "data.val_split=val"])
    assert resolve_split(fixed.data, "train").name == "train"
    assert resolve_split(fixed.data, "val").name == "val"


def test_unrelated_split_names_keep_the_plain_error(tmp_path):
    root = create_synthetic_dataset(tmp_path / "synth", train=1, val=1, size=32, seed=0)
    (root / "annotations" / "instances_val.json").rename(root / "annotations" / "instances_holdout.json")
    cfg = load_config("ddetr_r50_300", [f"data.root={root}"])
    with pytest.raises(MsdetrError, match=r"no split named 'val2017' \(found: holdout, train\); name the split "
                                          r"exactly$"):
        resolve_split(cfg.data, "val")


def write_coco(path: Path, objects_per_image: list[int]) -> Path:
    """A COCO json with the given number of boxes per image (no image files are read)."""
    images = [{"id": i + 1, "file_name": f"{i}.png", "width": 100, "height": 100}
              for i in range(len(objects_per_image))]
    annotations = []
    for i, count in enumerate(objects_per_image):
        for j in range(count):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1,
                                "bbox": [j, j, 10, 10], "area": 100, "iscrowd": 0})
    annotations.append({"id": len(annotations) + 1, "image_id": 2, "category_id": 1,  # crowd: not an object
                        "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 1})
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "thing"}]}))
    return path


def test_images_with_more_objects_than_queries_are_reported(tmp_path):
    dataset = CocoDataset(write_coco(tmp_path / "train.json", [6, 4, 0, 5]), tmp_path)
    assert dataset.objects_per_image.tolist() == [6, 4, 0, 5]
    message = crowded_images_warning(dataset, num_queries=4)
    assert message is not None and "\n" not in message
    assert message.startswith("data: 2 of 4 training images in ")
    assert "model's 4 one-to-one queries" in message and "most in one image: 6" in message
    assert "raise model.num_queries above 6" in message
    assert crowded_images_warning(dataset, num_queries=6) is None


def test_trainer_warns_once_at_setup(tmp_path, monkeypatch):
    import msdetr.engine.trainer as trainer_module

    cfg = tiny_run_config(tmp_path, train_images=2, val_images=1, epochs=1, max_steps=1, eval_every=0,
                          vis_images=0)
    cfg.model.num_queries = 1  # the synthetic images hold 1-12 shapes
    cfg.model.backbone.freeze_at = "all"
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    setup_logger = trainer_module.setup_logger

    def setup_and_listen(*args, **kwargs):
        logger = setup_logger(*args, **kwargs)
        logger.addHandler(handler)
        return logger

    monkeypatch.setattr(trainer_module, "setup_logger", setup_and_listen)
    try:
        Trainer(cfg, tmp_path / "run", verbose=False).fit()  # one step
    finally:
        logging.getLogger("msdetr.train").removeHandler(handler)
    warnings = [m for m in seen if "one-to-one queries" in m]
    assert len(warnings) == 1 and "model's 1 one-to-one queries" in warnings[0], seen


# --- --resume and an edited config.yaml ---------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A one-step tiny run: <run>/last.pt and <run>/config.yaml."""
    tmp = tmp_path_factory.mktemp("resume_edit")
    cfg = tiny_run_config(tmp, train_images=2, val_images=1, epochs=1, max_steps=1, eval_every=0, vis_images=0)
    cfg.model.backbone.freeze_at = "all"
    run = tmp / "run"
    Trainer(cfg, run, verbose=False).fit()
    assert (run / "last.pt").is_file() and (run / "config.yaml").is_file()
    return run


def edited_copy(run: Path, tmp_path: Path, edit: dict) -> Path:
    """A copy of the run folder whose config.yaml has `edit` ({dotted key: value}) applied."""
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "last.pt").write_bytes((run / "last.pt").read_bytes())
    cfg = load_config(str(run / "config.yaml"))
    data = to_dict(cfg)
    for key, value in edit.items():
        *path, last = key.split(".")
        target = data
        for part in path:
            target = target[part]
        target[last] = value
    save_config(config_from_dict(data), copy / "config.yaml")
    return copy


def test_resume_refuses_to_overwrite_an_edited_config(trained_run, tmp_path, capsys):
    run = edited_copy(trained_run, tmp_path, {"train.epochs": 3, "train.optimizer.lr": 5e-4})
    before = (run / "config.yaml").read_text()
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"{run / 'config.yaml'}: edited since {run / 'last.pt'} was saved" in err
    assert "train.epochs: 1 -> 3" in err and "train.optimizer.lr: 0.001 -> 0.0005" in err
    assert "--set train.epochs=3 --set train.optimizer.lr=0.0005" in err
    assert (run / "config.yaml").read_text() == before  # the edit is kept


def test_resume_with_the_edit_as_set_passes_the_check(trained_run, tmp_path):
    run = edited_copy(trained_run, tmp_path, {"train.epochs": 3})
    saved = load_config(str(trained_run / "config.yaml"))
    resumed = load_config(str(trained_run / "config.yaml"), ["train.epochs=3"])
    check_config_not_edited(run, run / "last.pt", saved, resumed)  # the --set applies the edit: fine
    check_config_not_edited(trained_run, trained_run / "last.pt", saved, saved)  # untouched file: fine
    with pytest.raises(MsdetrError, match="train.epochs: 1 -> 3"):
        check_config_not_edited(run, run / "last.pt", saved, saved)
    # a --set on a config.yaml that was not edited is not an edit
    check_config_not_edited(trained_run, trained_run / "last.pt", saved, resumed)


def test_resume_with_an_edited_model_points_to_a_new_run(trained_run, tmp_path, capsys):
    run = edited_copy(trained_run, tmp_path, {"model.num_queries": 12})
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model.num_queries: 8 -> 12" in err and "a resumed run keeps its model" in err
    assert f"msdetr train --config {run / 'config.yaml'} --init-weights {run / 'last.pt'}" in err


def test_set_options_read_back_as_the_same_value():
    from msdetr.config.loader import parse_override

    for key, value in [("train.epochs", 3), ("train.schedule.drop_epochs", [8, 11]), ("train.max_steps", None),
                       ("name", "my run"), ("train.amp", "bf16"), ("train.ema.enabled", True)]:
        text = set_option(key, value).removeprefix("--set ")
        if text.count("'") == 2:  # shell quoting
            text = text.replace("'", "")
        *path, last = key.split(".")
        nested = parse_override(text)
        for part in path:
            nested = nested[part]
        assert nested[last] == value, (key, text)
