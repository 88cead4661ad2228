"""`msdetr compare` end to end: two tiny variants, 3 steps, one seed; a rerun reuses both runs."""

from __future__ import annotations

import json

import pytest

from msdetr.cli import main

SMALL_DATA = ["data.synthetic.train=16", "data.synthetic.val=4", "data.num_workers=0"]


@pytest.mark.slow
def test_compare_trains_reports_and_reuses(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["compare", "tiny", "tiny+ms_detr", "--seeds", "0", "--steps", "3", "--device", "cpu",
            "--threads", "1", "--out", str(out)]
    for item in [*SMALL_DATA, f"data.synthetic.directory={tmp_path / 'synthetic'}"]:
        argv += ["--set", item]
    assert main(argv) == 0
    for name in ("compare.json", "compare.md", "compare_map.png", "compare_losses.png"):
        assert (out / name).stat().st_size > 0
    result = json.loads((out / "compare.json").read_text())
    assert [v["name"] for v in result["variants"]] == ["tiny", "tiny+ms_detr"]
    for variant in result["variants"]:
        (run,) = variant["runs"]
        assert run["seed"] == 0 and run["steps"] == 3 and not run["reused"]
        assert run["evals"] and "bbox_mAP" in run["final"]
        assert run["step_time_s"] > 0 and run["peak_memory_bytes"] > 0
        assert {"one_to_one", "one_to_many", "encoder"} <= set(run["losses"][-1])
    first = (out / "runs" / "tiny" / "seed0" / "result.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert "reusing 2 finished run(s)" in capsys.readouterr().out
    assert (out / "runs" / "tiny" / "seed0" / "result.json").stat().st_mtime_ns == first
    rerun = json.loads((out / "compare.json").read_text())
    assert all(r["reused"] for v in rerun["variants"] for r in v["runs"])
