"""What a training run reports: weighted per-stream losses (metrics.jsonl, TensorBoard, loss.png),
1-based epochs, segm mAP as the headline and `best.pt` criterion of mask models
(`train.best_metric`), and progress bars that show the planned steps."""

from __future__ import annotations

import math
import sys
import types
from dataclasses import replace

import pytest
import torch
from tqdm import tqdm as real_tqdm

from msdetr.config.loader import load_config
from msdetr.config.supervision import LossWeights
from msdetr.engine import progress as progress_module
from msdetr.engine import trainer as trainer_module
from msdetr.engine.best_metric import resolve_best_metric
from msdetr.engine.curves import loss_axis_top, map_curves
from msdetr.engine.metrics_log import read_metrics
from msdetr.engine.progress import RunProgress
from msdetr.engine.stream_losses import stream_losses
from msdetr.engine.trainer import Trainer
from msdetr.errors import MsdetrError
from msdetr.evaluation import evaluate as evaluate_module
from msdetr.evaluation.coco_eval import SEGM_STAT_NAMES, STAT_NAMES, CocoMetrics
from test_train_support import tiny_run_config


class FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter (tensorboard need not be installed)."""

    instances: list[FakeWriter] = []

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def close(self) -> None:
        self.closed = True


def mask_run_config(tmp_path, **train):
    """tiny_run_config with the mask head (16 channels) and few mask points."""
    seg = load_config("tiny_seg")
    small = tiny_run_config(tmp_path, vis_images=0, **train)
    model = replace(small.model, mask_head=replace(seg.model.mask_head, mask_dim=16))
    supervision = replace(small.supervision, loss_weights=seg.supervision.loss_weights,
                          masks=replace(seg.supervision.masks, num_points=64, matcher_points=64))
    return replace(small, model=model, supervision=supervision)


def test_stream_losses_weight_and_group_the_terms():
    terms = {"one_to_one.layer0.cls": 1.0, "one_to_one.layer1.cls": 2.0, "one_to_one.layer1.giou": 0.5,
             "hybrid.layer0.bbox": 0.25, "encoder.cls": 3.0, "encoder.mask": 9.0, "not_a_term": 7.0}
    weights = {"one_to_one": LossWeights(cls=2.0, giou=4.0), "hybrid": LossWeights(bbox=3.0),
               "encoder": LossWeights(cls=0.5, mask=0.0)}
    out = stream_losses(terms, weights)
    assert out == pytest.approx({"loss.one_to_one": 2.0 * 3.0 + 4.0 * 0.5, "loss.hybrid": 0.75,
                                 "loss.encoder": 1.5})


def test_per_stream_weighted_losses_reach_metrics_tensorboard_and_loss_png(tmp_path, monkeypatch):
    FakeWriter.instances = []
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    cfg = tiny_run_config(tmp_path, train_images=4, val_images=2, epochs=1, vis_images=0, tensorboard=True,
                          eval_every=0)
    hybrid_like = cfg.supervision.loss_weights.replace(one_to_many=LossWeights(cls=3.0, bbox=1.0, giou=0.5))
    cfg = replace(cfg, supervision=replace(cfg.supervision, loss_weights=hybrid_like))
    result = Trainer(cfg, tmp_path / "run", verbose=False).fit()
    assert result.steps == 2

    train = read_metrics(tmp_path / "run", "train")
    assert [r["step"] for r in train] == [1, 2] and [r["epoch"] for r in train] == [1, 1]  # 1-based epochs
    for record in train:
        streams = {k: v for k, v in record.items() if k.startswith("loss.")}
        assert set(streams) == {"loss.one_to_one", "loss.one_to_many", "loss.encoder"}
        assert math.isclose(sum(streams.values()), record["loss"], rel_tol=1e-5)
    epoch = read_metrics(tmp_path / "run", "epoch")[-1]
    assert epoch["epoch"] == 1
    assert math.isclose(epoch["loss"], sum(r["loss"] for r in train) / 2, rel_tol=1e-6)
    # the epoch's per-term values are unweighted: weighting them gives the weighted stream loss
    weights = cfg.supervision.loss_weights.one_to_many
    o2m = sum(getattr(weights, k.rsplit(".", 1)[1]) * v for k, v in epoch.items() if k.startswith("one_to_many."))
    assert math.isclose(o2m, epoch["loss.one_to_many"], rel_tol=1e-5)
    assert read_metrics(tmp_path / "run", "eval")[-1]["epoch"] == 1

    (writer,) = FakeWriter.instances
    assert writer.closed and writer.log_dir == str(tmp_path / "run" / "tensorboard")
    tagged = {(tag, step): value for tag, value, step in writer.scalars}
    for record in train:
        for stream in ("one_to_one", "one_to_many", "encoder"):
            key = f"loss.{stream}"
            assert tagged[(f"train/{key}", record["step"])] == pytest.approx(record[key])
    assert (tmp_path / "run" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_axis_leaves_out_the_first_steps_spike():
    totals = [100.0] + [10.0] * 19 + [12.0]
    assert loss_axis_top(totals) == pytest.approx(1.15 * 12.0)


def fake_evaluations(values):
    """An `evaluate` stand-in returning CocoMetrics with the given (bbox_mAP, segm_mAP) in turn."""
    calls = iter(values)

    def fake(*args, **kwargs):
        bbox, segm = next(calls)
        stats = {name: bbox for name in STAT_NAMES}
        stats.update({name: segm for name in SEGM_STAT_NAMES})
        return CocoMetrics(stats=stats, per_class={}, num_images=2)

    return fake


@pytest.mark.slow
def test_mask_model_keeps_best_pt_by_segm_map(tmp_path, monkeypatch):
    # epoch 1: better boxes, epoch 2: better masks -> a mask model keeps epoch 2
    monkeypatch.setattr(trainer_module, "evaluate", fake_evaluations([(0.5, 0.1), (0.2, 0.3)]))
    cfg = mask_run_config(tmp_path, train_images=2, val_images=2, epochs=2, mixed=False, eval_every=1)
    result = Trainer(cfg, tmp_path / "run", verbose=False).fit()
    assert result.best_metric == "segm_mAP" and result.best_map == pytest.approx(0.3)
    best = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=False)
    assert best["metrics"]["segm_mAP"] == pytest.approx(0.3)
    final = (tmp_path / "run" / "metrics_final.txt").read_text().splitlines()
    assert final[0] == "segm_mAP: 0.3000" and "bbox_mAP: 0.2000" in final
    assert "best segm_mAP 0.3000" in (tmp_path / "run" / "train.log").read_text()
    evals = read_metrics(tmp_path / "run", "eval")
    assert [r["epoch"] for r in evals] == [1, 2]
    curves = map_curves(evals)  # map.png: the segm curves next to the bbox ones
    assert curves["segm mAP@[.5:.95]"] == pytest.approx([0.1, 0.3])
    assert curves["bbox mAP@[.5:.95]"] == pytest.approx([0.5, 0.2])
    assert set(map_curves([{"bbox_mAP": 0.1, "bbox_mAP_50": 0.2}])) == {"bbox mAP@[.5:.95]", "bbox mAP@0.5"}
    assert (tmp_path / "run" / "map.png").is_file()


@pytest.mark.slow
def test_best_metric_can_name_a_box_number(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "evaluate", fake_evaluations([(0.5, 0.1), (0.2, 0.3)]))
    cfg = mask_run_config(tmp_path, train_images=2, val_images=2, epochs=2, mixed=False, eval_every=1,
                          best_metric="bbox_mAP")
    result = Trainer(cfg, tmp_path / "run", verbose=False).fit()
    assert result.best_metric == "bbox_mAP" and result.best_map == pytest.approx(0.5)


def test_best_metric_is_validated(tmp_path):
    box = tiny_run_config(tmp_path)
    assert resolve_best_metric(box) == "bbox_mAP"
    masks = mask_run_config(tmp_path)
    assert resolve_best_metric(masks) == "segm_mAP"
    box.train.best_metric = "bbox_mAP_50"
    assert resolve_best_metric(box) == "bbox_mAP_50"
    box.train.best_metric = "segm_mAP"
    with pytest.raises(MsdetrError, match="train.best_metric is 'segm_mAP' but the model has no mask head"):
        resolve_best_metric(box)
    masks.train.best_metric = "mAP"
    with pytest.raises(MsdetrError, match="train.best_metric is 'mAP'; it must be 'auto' or one of bbox_mAP"):
        resolve_best_metric(masks)


class RecordingTqdm(real_tqdm):
    """A real tqdm bar (writing into a string) that remembers every bar made."""

    bars: list[RecordingTqdm] = []

    def __init__(self, *args, **kwargs):
        import io

        kwargs["file"] = io.StringIO()
        super().__init__(*args, **kwargs)
        RecordingTqdm.bars.append(self)


def test_progress_bar_counts_the_planned_steps_under_max_steps(tmp_path, monkeypatch):
    RecordingTqdm.bars = []
    monkeypatch.setattr(progress_module, "tqdm", RecordingTqdm)
    monkeypatch.setattr(evaluate_module, "tqdm", RecordingTqdm)
    # 2 steps per epoch, 5 epochs, but max_steps 3: one bar of 3 steps across the epoch boundary
    cfg = tiny_run_config(tmp_path, train_images=4, val_images=2, epochs=5, max_steps=3, eval_every=0,
                          vis_images=0, progress=True, log_every=10)
    Trainer(cfg, tmp_path / "run", verbose=True).fit()
    train_bars = [b for b in RecordingTqdm.bars if b.desc == "train"]
    eval_bars = [b for b in RecordingTqdm.bars if b.desc == "eval"]
    assert len(train_bars) == 1 and len(RecordingTqdm.bars) == 2, [b.desc for b in RecordingTqdm.bars]
    assert train_bars[0].total == 3 and train_bars[0].n == 3
    assert eval_bars[0].total == 2 and eval_bars[0].n == 2  # the validation images


def test_run_progress_follows_a_revised_plan(monkeypatch):
    RecordingTqdm.bars = []
    monkeypatch.setattr(progress_module, "tqdm", RecordingTqdm)
    assert RunProgress(None, enabled=False).total is None and not RecordingTqdm.bars  # other ranks: nothing
    progress = RunProgress(None, enabled=True)  # a time budget: no plan before warm-up, no ETA
    assert progress.total is None
    progress.update(1.0, 1e-4, 0, epoch=1)
    progress.set_total(40)  # the first plan
    assert progress.total == 40 and RecordingTqdm.bars[0].n == 1
    progress.set_total(35)  # revised
    assert RecordingTqdm.bars[0].total == 35
    progress.close()
    assert Trainer._replan_is_news(100, 101) and not Trainer._replan_is_news(1000, 1005)
    assert Trainer._replan_is_news(1000, 990) and not Trainer._replan_is_news(40, 40)
