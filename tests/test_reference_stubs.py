"""The fixture generators' import stubber (`support.reference_stubs`): stand-in modules, their
packages, attributes set on a real module, and `.cuda()` / `.to("cuda")` kept on the CPU."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from support.reference_stubs import SINGLE_PROCESS, stub_reference_imports


@pytest.fixture
def clean_modules():
    names = ["_msdetr_stub", "_msdetr_stub.layers", "_msdetr_stub.utils", "_msdetr_real.child", "_msdetr_real"]
    real = types.ModuleType("_msdetr_real")
    real.kept = "yes"
    sys.modules["_msdetr_real"] = real
    yield real
    for name in names:
        sys.modules.pop(name, None)


def test_stand_ins_are_modules_linked_to_stubbed_parents_only(clean_modules):
    box = object()
    stub_reference_imports({"_msdetr_stub": {}, "_msdetr_stub.layers": {"box_iou": box},
                            "_msdetr_stub.utils": SINGLE_PROCESS, "_msdetr_real.child": {"x": 1},
                            "_msdetr_real": {"added": 2}})
    import _msdetr_stub.layers  # noqa: F401  (the import system finds the stand-in)

    stub = sys.modules["_msdetr_stub"]
    assert stub.layers is sys.modules["_msdetr_stub.layers"] and stub.layers.box_iou is box
    assert stub.utils.get_world_size() == 1 and not stub.utils.is_dist_avail_and_initialized()
    # a module already imported is kept, with the attributes added; children link to stubbed parents
    assert sys.modules["_msdetr_real"] is clean_modules and clean_modules.kept == "yes" and clean_modules.added == 2
    assert clean_modules.child.x == 1


def test_cuda_calls_stay_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "cuda", torch.Tensor.cuda)  # restored after the test
    monkeypatch.setattr(torch.Tensor, "to", torch.Tensor.to)
    stub_reference_imports({}, cuda_on_cpu=True)
    x = torch.ones(2)
    assert x.cuda() is x
    assert x.to("cuda").device.type == "cpu" and x.to("cuda:0", torch.float64).dtype == torch.float64
    assert x.to(device="cuda").device.type == "cpu"
