"""The collectives lower layers need (evaluation gathers detections, broadcasts metrics).

Plain functions over `torch.distributed`; each is a no-op in a single process. Process-group
setup lives in `msdetr.engine.distributed`, which re-exports these.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def gather_to_main(obj: Any) -> list[Any] | None:
    """Pickle-gather `obj` from every rank; the list on rank 0, None elsewhere."""
    if not is_initialized():
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
