"""Deformable attention sampling: the Triton kernels vs the grid_sample path, forward + backward.

Times `ms_deform_attn_sample_grids` (sampling all levels and mixing them by the attention
weights; the projections around it are the same for both) with each backend on the same
random inputs, interleaved, on the shapes of the R50 detector at a given image size: the
encoder (every token a query) and the decoder (300 queries). Reports the median forward and
forward+backward times, and the grid_sample / Triton ratio (> 1: Triton faster). Also checks
that both agree (max abs difference of outputs and gradients).

On CUDA (what it is for):

    python benchmarks/ms_deform_attn_speed.py --device cuda --size 800x1088 --batch-size 2

On the CPU the Triton side needs TRITON_INTERPRET=1 and is only a functional check (the
interpreter runs the kernels in Python; use a tiny size):

    TRITON_INTERPRET=1 python benchmarks/ms_deform_attn_speed.py --device cpu --size 64 --queries 20 --steps 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Stopwatch, machine_description, parse_size  # noqa: E402

from msdetr.ops import ms_deform_attn  # noqa: E402
from msdetr.ops.ms_deform_attn import ms_deform_attn_sample_grids  # noqa: E402


def level_shapes(size: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """Feature map sizes of strides 8, 16, 32 (and 64 for a 4th level), as ResNet + the neck give."""
    h, w = size
    shapes = []
    for level in range(levels):
        stride = 8 * 2**level
        shapes.append((-(-h // stride), -(-w // stride)))
    return shapes


def make_inputs(args, shapes, num_queries, device, generator):
    s = sum(h * w for h, w in shapes)
    n, m, d, p = args.batch_size, args.heads, args.hidden // args.heads, args.points
    value = torch.randn(n, s, m, d, generator=generator).to(device)
    grids = (torch.rand(n, num_queries, m, len(shapes), p, 2, generator=generator) * 2.2 - 1.1).to(device)
    weights = torch.rand(n, num_queries, m, len(shapes) * p, generator=generator).softmax(-1)
    weights = weights.view(n, num_queries, m, len(shapes), p).to(device)
    grad = torch.randn(n, num_queries, m * d, generator=generator).to(device)
    return value, grids, weights, grad


def run(backend: str, inputs, shapes, backward: bool):
    ms_deform_attn.set_backend(backend)
    value, grids, weights, grad = inputs
    leaves = [t.detach().requires_grad_(backward) for t in (value, grids, weights)]
    out = ms_deform_attn_sample_grids(leaves[0], shapes, leaves[1], leaves[2])
    if backward:
        out.backward(grad)
        return out.detach(), [t.grad for t in leaves]
    return out.detach(), []


def measure(args, name, shapes, num_queries, device) -> dict:
    generator = torch.Generator().manual_seed(0)
    inputs = make_inputs(args, shapes, num_queries, device, generator)
    backends = ("grid_sample", "triton")
    times = {(b, bw): [] for b in backends for bw in (False, True)}
    for step in range(args.warmup + args.steps):
        order = backends if step % 2 == 0 else backends[::-1]
        for backend in order:
            for backward in (False, True):
                with Stopwatch(device, "wall") as watch:
                    run(backend, inputs, shapes, backward)
                if step >= args.warmup:
                    times[(backend, backward)].append(watch.seconds)
    out_g, grads_g = run("grid_sample", inputs, shapes, True)
    out_t, grads_t = run("triton", inputs, shapes, True)
    ms_deform_attn.set_backend("auto")
    med = {key: statistics.median(v) * 1e3 for key, v in times.items()}
    return {
        "part": name,
        "queries": num_queries,
        "tokens": sum(h * w for h, w in shapes),
        "grid_sample_forward_ms": med[("grid_sample", False)],
        "triton_forward_ms": med[("triton", False)],
        "grid_sample_fwd_bwd_ms": med[("grid_sample", True)],
        "triton_fwd_bwd_ms": med[("triton", True)],
        "forward_speedup": med[("grid_sample", False)] / med[("triton", False)],
        "fwd_bwd_speedup": med[("grid_sample", True)] / med[("triton", True)],
        "max_abs_diff_out": (out_g - out_t).abs().max().item(),
        "max_rel_diff_grads": max(((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
                                  for a, b in zip(grads_t, grads_g)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="800x1088", help="image size N or HxW")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--queries", type=int, default=300, help="decoder queries")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    shapes = level_shapes(parse_size(args.size), args.levels)
    rows = [
        measure(args, "decoder", shapes, args.queries, device),
        measure(args, "encoder", shapes, sum(h * w for h, w in shapes), device),
    ]
    print(f"{machine_description(device)}; shapes {shapes}, batch {args.batch_size}")
    print("| part | queries | grid_sample fwd ms | Triton fwd ms | speed-up | grid_sample fwd+bwd ms | "
          "Triton fwd+bwd ms | speed-up | max diff out / grads (rel) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['part']} | {r['queries']} | {r['grid_sample_forward_ms']:.2f} | {r['triton_forward_ms']:.2f} | "
              f"{r['forward_speedup']:.2f} | {r['grid_sample_fwd_bwd_ms']:.2f} | {r['triton_fwd_bwd_ms']:.2f} | "
              f"**{r['fwd_bwd_speedup']:.2f}** | {r['max_abs_diff_out']:.1e} / {r['max_rel_diff_grads']:.1e} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": sys.argv, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
