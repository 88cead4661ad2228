"""A tqdm progress bar for one epoch: loss, lr, and tqdm's own rate and ETA (rank 0 only)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class EpochProgress:
    """Wraps tqdm; disabled (a no-op) on other ranks or when `enabled` is False."""

    def __init__(self, total: int, epoch: int, epochs: int, enabled: bool, initial: int = 0):
        self._bar = None
        if enabled:
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="step",
                dynamic_ncols=True,
                leave=True,
                file=sys.stderr,
            )

    def update(self, loss: float, lr: float, skipped: int) -> None:
        if self._bar is None:
            return
        postfix = {"loss": f"{loss:.4f}", "lr": f"{lr:.2e}"}
        if skipped:
            postfix["skipped"] = skipped
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
