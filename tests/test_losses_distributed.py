"""Normalization by the number of targets averaged over ranks (two CPU processes, gloo)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from msdetr.losses.normalization import num_targets_across_ranks

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, counts, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        targets = [
            {"labels": torch.zeros(n, dtype=torch.int64), "boxes": torch.zeros(n, 4)} for n in counts[rank]
        ]
        value = float(num_targets_across_ranks(targets, torch.device("cpu")))
        (out_dir / f"rank{rank}.txt").write_text(repr(value))
    finally:
        dist.destroy_process_group()


def test_average_over_ranks_and_clamp(tmp_path):
    assert float(num_targets_across_ranks([{"labels": torch.zeros(0)}], torch.device("cpu"))) == 1.0
    mp.spawn(_worker, args=(_free_port(), [[3, 2], [0, 1]], tmp_path), nprocs=2, join=True)
    assert [float((tmp_path / f"rank{r}.txt").read_text()) for r in range(2)] == [3.0, 3.0]
