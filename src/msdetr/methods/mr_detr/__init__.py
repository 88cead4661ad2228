"""Mr. DETR (Instructive Multi-Route Training for Detection Transformers, CVPR 2025).

While training, the decoder runs three times over the same encoder memory with the same layers and
heads: the primary route (one-to-one, as without the method), the *instructive* route (its own
top-Q proposals from a second encoder head, the primary's learned content queries, learned
instruction tokens prepended in self-attention and a route-specific self-attention norm) and the
*sep* route (exactly the primary's queries, route-specific FFN linears). Both extra routes are
supervised one-to-many with the top-K assigner on their own predictions; the second encoder head
gets an encoder-proposal loss. Nothing of it runs at inference (the release computes the extra
routes in eval mode too, but never uses them); the release's cross-layer score fusion of the
primary's class scores at inference is an option (`model.mr_detr.score_fusion`).

Modules: `config` (the `model.mr_detr` / `supervision.mr_detr` sections and their checks),
`parameters` (per-layer route parameters, second encoder head), `attention` (instructive
self-attention, sep FFN), `routes` (the decoder reruns), `branch` (the detector's decoder
branch), `supervision` (the strategy),
`fusion` (inference score fusion), `averaging` (checkpoint averaging), `overlay`, `checks`,
`unit` (the registered `MethodUnit`), `streams` (its stream names). The reference spec is
docs/mr_detr_reference.md.
"""

from msdetr.methods.mr_detr.streams import (
                                           DENOISING_STREAMS,
                                           ENCODER_O2M,
                                           INSTRUCTIVE,
                                           INSTRUCTIVE_DN,
                                           SEP,
                                           SEP_DN,
                                           STREAMS,
)
from msdetr.methods.mr_detr.unit import UNIT

__all__ = ["DENOISING_STREAMS", "ENCODER_O2M", "INSTRUCTIVE", "INSTRUCTIVE_DN", "SEP", "SEP_DN", "STREAMS", "UNIT"]
