"""Merge each target's one-to-one match into its one-to-many set (official `--use_indices_merge`).

Per image, every query matched by the one-to-one assigner (on the one-to-one
stream of the same layer) is added to the one-to-many pairs. A query present in
both keeps its one-to-many target; a query the top-K assigner gave to several
targets keeps only its last (best-scoring) one. The result has at most one pair
per query, ordered by query index. The paper reports +0.2 mAP for it.
"""

from __future__ import annotations

import torch

from msdetr.supervision.base import Assignment
from msdetr.supervision.pairs import FlatPairs, flatten, last_occurrence, unflatten


@torch.no_grad()
def merge_one_to_one(one_to_many: Assignment, one_to_one: Assignment, num_queries: int) -> Assignment:
    """Union of the two assignments of a batch, one-to-many winning per query (see module docstring)."""
    batch = len(one_to_many)
    device = one_to_many[0][0].device if batch else torch.device("cpu")
    many = flatten(one_to_many, device)
    one = flatten(one_to_one, device)
    target_of = torch.full((batch, num_queries), -1, dtype=torch.int64, device=device)
    target_of[one.image, one.query] = one.target
    last = last_occurrence(many.image, many.query, batch, num_queries)
    target_of[many.image[last], many.query[last]] = many.target[last]
    image, query = (target_of >= 0).nonzero(as_tuple=True)
    return unflatten(FlatPairs(image=image, query=query, target=target_of[image, query]), batch)
