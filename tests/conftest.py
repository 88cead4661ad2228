"""Session fixtures shared by every test; the helpers themselves live in `tests/support/`.

Test tiers (docs/testing.md): `python -m pytest -q` runs everything; `-m "not slow"` is the
fast tier (`-n 2` spreads either over two worker processes, pytest-xdist). Mark `@pytest.mark.slow`
a test that builds a ResNet-50, spawns a subprocess, exports ONNX, or trains more than a few steps.
"""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):  # `-n 2`: one torch thread per worker, the cores are the workers'
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def synthetic_cache(tmp_path_factory):
    """`$MSDETR_CACHE` for the session: one temporary folder, so that every run of the synthetic
    set with the same parameters (`support.tiny.tiny_run_config()` without a folder, the CLI's
    default data) generates it once and nothing is written to the user's cache.
    Subprocesses started with `os.environ` inherit it; a test may still set its own."""
    path = tmp_path_factory.mktemp("msdetr-cache")
    previous = os.environ.get("MSDETR_CACHE")
    os.environ["MSDETR_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("MSDETR_CACHE", None)
    else:
        os.environ["MSDETR_CACHE"] = previous


@pytest.fixture
def onnx():
    """The `onnx` module, for the tests that export and run graphs (skipped without onnx or
    onnxruntime); asked for by those tests only, so that collecting the others does not import it."""
    pytest.importorskip("onnxruntime")
    return pytest.importorskip("onnx")
