"""`msdetr compare` without training: the plan, the reuse of finished runs, compare.json's shape,
the markdown's gain and ratio columns, and the plots, from hand-made run folders."""

from __future__ import annotations

import json

import pytest

from msdetr.compare import runner
from msdetr.compare.plan import Budget, RunPlan, plan_runs
from msdetr.compare.plots import write_plots
from msdetr.compare.report import build_result, render_markdown, stream_losses, write_outputs
from msdetr.compare.runner import RunOutcome, finished_result, run_all
from msdetr.compare.worker import RESULT_FILE
from msdetr.errors import MsdetrError

HEADER = {"command": "msdetr compare a b", "machine": "test", "device": "cpu", "budget": {"steps": 4},
          "seeds": [0, 1], "jobs": 2}


def _fake_run(plan: RunPlan, ap: float, step_s: float, memory: int, segm: bool = False) -> RunOutcome:
    """A finished run folder: result.json plus metrics.jsonl with two evaluations and loss terms."""
    plan.run_dir.mkdir(parents=True)
    result = {"request": plan.request, "steps": 4, "wall_s": 10.0, "step_time_s": step_s,
              "timeline_s": [1.0, 2.0, 3.0, 4.0], "peak_memory_bytes": memory, "peak_memory_kind": "cpu_peak_rss"}
    (plan.run_dir / RESULT_FILE).write_text(json.dumps(result))
    records = [
        {"kind": "train", "step": 2, "epoch": 0, "loss": 3.0, "lr": 1e-3},
        {"kind": "epoch", "step": 2, "epoch": 0, "one_to_one.layer0.cls": 1.0, "one_to_one.layer1.cls": 0.5,
         "hybrid.layer0.bbox": 0.25, "skipped_steps": 0},
        {"kind": "eval", "step": 2, "epoch": 0, "bbox_mAP": ap / 2, "bbox_mAP_50": ap, "bbox_mAP_l": -1.0,
         "AP/circle": 0.3, "num_images": 4},
        {"kind": "eval", "step": 4, "epoch": 1, "bbox_mAP": ap, "bbox_mAP_50": 2 * ap, "bbox_mAP_l": -1.0,
         **({"segm_mAP": ap / 3} if segm else {})},
    ]
    (plan.run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return RunOutcome(plan, result)


def _plans(tmp_path, variants=("tiny_ddetr", "tiny_ddetr+ms_detr"), seeds=(0, 1)):
    return plan_runs(list(variants), list(seeds), Budget(steps=4), tmp_path, ["data.synthetic.train=8"], "cpu", 1)


def test_plan_gives_every_variant_and_seed_the_same_budget(tmp_path):
    plans = _plans(tmp_path)
    assert [(p.variant, p.seed) for p in plans] == [
        ("tiny_ddetr", 0), ("tiny_ddetr+ms_detr", 0), ("tiny_ddetr", 1), ("tiny_ddetr+ms_detr", 1)]
    assert plans[1].run_dir == tmp_path / "runs" / "tiny_ddetr+ms_detr" / "seed0"
    for p in plans:
        train = p.request["config"]["train"]
        assert (train["max_steps"], train["time_limit_minutes"], train["seed"]) == (4, None, p.seed)
        assert p.request["config"]["data"]["synthetic"]["train"] == 8
        assert p.request["schedule_epochs"] == 6  # tiny's own epochs shape the fitted schedule
    assert plans[1].request["config"]["supervision"]["strategy"] == "mixed"
    with pytest.raises(MsdetrError, match="give one budget"):
        Budget()
    with pytest.raises(MsdetrError, match="the same variant is given twice"):
        plan_runs(["tiny+hybrid+ms_detr", "tiny+ms_detr+hybrid"], [0], Budget(steps=1), tmp_path)


def test_finished_runs_are_reused_and_changed_ones_are_not(tmp_path, monkeypatch):
    plans = _plans(tmp_path, seeds=(0,))
    _fake_run(plans[0], 0.2, 1.0, 100)
    assert finished_result(plans[0]) is not None
    changed = _plans(tmp_path, seeds=(0,))[0]
    changed.request["config"]["train"]["max_steps"] = 5  # another budget: the folder is not reused
    assert finished_result(changed) is None
    trained = []

    def fake_train(plan, env):
        trained.append((plan.variant, plan.seed))
        return _fake_run(plan, 0.3, 1.1, 120)

    monkeypatch.setattr(runner, "_train", fake_train)
    lines = []
    outcomes = run_all(plans, jobs=2, log=lines.append, report_every_s=60)
    assert trained == [("tiny_ddetr+ms_detr", 0)]
    assert [o.reused for o in outcomes] == [True, False]
    assert "[compare] reusing 1 finished run(s)" in lines


def test_compare_json_markdown_and_plots(tmp_path):
    plans = _plans(tmp_path, variants=("tiny_ddetr", "tiny_ddetr+ms_detr", "tiny_ddetr+mask"))
    values = {"tiny_ddetr": (0.20, 1.0, 100 * 2**20), "tiny_ddetr+ms_detr": (0.25, 1.03, 103 * 2**20),
              "tiny_ddetr+mask": (0.10, 2.0, 200 * 2**20)}
    outcomes = []
    for p in plans:
        ap, step_s, memory = values[p.variant]
        bump = 0.01 * p.seed  # seed 1 a little better: a non-zero std
        outcomes.append(_fake_run(p, ap + bump, step_s, memory, segm=p.variant.endswith("mask")))
    result = build_result(outcomes, HEADER)
    assert [v["name"] for v in result["variants"]] == list(values)
    ms = result["variants"][1]
    assert [r["seed"] for r in ms["runs"]] == [0, 1]
    run = ms["runs"][0]
    assert run["evals"][0] == {"step": 2, "epoch": 0, "wall_s": 2.0, "bbox_mAP": 0.125, "bbox_mAP_50": 0.25}
    assert run["final"] == {"bbox_mAP": 0.25, "bbox_mAP_50": 0.5}  # COCO's -1 left out, no per-class AP
    assert run["step_time_s"] == 1.03 and run["peak_memory_bytes"] == 103 * 2**20
    assert run["losses"] == [{"step": 2, "one_to_one": 1.5, "hybrid": 0.25}]
    summary = ms["summary"]
    assert summary["final"]["bbox_mAP"]["mean"] == pytest.approx(0.255)
    assert summary["final"]["bbox_mAP"]["std"] == pytest.approx(0.00707107, rel=1e-4)
    assert summary["gain"]["bbox_mAP"] == pytest.approx(0.05)
    assert summary["step_time_ratio"] == pytest.approx(1.03) and summary["peak_memory_ratio"] == pytest.approx(1.03)

    text = render_markdown(result)
    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    rows = {cells(line)[0].strip("`"): cells(line) for line in text.splitlines() if line.startswith("| `")}
    head = cells(next(line for line in text.splitlines() if line.startswith("| variant")))
    assert "segm AP" in head
    col = {name: i for i, name in enumerate(head)}
    ms_row = rows["tiny_ddetr+ms_detr"]
    assert ms_row[col["AP"]] == "25.5 ± 0.7" and ms_row[col["ΔAP"]] == "+5.0"
    assert ms_row[col["step ×"]] == "1.030" and ms_row[col["mem ×"]] == "1.030"
    assert rows["tiny_ddetr"][col["step ×"]] == "1.000"
    assert rows["tiny_ddetr+mask"][col["segm AP"]] == "3.5 ± 0.2"
    assert rows["tiny_ddetr"][col["segm AP"]] == "–" and rows["tiny_ddetr"][col["APl"]] == "–"

    written = write_outputs(result, tmp_path / "out") + write_plots(result, tmp_path / "out")
    assert [p.name for p in written] == ["compare.json", "compare.md", "compare_map.png", "compare_losses.png"]
    assert all(p.stat().st_size > 0 for p in written)
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["variants"][0]["runs"][0]["seed"] == 0


def test_stream_losses_take_a_logged_total_or_sum_the_terms():
    record = {"one_to_one": 2.0, "one_to_one.layer0.cls": 9.0, "one_to_many.layer0.cls": 1.0,
              "one_to_many.layer1.giou": 0.5, "denoising/cls": 3.0, "groupies": 4.0, "loss": 7.0, "lr": 1e-3}
    assert stream_losses(record) == {"one_to_one": 2.0, "one_to_many": 1.5, "denoising": 3.0}
