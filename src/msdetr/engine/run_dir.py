"""The run folder `runs/<name>/` and the run's text log (rank 0 writes, others stay quiet)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from msdetr.engine.checkpoint import LAST

LOGGER_NAME = "msdetr.train"


class _TqdmConsole(logging.StreamHandler):
    """Console lines written through `tqdm.write`: an open progress bar is cleared and redrawn
    below the line instead of being broken by it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # logging must not raise
            self.handleError(record)


def new_run_dir(requested: str | Path | None, name: str, base: str | Path = "runs") -> Path:
    """The folder for a new run.

    requested: `--output` as given; used as is unless it already holds a run (a `last.pt`),
    which is never overwritten: then `-2`, `-3`, ... is appended. None: `runs/<name>`.
    """
    path = Path(requested) if requested else Path(base) / name
    candidate, n = path, 1
    while (candidate / LAST).exists() or (candidate / "config.yaml").exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def setup_logger(run_dir: Path | None, is_main: bool, verbose: bool = True) -> logging.Logger:
    """`msdetr.train` logger: INFO to stdout and `<run>/train.log` on rank 0, warnings only elsewhere."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    console = _TqdmConsole(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.setLevel(logging.INFO if (is_main and verbose) else logging.WARNING)
    logger.addHandler(console)
    if is_main and run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(run_dir / "train.log")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(file_handler)
    return logger
