"""benchmarks/gpu_suite.py end to end at the toy size on the CPU: every part runs and the JSON and
markdown hold their tables; the ten systems x (alone, with MS-DETR) all resolve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_twenty_compare_variants_resolve():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gpu_suite import compare_variants
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from msdetr.config.loader import load_config

    variants = compare_variants()
    assert len(variants) == 20 and variants[0] == "tiny_ddetr" and variants[10] == "tiny_ddetr+ms_detr"
    names = {load_config(v).name for v in variants}
    assert len(names) == 20


@pytest.mark.slow
def test_gpu_suite_runs_end_to_end_at_toy_size(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MSDETR_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "suite"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--toy", "--minutes", "8",
                           "--out", str(out)], env=env, capture_output=True, text=True, check=False)
    suite = json.loads((out / "gpu_suite.json").read_text())
    status = {p["name"]: p["status"] for p in suite["parts"]}
    assert status == dict.fromkeys(["attention", "msdetr_cost", "table3", "compare"], "ok"), done.stdout[-2000:]
    assert done.returncode == 0
    parts = {p["name"]: p["result"] for p in suite["parts"]}
    assert [r["part"] for r in parts["attention"]["rows"]] == ["decoder", "encoder"]
    assert [r["name"] for r in parts["msdetr_cost"]["rows"]] == ["one-to-one (baseline)", "MS-DETR"]
    assert len(parts["table3"]["rows"]) == 6
    assert [v["name"] for v in parts["compare"]["variants"]] == ["tiny_ddetr", "tiny_ddetr+pp"]
    text = (out / "gpu_suite.md").read_text()
    for heading in ("Triton vs grid_sample", "paper: time 1.03", "Table 3", "ten systems"):
        assert heading in text
    assert "| `tiny_ddetr+pp` |" in text and "| MS-DETR + H-DETR |" in text
