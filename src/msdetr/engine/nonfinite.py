"""Non-finite loss detection: skip the step, count it, stop after too many in a row."""

from __future__ import annotations

from msdetr.errors import MsdetrError


class NonFiniteGuard:
    """Counts skipped steps.

    `record(ok, step, terms)` after each micro-batch: a non-finite loss (or gradient norm)
    increments both counters; a finite one resets the in-a-row counter. After
    `max_in_a_row` consecutive non-finite values it raises `MsdetrError` naming the terms
    that were not finite.
    """

    def __init__(self, max_in_a_row: int):
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.total = 0

    def record(self, ok: bool, step: int, bad_terms: list[str] | None = None) -> None:
        if ok:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.max_in_a_row:
            terms = f" (non-finite terms: {', '.join(bad_terms[:6])})" if bad_terms else ""
            raise MsdetrError(
                f"training: step {step}: the loss was not finite {self.in_a_row} steps in a row{terms}; "
                "lower train.optimizer.lr, keep train.clip_max_norm > 0, try train.amp=none, check the "
                "data with `msdetr data check`, or raise train.max_nonfinite_steps"
            )

    def state_dict(self) -> dict:
        return {"in_a_row": self.in_a_row, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.in_a_row, self.total = int(state["in_a_row"]), int(state["total"])
