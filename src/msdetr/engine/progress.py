"""tqdm progress bars of training (rank 0 only): loss, lr, and tqdm's own rate and ETA.

`EpochProgress`: one bar per epoch, for runs planned in epochs. `RunProgress`: one bar for the
whole run, for runs planned in optimizer steps (`train.max_steps` below the epochs' steps, or
a `train.time_limit_minutes` budget): its total is the planned number of steps, unknown (no
ETA) until a time budget made its first plan, and moved when the plan is revised.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def _postfix(loss: float, lr: float, skipped: int) -> dict[str, str | int]:
    postfix: dict[str, str | int] = {"loss": f"{loss:.4f}", "lr": f"{lr:.2e}"}
    if skipped:
        postfix["skipped"] = skipped
    return postfix


class EpochProgress:
    """Wraps tqdm; disabled (a no-op) on other ranks or when `enabled` is False.
    epoch: 0-based index of the epoch (shown 1-based)."""

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
        self._bar.set_postfix(_postfix(loss, lr, skipped), refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class RunProgress:
    """One bar over all optimizer steps of a run. total: planned steps (None: not planned yet);
    initial: steps already done (resume). Disabled (a no-op) when `enabled` is False."""

    def __init__(self, total: int | None, enabled: bool, initial: int = 0):
        self._bar = None
        if enabled:
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc="train",
                unit="step",
                dynamic_ncols=True,
                leave=True,
                file=sys.stderr,
            )

    @property
    def total(self) -> int | None:
        return None if self._bar is None else self._bar.total

    def set_total(self, total: int) -> None:
        """The plan changed: `total` optimizer steps in all."""
        if self._bar is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()

    def update(self, loss: float, lr: float, skipped: int, epoch: int) -> None:
        """One step done; epoch: 1-based pass over the data the step belongs to."""
        if self._bar is None:
            return
        self._bar.set_postfix({"epoch": epoch, **_postfix(loss, lr, skipped)}, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
