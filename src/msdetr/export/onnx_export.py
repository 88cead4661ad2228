"""Export a detector to ONNX (inference graph only) and check it with onnxruntime.

The graph (`InferenceGraph`) takes `images` (B, 3, H, W) float32, resized and
normalized as in evaluation, and returns `boxes` (B, K, 4) (x0, y0, x1, y1) in
pixels of the input, `scores` (B, K) and `labels` (B, K) int64; a detector with a mask head
also returns `masks` (B, K, H, W) bool.

- Fixed size (default): traced by torch's TorchScript-based exporter at one
  (height, width) and batch size 1.
- `dynamic`: batch, height and width are symbolic, exported with the
  torch.export-based exporter (needs the `onnxscript` package and torch >= 2.5).

The checkpoint's class names, category ids and preprocessing are stored in the
model's metadata (`metadata_props`, values as json).
"""

from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from msdetr.errors import MsdetrError
from msdetr.export.inference_graph import InferenceGraph

INPUT_NAMES = ["images"]
OUTPUT_NAMES = ["boxes", "scores", "labels"]  # + "masks" for a detector with a mask head
# dynamic export traces with a batch of 2 so that the batch dimension is not specialized to 1
_DYNAMIC_EXAMPLE_BATCH = 2


def _require(module: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise MsdetrError(f"{what} needs the '{module}' package; "
                          "install it with: pip install 'msdetr[onnx]'") from None


def _export_kwargs() -> dict:
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _export_fixed(graph: InferenceGraph, example: Tensor, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings about the TorchScript exporter
        torch.onnx.export(graph, (example,), str(path), input_names=INPUT_NAMES, output_names=graph.output_names,
                          opset_version=opset, do_constant_folding=True, **_export_kwargs())


def smallest_dynamic_side(graph: InferenceGraph) -> int:
    """The smallest height/width a dynamic graph accepts: the coarsest feature level must
    have at least two cells (torch.export assumes so from the example input)."""
    detector = graph.detector
    strides = detector.backbone.strides
    extra_levels = max(0, detector.cfg.num_feature_levels - detector.neck.num_backbone_levels)
    return strides[-1] * 2**extra_levels + 1


def _export_dynamic(graph: InferenceGraph, example: Tensor, path: Path, opset: int) -> None:
    _require("onnxscript", "dynamic ONNX export (--dynamic)")
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise MsdetrError(f"dynamic ONNX export needs torch >= 2.5 (found {torch.__version__}); "
                          "export at a fixed size without --dynamic")
    low = smallest_dynamic_side(graph)
    if min(example.shape[-2:]) < low:
        raise MsdetrError(f"--height/--width: the example input must be at least {low} pixels for a dynamic "
                          f"export of this model, got {example.shape[-2]} x {example.shape[-1]}")
    # Explicit ranges: torch.export then fails loudly if the model fixes a size (Dim.AUTO would not).
    batch = torch.export.Dim("batch", min=1, max=1024)
    height = torch.export.Dim("height", min=low, max=8192)
    width = torch.export.Dim("width", min=low, max=8192)
    options = {"dynamo": True, "external_data": False, "verbose": False}
    if "optimize" in inspect.signature(torch.onnx.export).parameters:
        # onnxscript's graph optimizer (0.7) produced an invalid graph for this model; the
        # unoptimized graph is correct and onnxruntime optimizes it when loading anyway.
        options["optimize"] = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (example,), str(path), input_names=INPUT_NAMES,
                              output_names=graph.output_names, opset_version=max(opset, 18),
                              dynamic_shapes=({0: batch, 2: height, 3: width},), **options)
    except Exception as err:  # noqa: BLE001 - torch.export's errors have many types
        raise MsdetrError(f"{path}: dynamic ONNX export failed, the model does not trace with symbolic "
                          f"sizes ({_root_cause(err)}); export at a fixed size without --dynamic") from err


def _root_cause(err: BaseException) -> str:
    """The innermost exception of a chain, in at most two lines of text."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {' '.join(lines[:2])[:300]}"


@dataclass
class ExportedModel:
    """Where the model went and the shape of its input ("batch"/"height"/"width" or numbers)."""

    path: Path
    input_shape: list[int | str]


def _input_shape(model) -> list[int | str]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def export_onnx(graph: InferenceGraph, path: str | Path, height: int, width: int, dynamic: bool = False,
                opset: int = 17, metadata: dict | None = None) -> ExportedModel:
    """Write `graph` to `path` as ONNX; see module doc. `height`/`width` are the fixed input
    size, or the example size when `dynamic`. `metadata` entries are stored as json strings."""
    onnx = _require("onnx", "ONNX export")
    if height < 32 or width < 32:
        raise MsdetrError(f"--height/--width must be at least 32 pixels, got {height} x {width}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = graph.eval()
    example = torch.zeros(_DYNAMIC_EXAMPLE_BATCH if dynamic else 1, 3, height, width,
                          device=next(graph.parameters()).device)
    with torch.no_grad():
        if dynamic:
            _export_dynamic(graph, example, path, opset)
        else:
            _export_fixed(graph, example, path, opset)
    model = onnx.load(str(path))
    shape = _input_shape(model)
    if dynamic and any(isinstance(d, int) for d in (shape[0], shape[2], shape[3])):
        path.unlink()
        raise MsdetrError(f"{path}: the exported input shape is {shape}: the model fixes its input size "
                          "while being traced (a size-dependent operation), so no dynamic graph came out; "
                          "export at a fixed size without --dynamic")
    if metadata:
        onnx.helper.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
        onnx.save(model, str(path))
    return ExportedModel(path, shape)


def run_onnxruntime(path: str | Path, images: Tensor) -> tuple[Tensor, ...]:
    """Run an exported model on the CPU with onnxruntime: images (B, 3, H, W) ->
    boxes (B, K, 4), scores (B, K), labels (B, K) (and masks (B, K, H, W)), as torch tensors."""
    ort = _require("onnxruntime", "running ONNX models")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {INPUT_NAMES[0]: images.detach().cpu().float().numpy()})
    return tuple(torch.from_numpy(o) for o in outputs)
