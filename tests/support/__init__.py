"""Shared test helpers (no tests here); `tests/conftest.py` adds the session fixtures.

- `support.tiny`: the one tiny-model builder (`tiny_model_config`), the tiny run config on the
  session's shared synthetic data (`tiny_run_config`), a preset shrunk to the tiny size
  (`shrunken_preset`), `--set` strings of a model (`model_overrides`), padded image batches
  (`padded_batch`, `pad_batch`), `final_weights`.
- `support.fakes`: random detector outputs and targets, a learned query group (`LearnedGroup`).
- `support.data`: tiny COCO datasets written to disk.
- `support.checkpoints`: random-weight checkpoints, the squares dataset, a trained checkpoint.
- `support.references`: the one loader of the reference (conformance) fixtures, and the
  conversions / seeded weights the conformance tests share.
- `support.reference_stubs`: the one import stubber of the fixture generators (`tests/make_*_fixture.py`).
"""
