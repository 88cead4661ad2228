"""Compatibility name: the reference fixtures load with `support.references.load_reference` (import from there)."""

from support.references import load_reference, official_outputs_to_detector_output, reference_path


def load_fixture() -> dict:
    """The official MS-DETR fixture (`load_reference("official")`)."""
    return load_reference("official")


def fixture_path():
    return reference_path("official")


__all__ = ["fixture_path", "load_fixture", "official_outputs_to_detector_output"]
