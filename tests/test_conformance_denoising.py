"""Denoising conformance against the reference code (DINO `prepare_for_cdn`, DN-DETR `prepare_for_dn`).

The fixture (`tests/fixtures/denoising_reference.pt`, made by `tests/make_denoising_fixture.py`; another
file through MSDETR_DENOISING_FIXTURE) holds, for fixed targets and seeds, what the references build
and compute. Our builder draws its random numbers in the references' order, so a generator seeded
as the reference's global generator gives the same noise; then the denoising queries, the
self-attention mask, the split of the predictions into streams and the denoising losses of given
predictions must match. The references put the denoising queries before the matching queries; we
put them after, so masks and predictions are compared under that permutation.
"""

from __future__ import annotations

import pytest
import torch

from msdetr.config.model import DenoisingConfig
from msdetr.config.supervision import LossWeights
from msdetr.losses.criterion import Criterion
from msdetr.modeling.anchor_queries import AnchorQueries
from msdetr.modeling.denoising import DenoisingQueries, noise_targets
from msdetr.modeling.detector import _query_range
from msdetr.modeling.outputs import ONE_TO_ONE, DetectorOutput, StreamPredictions
from msdetr.modeling.queries import QueryInit
from msdetr.modeling.query_groups import QueryContext, assemble_queries
from msdetr.supervision.denoising import DenoisingSupervision
from support.references import load_reference


def _config(method: str, case: dict) -> DenoisingConfig:
    if method == "cdn":
        return DenoisingConfig(method="cdn", dn_number=case["dn_number"], label_noise=case["label_noise"],
                               box_noise=case["box_noise"])
    return DenoisingConfig(method="dn", num_groups=case["num_groups"], label_noise=case["label_noise"],
                           box_noise=case["box_noise"], label_indicator=True)


def _build(method: str, index: int):
    """Our denoising group (and primary queries) for the reference case, with the reference's seed."""
    fx = load_reference("denoising")
    case = fx[method][index]
    sizes = fx["sizes"]
    cfg = _config(method, case)
    provider = DenoisingQueries(cfg, sizes["num_classes"], sizes["hidden_dim"],
                                generator=torch.Generator().manual_seed(case["seed"]))
    with torch.no_grad():
        provider.label_embed.weight.copy_(case["label_embed"])
    batch, d, q = len(fx["targets"]), sizes["hidden_dim"], sizes["num_queries"]
    if method == "dn":  # DN-DAB-Deformable-DETR: anchor queries with a zero indicator feature
        anchors = AnchorQueries(q, d, content_dim=d - 1)
        with torch.no_grad():
            anchors.tgt_embed.weight.copy_(case["tgt_weight"])
            anchors.refpoint_embed.weight.copy_(case["refpoints"])
        primary = anchors(torch.zeros(batch, 1, d))
    else:
        primary = QueryInit(torch.zeros(batch, q, d), torch.zeros(batch, q, d), torch.full((batch, q, 4), 0.5))
    context = QueryContext(primary, torch.zeros(batch, 1, d), torch.zeros(batch, 1, dtype=torch.bool), [(1, 1)],
                           targets=fx["targets"])
    with torch.no_grad():
        group = provider(context)
    return case, primary, group


def _to_ours(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Reference order (denoising, matching) -> ours (matching, denoising) along `dim`."""
    size = x.shape[dim]
    order = torch.cat([torch.arange(pad, size), torch.arange(pad)])
    return x.index_select(dim, order)


@pytest.mark.parametrize("method,index", [("cdn", 0), ("cdn", 1), ("dn", 0), ("dn", 1)])
def test_queries_and_mask_match_the_reference(method, index):
    case, primary, group = _build(method, index)
    pad = case["pad_size"]
    assert group.num_queries == pad
    if method == "cdn":
        assert group.meta["noised"].num_groups == case["num_dn_group"]
    torch.testing.assert_close(group.tgt, case["query_label"][:, :pad], rtol=0, atol=0)
    torch.testing.assert_close(group.reference_points, case["query_bbox"][:, :pad].sigmoid(), rtol=0, atol=1e-7)
    assembled = assemble_queries(primary, [group], ONE_TO_ONE)
    assert torch.equal(assembled.attn_mask, _to_ours(_to_ours(case["attn_mask"], pad, 0), pad, 1))
    if method == "dn":  # the matching queries too: learned content + indicator 0, learned anchors
        torch.testing.assert_close(primary.tgt, case["query_label"][:, pad:], rtol=0, atol=0)
        torch.testing.assert_close(primary.reference_points, case["query_bbox"][:, pad:].sigmoid(), rtol=0, atol=0)


@pytest.mark.parametrize("method,index", [("cdn", 0), ("cdn", 1), ("dn", 0), ("dn", 1)])
def test_prediction_split_matches_the_reference(method, index):
    case, primary, group = _build(method, index)
    pad = case["pad_size"]
    slices = assemble_queries(primary, [group], ONE_TO_ONE).slices
    ours = StreamPredictions(_to_ours(case["logits"], pad, 2), _to_ours(case["boxes"], pad, 2))
    main, known = _query_range(ours, slices[ONE_TO_ONE]), _query_range(ours, slices["denoising"])
    assert torch.equal(main.logits, case["split_main"][0]) and torch.equal(main.boxes, case["split_main"][1])
    assert torch.equal(known.logits, case["split_known"][0]) and torch.equal(known.boxes, case["split_known"][1])


@pytest.mark.parametrize("method,index", [("cdn", 0), ("cdn", 1), ("dn", 0), ("dn", 1)])
def test_denoising_losses_match_the_reference(method, index):
    case, _, group = _build(method, index)
    fx = load_reference("denoising")
    layers = fx["sizes"]["layers"]
    output = DetectorOutput(
        streams={ONE_TO_ONE: StreamPredictions(*case["split_main"]),
                 "denoising": StreamPredictions(*case["split_known"])},
        query_meta={"denoising": group.meta},
    )
    criterion = Criterion(DenoisingSupervision("groups"), {"denoising": LossWeights(1.0, 1.0, 1.0)},
                          num_classes=fx["sizes"]["num_classes"])
    result = criterion(output, fx["targets"])
    reference = case["losses"]
    for layer in range(layers):
        for ours, theirs in (("cls", "ce"), ("bbox", "bbox"), ("giou", "giou")):
            if method == "cdn":
                name = f"loss_{theirs}_dn" + ("" if layer == layers - 1 else f"_{layer}")
            else:
                name = f"tgt_loss_{theirs}" + ("" if layer == layers - 1 else f"_{layer}")
            torch.testing.assert_close(result.terms[f"denoising.layer{layer}.{ours}"], reference[name],
                                       rtol=1e-5, atol=1e-6, msg=name)
    if method == "dn":
        torch.testing.assert_close(result.logs[f"denoising.layer{layers - 1}.class_error"],
                                   reference["tgt_class_error"], rtol=0, atol=1e-4)


def test_builder_draws_the_reference_noise_from_a_seeded_generator():
    """Our noise from a seeded generator equals the reference's noise from the global seed."""
    fx = load_reference("denoising")
    case = fx["cdn"][0]
    first = noise_targets(fx["targets"], _config("cdn", case), 7, torch.Generator().manual_seed(case["seed"]))
    torch.manual_seed(case["seed"])
    second = noise_targets(fx["targets"], _config("cdn", case), 7)
    assert torch.equal(first.labels, second.labels) and torch.equal(first.boxes, second.boxes)
    assert int(first.positive.sum()) * 2 == len(first.positive)
