"""The comparison's results: `compare.json` (every run's evaluations, final metrics, step time,
peak memory and per-stream losses, with the mean / std over seeds per variant) and `compare.md`
(the paper's layout: AP, AP50, AP75, APs/m/l, segm AP for mask variants, mean +- std over seeds,
the gain over the first variant, step time and peak memory as ratios to the first variant)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from msdetr.compare.runner import RunOutcome
from msdetr.engine.metrics_log import read_metrics
from msdetr.methods.streams import declared

BOX_METRICS = ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l")
SEGM_METRICS = ("segm_mAP", "segm_mAP_50", "segm_mAP_75")
SEPARATORS = (".", "/", ":", "_")  # after a stream's name in a per-stream key (one_to_one.layer0.cls, ...)
STREAMS = tuple(declared())  # every declared stream (built-in and the registered units')
COLUMNS = [("AP", "bbox_mAP"), ("AP50", "bbox_mAP_50"), ("AP75", "bbox_mAP_75"), ("APs", "bbox_mAP_s"),
           ("APm", "bbox_mAP_m"), ("APl", "bbox_mAP_l")]


def stream_losses(record: dict[str, Any]) -> dict[str, float]:
    """Per-stream loss of a metrics record: the stream's own key when logged (e.g. `hybrid`), else the
    sum of the keys that start with its name and a separator (`hybrid.layer0.cls`, `hybrid/bbox`, ...;
    unweighted, every layer; a key goes to the longest stream name it starts with); streams without
    keys left out."""
    out = {}
    for stream in STREAMS:
        if isinstance(record.get(stream), (int, float)):
            out[stream] = float(record[stream])
            continue
        values = [v for k, v in record.items() if _stream_of(k) == stream and isinstance(v, (int, float))]
        if values:
            out[stream] = float(sum(values))
    return out


def _stream_of(key: str) -> str | None:
    """The stream a per-stream key belongs to: the longest stream name followed by a separator
    (`mr_sep_dn.layer0.cls` is `mr_sep_dn`'s, not `mr_sep`'s)."""
    found = [s for s in STREAMS if key.startswith(s) and key[len(s): len(s) + 1] in SEPARATORS]
    return max(found, key=len, default=None)


def read_run(outcome: RunOutcome) -> dict[str, Any]:
    """One run's entry of compare.json from its result.json and metrics.jsonl."""
    result, plan = outcome.result or {}, outcome.plan
    timeline = result.get("timeline_s", [])
    records = read_metrics(plan.run_dir)
    evals = []
    for r in (r for r in records if r.get("kind") == "eval"):
        step = r["step"]
        wall = timeline[step - 1] if 0 < step <= len(timeline) else None
        # COCO's -1 (undefined, e.g. no large objects in the validation set) is left out
        metrics = {k: r[k] for k in (*BOX_METRICS, *SEGM_METRICS) if isinstance(r.get(k), (int, float)) and r[k] >= 0}
        evals.append({"step": step, "epoch": r.get("epoch"), "wall_s": wall, **metrics})
    # per-step per-stream losses when the trainer logs them; else the per-epoch means
    loss_records = [r for r in records if r.get("kind") == "train" and stream_losses(r)]
    if not loss_records:
        loss_records = [r for r in records if r.get("kind") == "epoch"]
    losses = [{"step": r["step"], **stream_losses(r)} for r in loss_records if stream_losses(r)]
    return {
        "seed": plan.seed,
        "run_dir": str(plan.run_dir),
        "reused": outcome.reused,
        "error": outcome.error,
        "steps": result.get("steps"),
        "wall_s": result.get("wall_s"),
        "evals": evals,
        "final": {k: v for k, v in evals[-1].items() if k not in ("step", "epoch", "wall_s")} if evals else {},
        "step_time_s": result.get("step_time_s"),
        "peak_memory_bytes": result.get("peak_memory_bytes"),
        "peak_memory_kind": result.get("peak_memory_kind"),
        "losses": losses,
    }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean / std / min / max over the seeds of the final metrics, step time and peak memory."""
    ok = [r for r in runs if not r["error"]]
    metrics = sorted({k for r in ok for k in r["final"]}, key=lambda k: (*BOX_METRICS, *SEGM_METRICS).index(k))
    return {
        "final": {m: _spread([r["final"][m] for r in ok if m in r["final"]]) for m in metrics},
        "step_time_s": _spread([r["step_time_s"] for r in ok if r["step_time_s"] is not None]),
        "peak_memory_bytes": _spread([float(r["peak_memory_bytes"]) for r in ok if r["peak_memory_bytes"]]),
    }


def _ratio(a: dict | None, b: dict | None) -> float | None:
    return a["mean"] / b["mean"] if a and b and b["mean"] else None


def add_comparisons(variants: list[dict[str, Any]]) -> None:
    """Gains over the first variant (metric mean differences) and step-time / memory ratios to it."""
    first = variants[0]["summary"]
    for variant in variants:
        s = variant["summary"]
        s["gain"] = {m: v["mean"] - first["final"][m]["mean"] for m, v in s["final"].items()
                     if v and first["final"].get(m)}
        s["step_time_ratio"] = _ratio(s["step_time_s"], first["step_time_s"])
        s["peak_memory_ratio"] = _ratio(s["peak_memory_bytes"], first["peak_memory_bytes"])


def build_result(outcomes: list[RunOutcome], header: dict[str, Any]) -> dict[str, Any]:
    """compare.json: the header (command, budget, seeds, device, ...) and the variants in the order given."""
    variants: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        plan = outcome.plan
        entry = variants.setdefault(plan.variant, {"name": plan.variant, "spec": plan.request["spec"],
                                                   "config": plan.request["config"], "runs": []})
        entry["runs"].append(read_run(outcome))
    ordered = list(variants.values())
    for variant in ordered:
        variant["summary"] = summarize(variant["runs"])
    add_comparisons(ordered)
    for variant in ordered:  # the resolved config is in each run folder's config.yaml; keep the JSON short
        variant["description"] = variant.pop("config").get("description", "")
    return {**header, "variants": ordered}


def _cell(spread: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    if not spread:
        return "–"
    mean = f"{spread['mean'] * scale:.{digits}f}"
    return f"{mean} ± {spread['std'] * scale:.{digits}f}" if spread["n"] > 1 else mean


def _signed(value: float | None, scale: float = 100.0) -> str:
    return "–" if value is None else f"{value * scale:+.1f}"


def render_markdown(result: dict[str, Any]) -> str:
    """compare.md: one row per variant; metrics in %, mean ± std over seeds."""
    variants = result["variants"]
    with_segm = any("segm_mAP" in v["summary"]["final"] for v in variants)
    budget = result["budget"]
    budget_text = f"{budget['steps']} steps" if "steps" in budget else f"{budget['minutes']} minutes"
    memory_kind = next((r["peak_memory_kind"] for v in variants for r in v["runs"] if r["peak_memory_kind"]), None)
    lines = [
        f"# Comparison: {len(variants)} variants, seeds {','.join(str(s) for s in result['seeds'])}, "
        f"{budget_text} per run",
        "",
        f"Device: {result['device']}; {result.get('machine', '')}. Command: `{result['command']}`",
        "",
        "Metrics in %, mean ± std over the seeds at the last evaluation; ΔAP: gain over the first variant. "
        "Step time: median seconds per optimizer step; step time and peak memory "
        f"({'CUDA max allocated' if memory_kind == 'cuda_max_allocated' else 'peak RSS of the run process'}) "
        "as ratios to the first variant, all runs of this study measured on the same machine "
        f"({result['jobs']} at a time).",
        "",
    ]
    head = ["variant", *[c for c, _ in COLUMNS]] + (["segm AP"] if with_segm else [])
    head += ["ΔAP", "step (s)", "step ×", "peak mem (MiB)", "mem ×"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in variants:
        s = v["summary"]
        row = [f"`{v['name']}`", *[_cell(s["final"].get(key)) for _, key in COLUMNS]]
        if with_segm:
            row.append(_cell(s["final"].get("segm_mAP")))
        step, memory = s["step_time_s"], s["peak_memory_bytes"]
        row += [
            _signed(s["gain"].get("bbox_mAP")),
            _cell(step, 1.0, 3),
            "–" if s["step_time_ratio"] is None else f"{s['step_time_ratio']:.3f}",
            _cell(memory, 1 / 2**20, 0),
            "–" if s["peak_memory_ratio"] is None else f"{s['peak_memory_ratio']:.3f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    failed = [r for v in variants for r in v["runs"] if r["error"]]
    if failed:
        lines += ["", "Failed runs (left out above):", *[f"- {r['error']}" for r in failed]]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "compare.md").write_text(render_markdown(result), encoding="utf-8")
    return [out / "compare.json", out / "compare.md"]
