"""Weighted loss per supervision stream, from the unweighted per-term values a step already has.

The criterion's terms are named `<stream>.layer<i>.<term>` (or `encoder.<term>`) and are
unweighted; the back-propagated total is the sum over terms of `loss_weights.<stream>.<term>`
times the term. Grouping that sum by stream gives one number per stream
(`one_to_one`, `one_to_many`, `hybrid`, `group`, `denoising`, `dac`, `encoder`) that adds up
to the total: what `metrics.jsonl` logs as `loss.<stream>`. Host floats in, host floats out:
no device work and no transfer (the step fetched the terms in one transfer).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from msdetr.config.supervision import LossWeights
from msdetr.losses.names import parse_name

PREFIX = "loss."


@lru_cache(maxsize=4096)
def _stream_and_term(name: str) -> tuple[str, str] | None:
    try:
        stream, _, term = parse_name(name)
    except ValueError:
        return None
    return stream, term


def stream_losses(terms: Mapping[str, float], weights: Mapping[str, LossWeights]) -> dict[str, float]:
    """{"loss.<stream>": sum over the stream's layers and terms of weight * term}.

    terms: unweighted loss terms by name (`StepResult.terms`); names that are not loss terms
        of a weighted stream are left out.
    weights: loss weights by stream (`Criterion.weights`).
    """
    out: dict[str, float] = {}
    for name, value in terms.items():
        parsed = _stream_and_term(name)
        if parsed is None:
            continue
        stream, term = parsed
        stream_weights = weights.get(stream)
        weight = getattr(stream_weights, term, None) if stream_weights is not None else None
        if weight is None:
            continue
        key = PREFIX + stream
        out[key] = out.get(key, 0.0) + float(weight) * float(value)
    return out


class StreamWindow:
    """Sums of `loss` and `loss.<stream>` over the finite steps of a logging window (or an epoch)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, loss: float, streams: Mapping[str, float]) -> None:
        self.sums["loss"] = self.sums.get("loss", 0.0) + loss
        for key, value in streams.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def means(self) -> dict[str, float]:
        """Mean `loss` (nan without a finite step) and the mean of every stream seen."""
        if self.count == 0:
            return {"loss": float("nan")}
        return {key: value / self.count for key, value in self.sums.items()}
