"""The ten systems of the MS-DETR paper's comparisons as variants of one base (`BASE+METHOD...`).

Deformable DETR (the base), Deformable-DETR++, DAB-Deformable-DETR, H-DETR, Group DETR, DN-DETR
(on DAB), DINO (on ++), DAC-DETR (on ++), Align-DETR (on DINO) and Mask-Deformable-DETR: the
methods stacked as the repository's reference presets do (e.g. hdetr_pp_r50_300 =
ddetr_pp_r50_300+hybrid). `system_variants` gives each alone, then each with MS-DETR.
"""

from __future__ import annotations

SYSTEMS = ("", "+pp", "+dab", "+pp+hybrid", "+pp+group", "+dab+dn", "+pp+dino", "+pp+dac", "+pp+dino+align", "+mask")


def system_variants(base: str = "tiny_ddetr") -> list[str]:
    """The 20 variants: the ten systems on `base` alone, then the same ten with MS-DETR."""
    alone = [f"{base}{s}" for s in SYSTEMS]
    return alone + [f"{v}+ms_detr" for v in alone]
