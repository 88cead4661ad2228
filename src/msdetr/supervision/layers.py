"""What every strategy does per decoder layer of a stream: check the stream is there, assign
all its layers (in one pass when the assigner can) and make one `SupervisionTask` per layer.

`stream_tasks` is the one place strategies build tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from msdetr.errors import MsdetrError
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import Assigner, Assignment, LayerPredictions, StreamLayer, SupervisionTask, Targets


def layer_predictions(output: DetectorOutput, stream: str, layer: int) -> LayerPredictions:
    """(B, Q, C) logits and (B, Q, 4) boxes (and masks, with a mask head) of one decoder layer of a stream."""
    return StreamLayer(output.streams[stream], layer)  # the views are made when used


def require_stream(output: DetectorOutput, stream: str, strategy: str) -> int:
    """Number of decoder layers of `stream`; a clear error when the detector did not produce it."""
    if stream not in output.streams:
        raise MsdetrError(
            f"supervision: strategy '{strategy}': the detector output has no '{stream}' stream "
            f"(it has {sorted(output.streams)}); enable the matching model option or change "
            "supervision.strategy"
        )
    return output.streams[stream].num_layers


def final_layer_first(num_layers: int) -> list[int]:
    """The official criteria's layer order (final layer, then 0, 1, ...): the order of their random draws."""
    return [num_layers - 1, *range(num_layers - 1)]


def assign_stream(assigner: Assigner, output: DetectorOutput, stream: str, targets: Targets,
                  final_first: bool = False, **extra: Any) -> list[Assignment]:
    """One assignment per decoder layer of `stream`: all layers in one pass with the assigner's
    `assign_layers` (same result, less overhead; `extra` goes to it), else layer by layer, the
    final layer first with `final_first` (an `assign_layers` keeps its own order)."""
    predictions = output.streams[stream]
    assign_layers = getattr(assigner, "assign_layers", None)
    if assign_layers is not None:
        return assign_layers(predictions.logits, predictions.boxes, targets, **extra)
    num_layers = predictions.num_layers
    order = final_layer_first(num_layers) if final_first else range(num_layers)
    assigned = {i: assigner(layer_predictions(output, stream, i), targets) for i in order}
    return [assigned[i] for i in range(num_layers)]


def stream_tasks(output: DetectorOutput | None, stream: str, targets: Targets, assignments: Sequence[Assignment],
                 predictions: Sequence[LayerPredictions] | None = None, **options: Any) -> list[SupervisionTask]:
    """One task per layer (layer i: `assignments[i]`); the final layer logs the class error.

    predictions: per layer (default: the layers of `output.streams[stream]`).
    options: further `SupervisionTask` fields, the same for every layer (rank_tau, normalizer_scale, ...).
    """
    num_layers = len(assignments)
    if predictions is None:
        predictions = [layer_predictions(output, stream, layer) for layer in range(num_layers)]
    return [
        SupervisionTask(stream=stream, layer=layer, predictions=predictions[layer], targets=targets,
                        assignment=assignments[layer], log_class_error=layer == num_layers - 1, **options)
        for layer in range(num_layers)
    ]
