"""Everything we can only claim on a GPU, in one command and one time budget (9 minutes on one H100).

Four parts, each a subprocess with its share of the budget (a part that fails or runs out of time
is recorded as such; the others still run):

1. `attention`: deformable attention, Triton kernels vs the grid_sample path, forward and
   forward + backward at R50 800x1088 batch 2 (`benchmarks/ms_deform_attn_speed.py`).
2. `msdetr_cost`: MS-DETR / baseline training-step time and peak memory, R50 Deformable DETR at
   800x1088, batch 2, bf16 (`benchmarks/train_cost.py`, rows interleaved in one process; paper:
   1.03 / 1.025).
3. `table3`: the paper's Table 3 rows on R50 Deformable-DETR++ at the same size: baseline,
   MS-DETR, H-DETR, Group DETR, and H-DETR / Group DETR with MS-DETR (paper: time 1.54 / 1.42,
   memory 1.70 / 1.39 for H-DETR / Group DETR alone).
4. `compare`: `msdetr compare` of the ten systems (Deformable DETR, DDETR++, DAB, H-DETR,
   Group DETR, DN, DINO, DAC, Align, Mask), each alone and with MS-DETR, on the tiny base
   (`tiny_ddetr`, synthetic data), all 20 runs side by side on the GPU with the minutes left.

Writes OUT/gpu_suite.json (every part's command, status, wall time and result) and
OUT/gpu_suite.md (the tables, ready for the docs), plus each part's own files under OUT/.

    python benchmarks/gpu_suite.py --out docs/gpu_suite              # on the GPU machine: ~9 minutes
    python benchmarks/gpu_suite.py --toy --out /tmp/gpu_suite_toy    # CPU check of the whole path
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))  # run from a checkout without installing

from msdetr.compare.systems import system_variants  # noqa: E402

COMPARE_BASE = "tiny_ddetr"
R50_SIZE = "800x1088"


def compare_variants(base: str = COMPARE_BASE) -> list[str]:
    """The 20 variants: the ten systems alone, then with MS-DETR (`msdetr.compare.systems`)."""
    return system_variants(base)


@dataclass
class Part:
    """One part of the suite: a command, its minimum time to be worth starting, and its result file."""

    name: str
    title: str
    command: list[str]
    min_s: float
    max_s: float
    result: Path | None = None
    env: dict[str, str] = field(default_factory=dict)


def parts(args: argparse.Namespace, out: Path) -> list[Part]:
    py = sys.executable
    if args.toy:  # the same path at a size the CPU runs in seconds
        device, cost_size, cost = "cpu", "64", ["--warmup", "1", "--steps", "2", "--memory-runs", "0",
                                                "--threads", "1", "--set", "model.hidden_dim=32",
                                                "--set", "model.nheads=2", "--set", "model.enc_layers=1",
                                                "--set", "model.dec_layers=2", "--set", "model.dim_feedforward=64",
                                                "--set", "model.backbone.name=resnet18",
                                                "--set", "model.num_queries=10", "--set", "model.num_feature_levels=2"]
        cost_preset_1, cost_preset_3 = "tiny", "tiny"
        attention = ["--device", "cpu", "--size", "32", "--levels", "2", "--queries", "4", "--heads", "2",
                     "--hidden", "16", "--points", "2", "--batch-size", "1", "--warmup", "0", "--steps", "1"]
        amp = "none"
    else:
        device, cost_size, cost = "cuda", R50_SIZE, ["--warmup", "5", "--steps", "20"]
        cost_preset_1, cost_preset_3 = "ddetr_r50_300", "ddetr_pp_r50_300"
        attention = ["--device", "cuda", "--size", R50_SIZE, "--batch-size", "2"]
        amp = "bf16"
    common = ["--device", device, "--amp", amp, "--size", cost_size, "--batch-size", "1" if args.toy else "2", *cost]
    return [
        Part("attention", "Deformable attention: Triton vs grid_sample",
             [py, str(HERE / "ms_deform_attn_speed.py"), *attention, "--json", str(out / "attention.json")],
             min_s=20, max_s=90, result=out / "attention.json",
             env={"TRITON_INTERPRET": "1"} if args.toy else {}),
        Part("msdetr_cost", "MS-DETR / baseline training step (paper: time 1.03, memory 1.025)",
             [py, str(HERE / "train_cost.py"), "--preset", cost_preset_1, "--rows", "0,1", *common,
              *(["--warmup", "10", "--steps", "40"] if not args.toy else []), "--json", str(out / "msdetr_cost.json")],
             min_s=30, max_s=120, result=out / "msdetr_cost.json"),
        Part("table3", "Paper Table 3: H-DETR and Group DETR, alone and with MS-DETR",
             [py, str(HERE / "train_cost.py"), "--preset", cost_preset_3, "--rows", "0,1,2,3,4,5", *common,
              *(["--size", "160"] if args.toy else []), "--json", str(out / "table3.json")],
             min_s=45, max_s=150, result=out / "table3.json"),
    ]


def compare_part(args: argparse.Namespace, out: Path, seconds_left: float) -> Part:
    """The 20-variant comparison with the time left (per run: the minutes left minus start-up and a margin)."""
    variants = compare_variants()
    from msdetr.config.loader import load_config

    for variant in variants:  # every variant resolves (a config error fails here, not after minutes)
        load_config(variant)
    command = [sys.executable, "-m", "msdetr.cli", "compare", *variants[: 2 if args.toy else None],
               "--seeds", "0", "--out", str(out / "compare"), "--report-every", "15"]
    if args.toy:
        command += ["--steps", "2", "--device", "cpu", "--jobs", "1", "--threads", "1",
                    "--set", "data.synthetic.train=8", "--set", "data.synthetic.val=4", "--set", "data.num_workers=0"]
    else:
        minutes = max(1.0, (seconds_left - 75) / 60)  # start-up of 20 processes, report
        command += ["--minutes", f"{minutes:.1f}", "--device", "cuda", "--jobs", str(len(variants)),
                    "--threads", "1", "--set", "data.num_workers=0"]
    return Part("compare", "msdetr compare: the ten systems alone and with MS-DETR (tiny base, synthetic data)",
                command, min_s=120 if not args.toy else 5, max_s=seconds_left, result=out / "compare" / "compare.json")


def run_part(part: Part, seconds_left: float, out: Path) -> dict:
    record = {"name": part.name, "title": part.title, "command": " ".join(shlex.quote(c) for c in part.command)}
    if seconds_left < part.min_s:
        return {**record, "status": "skipped", "reason": f"{seconds_left:.0f} s left, needs {part.min_s:.0f} s"}
    timeout = min(part.max_s, seconds_left)
    env = {**os.environ, **part.env}
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    start = time.time()
    print(f"[gpu_suite] {part.name}: {part.title} (at most {timeout:.0f} s)", flush=True)
    log = out / f"{part.name}.log"
    with log.open("w") as fh:
        try:
            done = subprocess.run(part.command, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout,
                                  check=False)
            status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f} s"
    record.update(status=status, wall_s=round(time.time() - start, 1), log=str(log))
    if part.result is not None and part.result.is_file():
        record["result"] = json.loads(part.result.read_text(encoding="utf-8"))
    if status != "ok":
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        record["log_tail"] = tail
    print(f"[gpu_suite] {part.name}: {status} in {record['wall_s']:.0f} s", flush=True)
    return record


def _attention_table(result: dict) -> str:
    lines = ["| part | queries | grid_sample fwd ms | Triton fwd ms | speed-up | grid_sample fwd+bwd ms | "
             "Triton fwd+bwd ms | speed-up |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['part']} | {r['queries']} | {r['grid_sample_forward_ms']:.2f} | "
                     f"{r['triton_forward_ms']:.2f} | {r['forward_speedup']:.2f} | {r['grid_sample_fwd_bwd_ms']:.2f} "
                     f"| {r['triton_fwd_bwd_ms']:.2f} | {r['fwd_bwd_speedup']:.2f} |")
    return "\n".join(lines)


def render(suite: dict, out: Path) -> str:
    from train_cost import render as render_cost

    lines = [f"# GPU suite ({suite['mode']})", "", f"Command: `{suite['command']}`; {suite['machine']}; "
             f"{suite['wall_s']:.0f} s of a {suite['budget_s']:.0f} s budget.", ""]
    for part in suite["parts"]:
        lines += [f"## {part['title']}", "", f"`{part['command']}`", "", f"Status: {part['status']}"
                  + (f", {part['wall_s']:.0f} s" if "wall_s" in part else ""), ""]
        result = part.get("result")
        if result is None:
            if part.get("log_tail"):
                lines += ["```", *part["log_tail"], "```", ""]
            continue
        if part["name"] == "attention":
            lines.append(_attention_table(result))
        elif part["name"] in ("msdetr_cost", "table3"):
            lines.append(render_cost(result))
        elif part["name"] == "compare":
            text = (out / "compare" / "compare.md").read_text(encoding="utf-8")
            lines.append(text.split("\n", 2)[2] if text.startswith("# ") else text)
        lines.append("")
    return "\n".join(lines) + "\n"


def machine() -> str:
    import torch

    text = f"torch {torch.__version__}, {os.cpu_count()} CPUs"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for gpu_suite.json, gpu_suite.md and each part's files")
    parser.add_argument("--minutes", type=float, default=9.0, help="budget for the whole suite (default: 9)")
    parser.add_argument("--toy", action="store_true", help="CPU, tiny sizes: checks the whole path in a few minutes")
    parser.add_argument("--parts", default="attention,msdetr_cost,table3,compare",
                        help="comma-separated parts to run (default: all)")
    args = parser.parse_args(argv)
    start = time.time()
    budget = 60.0 * args.minutes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.parts.split(","))
    records = []
    for part in parts(args, out):
        if part.name in wanted:
            records.append(run_part(part, budget - (time.time() - start), out))
    if "compare" in wanted:
        left = budget - (time.time() - start)
        records.append(run_part(compare_part(args, out, left), left, out))
    suite = {
        "benchmark": "gpu_suite",
        "mode": "toy (CPU)" if args.toy else "H100",
        "command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(),
        "budget_s": budget,
        "wall_s": time.time() - start,
        "parts": records,
    }
    (out / "gpu_suite.json").write_text(json.dumps(suite, indent=1) + "\n", encoding="utf-8")
    (out / "gpu_suite.md").write_text(render(suite, out), encoding="utf-8")
    print(f"wrote {out / 'gpu_suite.json'} and {out / 'gpu_suite.md'}")
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
