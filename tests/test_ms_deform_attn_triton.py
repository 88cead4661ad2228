"""The Triton deformable-attention kernels against the grid_sample path, on the CPU with
Triton's interpreter (TRITON_INTERPRET=1, set in a fresh process: Triton reads it when the
kernels are defined). Tiny sizes: the interpreter runs the kernels in Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import json
    import torch
    from msdetr.ops import ms_deform_attn
    from msdetr.ops.ms_deform_attn import MultiScaleDeformableAttention, ms_deform_attn_sample_grids
    from msdetr.ops.ms_deform_attn_triton import available_for, ms_deform_attn_triton

    torch.manual_seed(0)
    n, m, d, lq, p = 2, 2, 5, 7, 3  # D = 5: a channel block with masked lanes
    shapes = [(6, 5), (3, 4), (1, 2)]
    s = sum(h * w for h, w in shapes)
    value = torch.randn(n, s, m, d)
    # generic (off-lattice) locations, some outside the maps (zero padding, partial corners)
    grids = torch.rand(n, lq, m, len(shapes), p, 2) * 2.6 - 1.3
    weights = torch.rand(n, lq, m, len(shapes), p).flatten(-2).softmax(-1).view(n, lq, m, len(shapes), p)
    grad_out = torch.randn(n, lq, m * d)

    def run(fn):
        inputs = [t.clone().requires_grad_(True) for t in (value, grids, weights)]
        out = fn(inputs[0], shapes, inputs[1], inputs[2])
        out.backward(grad_out)
        return out.detach(), [t.grad for t in inputs]

    out, grads = run(ms_deform_attn_triton)
    ms_deform_attn.set_backend("grid_sample")
    ref_out, ref_grads = run(ms_deform_attn_sample_grids)
    result = {
        "available": available_for(value),
        "forward": (out - ref_out).abs().max().item(),
        "grads": {
            name: ((g - r).abs().max() / r.abs().max()).item()
            for name, g, r in zip(("value", "grids", "weights"), grads, ref_grads)
        },
    }

    # the layer dispatches to the kernels when asked (on CUDA by default)
    torch.manual_seed(1)
    layer = MultiScaleDeformableAttention(hidden_dim=8, num_levels=3, num_heads=2, num_points=2)
    torch.nn.init.normal_(layer.sampling_offsets.bias, std=0.7)  # off the pixel lattice
    query, ref = torch.randn(1, 4, 8), torch.rand(1, 4, 3, 2)
    memory = torch.randn(1, s, 8)
    layer_ref = layer(query, ref, memory, shapes)
    ms_deform_attn.set_backend("triton")
    layer_triton = layer(query, ref, memory, shapes)
    result["layer"] = (layer_triton - layer_ref).abs().max().item()
    print(json.dumps(result))
    """
)


@pytest.mark.slow
def test_triton_kernels_match_grid_sample_in_the_interpreter():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["available"]
    assert result["forward"] <= 1e-4
    for name, error in result["grads"].items():
        assert error <= 1e-3, f"gradient of {name}: relative error {error}"
    assert result["layer"] <= 1e-4


def test_backend_choice():
    import torch

    from msdetr.ops import ms_deform_attn

    with pytest.raises(ValueError, match="backend"):
        ms_deform_attn.set_backend("cuda_kernel")
    assert not ms_deform_attn._use_triton(torch.zeros(1))  # "auto" on the CPU: grid_sample
