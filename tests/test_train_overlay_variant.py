"""`msdetr train --config BASE+METHOD+...` trains like a preset: the run's saved config is the
variant's, and the metrics log its methods' streams."""

from __future__ import annotations

import pytest

from msdetr.cli import main
from msdetr.config.loader import load_config
from msdetr.engine.metrics_log import read_metrics

SMALL = ["model.hidden_dim=32", "model.nheads=2", "model.dec_layers=2", "model.dim_feedforward=64",
         "model.num_queries=10", "model.num_feature_levels=2", "data.synthetic.train=8", "data.synthetic.val=4",
         "data.num_workers=0", "train.max_steps=2", "train.time_limit_minutes=null", "train.log_every=1",
         "train.vis_images=0", "train.device=cpu", "train.num_threads=1"]


@pytest.mark.slow
def test_train_accepts_a_variant(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--config", "tiny+hybrid+ms_detr", "--output", str(run), "--quiet"]
    for item in [*SMALL, f"data.synthetic.directory={tmp_path / 'synthetic'}"]:
        argv += ["--set", item]
    assert main(argv) == 0
    saved = load_config(str(run / "config.yaml"))
    assert saved.name == "tiny+hybrid+ms_detr" and saved.model.hybrid.num_queries == 50  # 5 x 10 queries
    assert [r["step"] for r in read_metrics(run, "train")] == [1, 2]
    keys = set(read_metrics(run, "epoch")[-1])
    for stream in ("one_to_one", "one_to_many", "hybrid", "encoder"):
        assert any(k.startswith(stream + ".") for k in keys), (stream, sorted(keys))
