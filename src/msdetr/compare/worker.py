"""Train one (variant, seed) of a comparison in this process: `python -m msdetr.compare.worker REQUEST`.

REQUEST is the run's `request.json` (written by `msdetr.compare.runner`): the resolved config, the
budget and the backbone to start from. The run is the library's own `Trainer` in the request's
folder; on top of its files this writes `progress.json` while training (step, total, elapsed) and
`result.json` when done: the request, steps, wall time, the time of every optimizer step since
the start (`timeline_s`), the median step time after the first step, and the peak memory
(CUDA: `torch.cuda.max_memory_allocated`; CPU: the process's peak resident set size).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.json"
REQUEST_FILE = "request.json"
PROGRESS_EVERY_S = 2.0


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


class StepClock:
    """Trainer callback: the time of every optimizer step, progress for the study's ETA, and the
    learning-rate schedule fitted to a fixed step budget (`steps`)."""

    def __init__(self, run_dir: Path, start: float, steps: int | None, schedule_epochs: int):
        self.run_dir, self.start, self.steps, self.schedule_epochs = run_dir, start, steps, schedule_epochs
        self.times: list[float] = []
        self._last_write = 0.0

    def __call__(self, trainer, result) -> None:
        now = time.perf_counter()
        self.times.append(now - self.start)
        if self.steps is not None and trainer.step == 1:
            # The schedule runs over the step budget: cosine decays over `steps`; a step schedule's
            # drops happen at the same fractions of the budget as of the configured epochs.
            trainer.schedule.total_steps = self.steps
            trainer.schedule.steps_per_epoch = self.steps / self.schedule_epochs
        if now - self._last_write >= PROGRESS_EVERY_S or trainer.step >= trainer.total_steps:
            self._last_write = now
            write_json(self.run_dir / PROGRESS_FILE,
                       {"step": trainer.step, "total_steps": trainer.total_steps, "elapsed_s": now - self.start})

    def step_time(self) -> float | None:
        """Median time between consecutive steps, the first step (warm-up) left out."""
        durations = [b - a for a, b in zip(self.times, self.times[1:])]
        return statistics.median(durations) if durations else None


def peak_memory(device) -> tuple[int, str]:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "cpu_peak_rss"


def run(request_path: Path) -> int:
    start = time.perf_counter()
    started_at = time.time()
    request = json.loads(request_path.read_text(encoding="utf-8"))
    import torch

    from msdetr.config.loader import config_from_dict
    from msdetr.engine.device import resolve_device
    from msdetr.engine.trainer import Trainer

    run_dir = request_path.parent
    cfg = config_from_dict(request["config"], where=str(request_path))
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    device = resolve_device(cfg.train.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clock = StepClock(run_dir, start, request["budget"].get("steps"), request["schedule_epochs"])
    result = Trainer(cfg, run_dir, init_backbone=request.get("init_backbone"), callbacks=[clock],
                     verbose=False, started_at=started_at).fit()
    memory, kind = peak_memory(device)
    write_json(run_dir / RESULT_FILE, {
        "request": request,
        "steps": result.steps,
        "skipped_steps": result.skipped_steps,
        "wall_s": time.perf_counter() - start,
        "step_time_s": clock.step_time(),
        "timeline_s": [round(t, 4) for t in clock.times],
        "peak_memory_bytes": memory,
        "peak_memory_kind": kind,
        "device": str(device),
    })
    return 0


def main(argv: list[str] | None = None) -> int:
    from msdetr.errors import MsdetrError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m msdetr.compare.worker RUN_DIR/request.json", file=sys.stderr)
        return 2
    try:
        return run(Path(args[0]))
    except MsdetrError as err:
        print(f"msdetr compare: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
