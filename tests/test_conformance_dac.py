"""DAC-DETR's branch supervision (top-K assignment, IoU-aware losses with prime-sample weights,
3x normalizer) and its one-to-one IoU-aware losses vs the released code.

The fixture (`tests/fixtures/dac_detr_reference.pt`, or the file named by the environment variable
MSDETR_DAC_FIXTURE) is made by `tests/make_dac_fixture.py` from huzhengdongcs/DAC-DETR's
`SetCriterion` in training mode: every loss and logged value by name, the weighted total, its
gradient with respect to every layer's logits and boxes of both streams, and both streams' pairs.
The reference caps the branch's positives at 75 an image (0.25 of a hard-coded 300 queries); with
20 queries here the cap never binds, so our assigner runs with positive_fraction 1 (no cap).
"""

from __future__ import annotations

import torch

from msdetr.config.supervision import LossWeights, SupervisionConfig
from msdetr.losses import build_criterion
from msdetr.methods.contracts import DAC
from msdetr.modeling.outputs import ONE_TO_ONE, DetectorOutput, StreamPredictions
from support.references import load_reference

TERMS = {"ce": "cls", "bbox": "bbox", "giou": "giou", "class": "class_error", "cardinality": "cardinality_error"}


def our_name(reference_name: str, num_layers: int) -> str | None:
    """'loss_ce_0' -> 'dac.layer0.cls', 'loss_giou_one2one' -> 'one_to_one.layer<L-1>.giou',
    'cardinality_error_1' -> 'dac.layer1.cardinality_error'; None for the (zero) denoising terms."""
    if "_dn" in reference_name:
        return None
    name = reference_name.removeprefix("loss_")
    stream = DAC
    if name.endswith("_one2one"):
        stream, name = ONE_TO_ONE, name.removesuffix("_one2one")
    parts = name.split("_")
    layer = int(parts[-1]) if parts[-1].isdigit() else num_layers - 1
    return f"{stream}.layer{layer}.{TERMS[parts[0]]}"


def released_config() -> SupervisionConfig:
    cfg = SupervisionConfig(strategy="one_to_one")
    cfg.classification_loss.one_to_one = "iou_aware"
    cfg.classification_loss.dac = "iou_aware"
    cfg.loss_weights.one_to_one = LossWeights(cls=1.0, bbox=5.0, giou=2.0)
    cfg.loss_weights.dac = LossWeights(cls=1.0, bbox=5.0, giou=2.0)
    dac = cfg.dac
    dac.enabled, dac.k, dac.threshold, dac.positive_fraction = True, 6, 0.4, 1.0
    dac.match_on_primary_boxes, dac.tau, dac.normalizer_scale = True, 1.5, 3.0
    return cfg


def detector_output(inputs: dict) -> tuple[DetectorOutput, dict]:
    leaves = {stream: {k: v.clone().requires_grad_(True) for k, v in tensors.items()}
              for stream, tensors in inputs["streams"].items()}
    streams = {ONE_TO_ONE: StreamPredictions(**leaves["one_to_one"]), DAC: StreamPredictions(**leaves["dac"])}
    return DetectorOutput(streams=streams), leaves


def test_branch_and_one_to_one_losses_gradients_and_pairs_match_the_released_dac_detr():
    fixture = load_reference("dac")
    inputs, reference = fixture["inputs"], fixture["result"]
    output, leaves = detector_output(inputs)
    criterion = build_criterion(released_config(), num_classes=7)
    torch.manual_seed(0)
    tasks = criterion.strategy.plan(output, inputs["targets"])
    torch.manual_seed(0)
    result = criterion(output, inputs["targets"])
    num_layers = output.streams[DAC].num_layers

    ours = {**result.terms, **result.logs}
    compared = 0
    for reference_name, expected in reference["losses"].items():
        name = our_name(reference_name, num_layers)
        if name is None:
            assert expected == 0.0
            continue
        torch.testing.assert_close(ours[name], torch.tensor(expected), rtol=1e-4, atol=1e-6, msg=reference_name)
        compared += 1
    assert compared == 2 * 3 * num_layers + num_layers + 1  # 3 terms x 2 streams, cardinality, class error
    torch.testing.assert_close(result.total, torch.tensor(reference["total"]), rtol=1e-4, atol=1e-6)

    result.total.backward()
    for stream, tensors in leaves.items():
        for key, leaf in tensors.items():
            torch.testing.assert_close(leaf.grad, reference["grads"][stream][key], rtol=1e-4, atol=1e-6,
                                       msg=f"{stream} {key}")

    expected_pairs = {ONE_TO_ONE: reference["one_to_one_pairs"], DAC: reference["dac_pairs"]}
    for task in tasks:
        for image, ((q, t), (ref_q, ref_t)) in enumerate(zip(task.assignment, expected_pairs[task.stream][task.layer])):
            assert sorted(zip(q.tolist(), t.tolist())) == sorted(zip(ref_q.tolist(), ref_t.tolist())), (
                task.name, image)


def test_matching_on_the_primary_boxes_is_what_the_reference_does():
    """Scoring the branch with its own boxes gives other pairs than the released assigner."""
    fixture = load_reference("dac")
    config = released_config()
    config.dac.match_on_primary_boxes = False
    output, _ = detector_output(fixture["inputs"])
    tasks = build_criterion(config, num_classes=7).strategy.plan(output, fixture["inputs"]["targets"])
    dac_pairs = [sorted(zip(*(x.tolist() for x in pairs))) for task in tasks if task.stream == DAC
                 for pairs in task.assignment]
    reference = [sorted(zip(*(x.tolist() for x in pairs))) for layer in fixture["result"]["dac_pairs"]
                 for pairs in layer]
    assert dac_pairs != reference


def test_branch_forward_and_gradients_match_the_released_decoder():
    """Our divide-and-conquer pass (`modeling/branches.py`) on the released decoder's weights: the branch's
    and the primary stream's predictions, and every gradient of a projection of the branch's."""
    from msdetr.methods.contracts import DAC
    from msdetr.modeling.branches import SkipSelfAttention
    from msdetr.modeling.decoder import DecoderMemory, DecoderQueries, DeformableDecoder
    from msdetr.modeling.decoder_layers import DecoderLayer
    from msdetr.modeling.heads import PredictionHeads
    from msdetr.modeling.queries import QueryInit

    reference = load_reference("dac")["branch"]
    c, inputs = reference["config"], reference["inputs"]
    num_layers = reference["dac"]["logits"].shape[0]
    decoder = DeformableDecoder(
        [DecoderLayer(c["hidden"], c["ffn"], 0.0, "relu", c["levels"], c["heads"], c["points"])
         for _ in range(num_layers)], refine=True, look_forward_twice=True)
    heads = PredictionHeads(c["hidden"], c["classes"], num_layers, refine=True, two_stage=True, one_to_many=False)
    ours_of = {}
    for name in reference["state_dict"]:
        if name.startswith("decoder.layers."):
            ours_of[name] = name
        elif name.startswith("decoder.bbox_embed."):
            ours_of[name] = name.replace("decoder.bbox_embed.", "heads.box_heads.")
        else:
            ours_of[name] = name.replace("class_heads.", "heads.class_heads.")
    modules = torch.nn.ModuleDict({"decoder": decoder, "heads": heads})
    params = dict(modules.named_parameters())
    with torch.no_grad():
        for name, value in reference["state_dict"].items():
            params[ours_of[name]].copy_(value)

    leaves = {k: inputs[k].clone().requires_grad_(True) for k in ("tgt", "query_pos", "memory")}
    init = QueryInit(leaves["tgt"], leaves["query_pos"], inputs["reference_points"])
    memory = DecoderMemory(leaves["memory"], inputs["spatial_shapes"], inputs["valid_ratios"], inputs["padding_mask"])
    queries = DecoderQueries(init.tgt, init.query_pos, init.reference_points)
    branch = SkipSelfAttention(DAC, num_layers, keep_first=True)(decoder, heads, queries, memory)
    torch.testing.assert_close(branch.logits, reference["dac"]["logits"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(branch.boxes, reference["dac"]["boxes"], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        primary = heads.predict(decoder(queries, memory, box_heads=list(heads.box_heads)))
    torch.testing.assert_close(primary.logits, reference["one_to_one"]["logits"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(primary.boxes, reference["one_to_one"]["boxes"], rtol=1e-4, atol=1e-5)

    projection = reference["projection"]
    ((branch.logits * projection["logits"]).sum() + (branch.boxes * projection["boxes"]).sum()).backward()
    compared = 0
    for name, expected in reference["grads"].items():
        ours = leaves[name.removeprefix("input.")].grad if name.startswith("input.") else params[ours_of[name]].grad
        if ours is None:  # a weight the branch never uses (later layers' self-attention)
            assert expected.abs().max() == 0, name
            continue
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5, msg=name)
        compared += 1
    assert compared >= len(reference["grads"]) - 4 * (num_layers - 1)  # self_attn in/out weights and biases
