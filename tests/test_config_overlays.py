"""Training methods as config overlays (`BASE+METHOD+...`): equal to the combined presets, order
independent, scaled from the base, and one clear line when a method cannot apply."""

from __future__ import annotations

import pytest

from msdetr.config.dataclass_io import to_dict
from msdetr.config.loader import load_config
from msdetr.config.overlays import METHOD_ORDER
from msdetr.errors import MsdetrError

# Each preset that is a base plus methods, and its overlay form.
EQUIVALENT = {
    "ddetr_pp_r50_300": "ddetr_r50_300+pp",
    "msdetr_r50_300": "ddetr_r50_300+ms_detr",
    "msdetr_pp_r50_300": "ddetr_pp_r50_300+ms_detr",
    "msdetr_pp_r50_900": "ddetr_pp_r50_900+ms_detr",
    "hdetr_pp_r50_300": "ddetr_pp_r50_300+hybrid",
    "msdetr_hdetr_pp_r50_300": "ddetr_pp_r50_300+hybrid+ms_detr",
    "group_ddetr_pp_r50_300": "ddetr_pp_r50_300+group",
    "msdetr_group_ddetr_pp_r50_300": "ddetr_pp_r50_300+group+ms_detr",
    "dac_ddetr_pp_r50_300": "ddetr_pp_r50_300+dac",
    "msdetr_dac_ddetr_pp_r50_300": "ddetr_pp_r50_300+dac+ms_detr",
    "dab_ddetr_r50_300": "ddetr_r50_300+dab",
    "msdetr_dab_ddetr_r50_300": "ddetr_r50_300+dab+ms_detr",
    "dn_dab_ddetr_r50_300": "ddetr_r50_300+dab+dn",
    "msdetr_dn_dab_ddetr_r50_300": "ddetr_r50_300+dab+dn+ms_detr",
    "dino_r50_900": "ddetr_pp_r50_900+dino",
    "msdetr_dino_r50_900": "ddetr_pp_r50_900+dino+ms_detr",
    "align_dino_r50_900": "ddetr_pp_r50_900+dino+align",
    "msdetr_align_dino_r50_900": "ddetr_pp_r50_900+dino+align+ms_detr",
    "mask_ddetr_r50_300": "ddetr_r50_300+mask",
    "msdetr_mask_ddetr_r50_300": "ddetr_r50_300+mask+ms_detr",
    "tiny_seg": "tiny+mask",
    "mrdetr_ddetr_pp_r50_300": "ddetr_pp_r50_300+mr_detr",
    "mrdetr_ddetr_pp_r50_900": "ddetr_pp_r50_900+mr_detr",
    "mrdetr_dino_r50_900": "ddetr_pp_r50_900+dino+mr_detr",
    "mrdetr_align_dino_r50_900": "ddetr_pp_r50_900+dino+align+mr_detr",
    "msdetr_mrdetr_ddetr_pp_r50_300": "ddetr_pp_r50_300+mr_detr+ms_detr",
    "msdetr_mrdetr_ddetr_pp_r50_900": "ddetr_pp_r50_900+mr_detr+ms_detr",
}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(a, b) -> dict:
    """Flattened keys whose values differ, name and description aside."""
    fa, fb = _flat(to_dict(a)), _flat(to_dict(b))
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if k not in ("name", "description") and fa.get(k) != fb.get(k)}


# Recipe values a preset takes from its release that are not part of the method (so that variants
# in `msdetr compare` train with the same optimizer and evaluation): preset value, overlay value.
RECIPE = {
    "align_dino_r50_900": {
        "model.backbone.freeze_at": ("stem", "layer1"),
        "train.optimizer.lr": (1e-4, 2e-4),
        "train.optimizer.lr_backbone": (1e-5, 2e-5),
        "train.optimizer.lr_linear_proj_mult": (1.0, 0.1),
    },
    "dac_ddetr_pp_r50_300": {"eval.topk": (300, 100), "eval.nms_iou": (0.8, None)},
}
RECIPE["msdetr_align_dino_r50_900"] = RECIPE["align_dino_r50_900"]
RECIPE["msdetr_dac_ddetr_pp_r50_300"] = RECIPE["dac_ddetr_pp_r50_300"]
# Mr. DETR's releases: detrex's optimizer (lr 1e-4, backbone x0.1, no offset multiplier), stem frozen, top 300
MRDETR_RECIPE = {
    "model.backbone.freeze_at": ("stem", "layer1"),
    "train.optimizer.lr": (1e-4, 2e-4),
    "train.optimizer.lr_backbone": (1e-5, 2e-5),
    "train.optimizer.lr_linear_proj_mult": (1.0, 0.1),
}
for _preset in ("mrdetr_ddetr_pp_r50_300", "msdetr_mrdetr_ddetr_pp_r50_300"):
    RECIPE[_preset] = {**MRDETR_RECIPE, "eval.topk": (300, 100)}
for _preset in ("mrdetr_ddetr_pp_r50_900", "mrdetr_dino_r50_900", "msdetr_mrdetr_ddetr_pp_r50_900"):
    RECIPE[_preset] = MRDETR_RECIPE
# Mr. DETR's Align release takes Align-DETR's loss, not its mixed matching nor its box noise
RECIPE["mrdetr_align_dino_r50_900"] = {**MRDETR_RECIPE, "model.denoising.box_noise": (0.4, 1.0),
                                       "supervision.many_to_one.enabled": (False, True)}


@pytest.mark.parametrize("preset", sorted(EQUIVALENT))
def test_combined_preset_equals_overlay_form(preset):
    differences = config_differences(load_config(preset), load_config(EQUIVALENT[preset]))
    assert differences == RECIPE.get(preset, {})


def test_order_of_methods_does_not_matter():
    a = load_config("tiny_ddetr+ms_detr+hybrid")
    b = load_config("tiny_ddetr+hybrid+ms_detr")
    assert to_dict(a) == to_dict(b)
    assert a.name == "tiny_ddetr+hybrid+ms_detr"


def test_values_scale_with_the_base():
    tiny = load_config("tiny_ddetr+hybrid")
    assert tiny.model.hybrid.num_queries == 5 * tiny.model.num_queries == 300
    assert load_config("ddetr_pp_r50_300+hybrid").model.hybrid.num_queries == 1500
    assert load_config("tiny_ddetr+hybrid", ["model.num_queries=30"]).model.hybrid.num_queries == 150
    # an override of the method's own value wins
    assert load_config("tiny_ddetr+hybrid", ["model.hybrid.num_queries=7"]).model.hybrid.num_queries == 7
    assert load_config("ddetr_pp_r50_300+dino").model.denoising.dn_number == 33
    assert load_config("tiny_ddetr+dino").model.denoising.dn_number == 7
    assert load_config("tiny_ddetr+mask").supervision.masks.num_points == 1024


def test_tiny_ddetr_is_tiny_without_msdetr():
    base, tiny = load_config("tiny_ddetr"), load_config("tiny")
    assert base.supervision.strategy == "one_to_one" and not base.model.mixed_supervision.enabled
    assert set(config_differences(base, tiny)) == {"model.mixed_supervision.enabled", "supervision.strategy"}
    msdetr = load_config("tiny_ddetr+ms_detr")
    assert msdetr.supervision.strategy == "mixed" and msdetr.supervision.one_to_many.k == 6
    assert msdetr.supervision.loss_weights.one_to_one.cls == 1.0


@pytest.mark.parametrize("method", METHOD_ORDER)
@pytest.mark.parametrize("base", ["tiny", "tiny_ddetr", "ddetr_r50_300", "ddetr_pp_r50_300"])
def test_every_method_applies_to_the_bases_or_refuses_in_one_line(base, method):
    spec = f"{base}+{method}"
    if (base, method) == ("ddetr_pp_r50_300", "dab"):
        with pytest.raises(MsdetrError, match=r"method 'dab'.*mixed query selection") as err:
            load_config(spec)
        assert "\n" not in str(err.value)
        return
    cfg = load_config(spec)
    assert cfg.name == spec
    load_config(f"{spec}+ms_detr" if method != "ms_detr" else spec)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tiny+nope", r"unknown method 'nope'; methods: pp, dab"),
        ("tiny+hybrid+hybrid", r"method 'hybrid' given twice"),
        ("tiny+dab+pp", r"methods 'pp' and 'dab' exclude each other"),
        ("tiny+dino+dn", r"methods 'dn' and 'dino' exclude each other"),
        ("ddetr_r50_300+pp+dab", r"methods 'pp' and 'dab'"),
        ("dab_ddetr_r50_300+pp", r"method 'pp'.*needs a two-stage base"),
        ("ddetr_r50_300+pp", None),
        ("+ms_detr", r"no base before '\+'"),
        ("nosuchpreset+ms_detr", r"nosuchpreset: no such config file or preset"),
    ],
)
def test_bad_variants_fail_in_one_line(spec, message):
    if message is None:  # the control: the same methods on a fitting base
        load_config(spec)
        return
    with pytest.raises(MsdetrError, match=message) as err:
        load_config(spec)
    assert "\n" not in str(err.value)


def test_yaml_base_may_be_a_variant(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: tiny_ddetr+hybrid\nname: mine\nmodel: {num_queries: 40}\n")
    cfg = load_config(str(path))
    assert cfg.name == "mine" and cfg.model.num_queries == 40 and cfg.model.hybrid.num_queries == 300
    variant = load_config(f"{path}+ms_detr")
    assert variant.name == "mine+ms_detr" and variant.supervision.strategy == "mixed"
