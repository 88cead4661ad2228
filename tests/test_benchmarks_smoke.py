"""Smoke tests of the benchmark scripts: each runs end to end with tiny settings and writes
a result whose content reflects what was run (no timings are asserted: those are measured
side by side by the scripts themselves, see docs/benchmarks_training.md)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.tiny import model_overrides, tiny_model_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

# The tiny model's sizes on top of any preset (12 queries, 2 levels): fast on one CPU thread.
SMALL_MODEL = model_overrides(
    tiny_model_config(num_queries=12, num_feature_levels=2),
    ["hidden_dim", "nheads", "dim_feedforward", "enc_layers", "dec_layers", "num_queries", "num_feature_levels"],
)


def run_script(name: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["MSDETR_CACHE"] = str(tmp_path / "cache")
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def overrides(values: list[str]) -> list[str]:
    return [f"--set={v}" for v in values]


def test_train_cost_reports_both_rows_with_phases_and_memory(tmp_path):
    out = tmp_path / "cost.json"
    done = run_script(
        "train_cost.py",
        [
            "--preset",
            "tiny",
            "--rows",
            "0,1",
            "--size",
            "64",
            "--batch-size",
            "2",
            "--threads",
            "1",
            "--warmup",
            "1",
            "--steps",
            "2",
            "--memory-runs",
            "1",
            "--memory-steps",
            "1",
            "--phases",
            "--count-ops",
            "--rows",
            "0,1",
            "--json",
            str(out),
            *overrides(SMALL_MODEL),
        ],
        tmp_path,
    )
    result = json.loads(out.read_text())
    baseline, ms = result["rows"]
    assert [baseline["name"], ms["name"]] == ["one-to-one (baseline)", "MS-DETR"]
    assert "MS-DETR" in done.stdout and "time ratio" in done.stdout
    assert result["image_size"] == [64, 64] and result["batch_size"] == 2
    # The auxiliary FFN of the one-to-many tap is the only architectural difference.
    assert ms["parameters"] > baseline["parameters"]
    assert baseline["time_ratio"]["median"] == pytest.approx(1.0)
    for row in (baseline, ms):
        assert row["step_seconds"]["n"] == 2
        assert 0 < row["assign_share"]["median"] < 1
        phases = sum(
            row["phases"][p]["median"] for p in ("forward", "assign", "loss", "backward", "optimizer")
        )
        assert phases > 0
        assert row["peak_rss_bytes"]["median"] > row["rss_growth_bytes"]["median"] > 0
    assert math.isfinite(ms["time_ratio"]["median"]) and ms["time_ratio"]["median"] > 0
    # The one-to-many losses and assignments are extra operator calls in the criterion.
    assert ms["aten_ops"]["criterion"] > baseline["aten_ops"]["criterion"] > 0


def test_versus_hf_builds_the_same_architecture(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "hf.json"
    model = [v for v in SMALL_MODEL if "num_feature_levels" not in v]
    run_script(
        "versus_hf.py",
        [
            "--size",
            "96",
            "--batch-size",
            "1",
            "--threads",
            "1",
            "--warmup",
            "0",
            "--steps",
            "1",
            "--json",
            str(out),
            *overrides(model),
        ],
        tmp_path,
    )
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["name"].startswith("HF transformers")
    # Same sizes on both sides give the same number of (trainable) parameters.
    assert {r["parameters"] for r in rows} == {rows[0]["parameters"]}
    assert {r["trainable_parameters"] for r in rows} == {rows[0]["trainable_parameters"]}
    for row in rows:
        assert row["train_step_seconds"]["median"] > 0 and row["infer_seconds_per_image"]["median"] > 0


@pytest.mark.slow
def test_convergence_pretrained_protocol_trains_the_backbone_once_and_reuses_it(tmp_path):
    """Phase 1 pre-trains once (a rerun reuses it); phase 2 is `msdetr compare` from its backbone
    (frozen BatchNorm, backbone lr 0.1 x lr) on other data."""
    data = [
        "data.synthetic.train=4",
        "data.synthetic.val=2",
        "data.synthetic.size=64",
        "data.transforms.train_min_sizes=[64]",
        "data.transforms.train_max_size=64",
        "data.transforms.eval_min_size=64",
        "data.transforms.eval_max_size=64",
        "data.num_workers=0",
        "train.batch_size=2",
        "train.schedule.warmup_steps=1",
    ]
    args = ["--pretrain-steps", "2", "--steps", "2", "--seeds", "0", "--threads", "1", "--device", "cpu",
            "--out", str(tmp_path / "study"), *overrides(SMALL_MODEL + data)]
    done = run_script("convergence.py", args, tmp_path)
    result = json.loads((tmp_path / "study" / "phase2" / "compare.json").read_text())
    assert [v["name"] for v in result["variants"]] == ["tiny_ddetr", "tiny_ddetr+ms_detr"]
    assert result["init_backbone"].endswith("phase1/runs/tiny_ddetr/seed0/last.pt")
    assert "data.synthetic.layout=simple" in result["overrides"]
    backbone = "backbone.body.layer2.0.conv1.weight"
    import torch

    source = torch.load(result["init_backbone"], map_location="cpu", weights_only=False)
    for variant in ("tiny_ddetr", "tiny_ddetr+ms_detr"):
        run = tmp_path / "study" / "phase2" / "runs" / variant / "seed0"
        assert "init backbone from" in (run / "train.log").read_text()
        config = (run / "config.yaml").read_text()
        assert "layout: simple" in config and "frozen_bn" in config and "lr_backbone: 0.0001" in config
        ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
        # trained on from the pre-trained backbone at a low lr: close to it, not equal to a fresh init
        drift = (ckpt["model"][backbone] - source["model"][backbone]).abs().max().item()
        assert 0 < drift < 0.05
    assert "phase 1" in done.stdout
    again = run_script("convergence.py", args, tmp_path)
    assert "reusing 1 finished run(s)" in again.stdout and "reusing 2 finished run(s)" in again.stdout


def test_supervision_balance_reports_gradient_shares_and_positives(tmp_path):
    out = tmp_path / "balance.json"
    data = [
        "data.synthetic.train=4",
        "data.synthetic.val=2",
        "data.synthetic.size=64",
        "data.transforms.train_min_sizes=[64]",
        "data.transforms.train_max_size=64",
        "train.batch_size=2",
    ]
    args = ["--batches", "1", "--json", str(out), *overrides(SMALL_MODEL + data)]
    run_script("supervision_balance.py", args, tmp_path)
    result = json.loads(out.read_text())
    grads = result["gradients"]
    for key in ("norm_o2o", "norm_o2m", "norm_enc", "norm_total"):
        assert grads[key]["mean"] > 0, key
    assert -1 <= grads["cos_o2o_o2m"]["mean"] <= 1
    assert math.isfinite(grads["o2o_step_ratio"]["mean"]) and grads["o2o_step_ratio"]["mean"] > 0
    assert result["cap"] == 3 and result["k"] == 6  # int(0.25 * 12 queries); the paper's K
    assert set(result["positives_per_object"]) == {"one_to_many.layer0", "one_to_many.layer1"}
