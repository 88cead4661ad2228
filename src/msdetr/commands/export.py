"""`msdetr export`: the inference graph as ONNX, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import argparse

from msdetr.errors import MsdetrError

CHECK_TOLERANCE = 1e-3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (inference graph with post-processing)",
        description="Export the inference graph of a checkpoint to ONNX: input `images` (B, 3, H, W) "
        "float32, resized and normalized as in evaluation, without padding; outputs `boxes` (B, K, 4) "
        "(x0, y0, x1, y1) in pixels of the input, `scores` (B, K) and `labels` (B, K) int64 (top K=--topk "
        "over all query/class pairs). The one-to-many stream and training outputs are dropped; deformable "
        "attention runs through GridSample. Class names, category ids and preprocessing are stored in the "
        "model's metadata. Needs: pip install 'msdetr[onnx]'.",
    )
    p.add_argument("--weights", required=True, metavar="CKPT", help="checkpoint (ours or official)")
    p.add_argument("--out", required=True, metavar="FILE", help="output .onnx file")
    p.add_argument("--height", type=int, default=None, help="input height (default: the checkpoint's eval "
                   "size, e.g. 800)")
    p.add_argument("--width", type=int, default=None, help="input width (default: same as the height)")
    p.add_argument("--dynamic", action="store_true", help="symbolic batch, height and width (torch.export-"
                   "based exporter, needs onnxscript); --height/--width then only set the example input")
    p.add_argument("--topk", type=int, default=None, help="detections per image (default: the checkpoint's "
                   "eval.topk, else 100)")
    p.add_argument("--opset", type=int, default=17,
                   help="ONNX opset (default 17; at least 18 with --dynamic)")
    p.add_argument("--no-check", action="store_true", help="skip running the exported model with onnxruntime")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from msdetr.api import load
    from msdetr.export.inference_graph import InferenceGraph
    from msdetr.export.onnx_export import export_onnx, run_onnxruntime

    detector = load(args.weights, device="cpu")
    settings = detector.settings
    height = args.height or settings.transforms.eval_min_size
    width = args.width or height
    topk = args.topk or settings.topk
    if topk < 1:
        raise MsdetrError(f"--topk must be >= 1, got {topk}")
    if args.opset < 16:
        raise MsdetrError(f"--opset must be >= 16 (GridSample), got {args.opset}")
    graph = InferenceGraph(detector.model, topk=topk)
    metadata = {
        "producer": "msdetr",
        "class_names": detector.class_names,
        "category_ids": detector.category_ids,
        "mean": list(settings.transforms.mean),
        "std": list(settings.transforms.std),
        "eval_min_size": settings.transforms.eval_min_size,
        "eval_max_size": settings.transforms.eval_max_size,
        "input": "images (B, 3, H, W) float32 RGB, scaled to [0, 1] then (x - mean) / std, no padding",
        "outputs": "boxes (B, K, 4) x0 y0 x1 y1 pixels of the input, scores (B, K), "
                   "labels (B, K) class indices"
                   + (", masks (B, K, H, W) bool at the input resolution" if len(graph.output_names) > 3 else ""),
    }
    exported = export_onnx(graph, args.out, height, width, dynamic=args.dynamic, opset=args.opset,
                           metadata=metadata)
    print(f"wrote {exported.path} (input images {exported.input_shape}, top {graph.topk} detections)")
    if args.no_check:
        return 0
    generator = torch.Generator().manual_seed(0)
    sizes = [(height, width)]
    if args.dynamic:  # also a second, different size
        sizes.append((max(64, height // 2 + 8), max(64, width * 3 // 4)))
    matches = True
    for h, w in sizes:
        images = torch.randn(1, 3, h, w, generator=generator)
        with torch.no_grad():
            boxes, scores, labels, *masks = graph(images)
        got_boxes, got_scores, got_labels, *got_masks = run_onnxruntime(exported.path, images)
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        box_diff = float(((got_boxes - boxes) / scale).abs().max())
        score_diff = float((got_scores - scores).abs().max())
        same_labels = bool(torch.equal(got_labels, labels))
        ok = same_labels and box_diff <= CHECK_TOLERANCE and score_diff <= CHECK_TOLERANCE
        mask_note = ""
        if masks:  # mask head: the fraction of mask pixels that differ (logits near 0 may flip)
            mask_diff = float((got_masks[0] != masks[0]).float().mean()) if masks[0].numel() else 0.0
            ok &= mask_diff <= CHECK_TOLERANCE
            mask_note = f", masks {mask_diff:.1e} of pixels differ"
        matches &= ok
        print(f"onnxruntime check at {h} x {w}: max |difference| scores {score_diff:.1e}, boxes (relative to "
              f"the image) {box_diff:.1e}, labels {'identical' if same_labels else 'differ'}{mask_note}"
              + ("" if ok else f" -- MISMATCH (tolerance {CHECK_TOLERANCE})"))
    return 0 if matches else 1
