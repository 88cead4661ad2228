"""Training: the trainer loop, optimizer and schedule, checkpoints, distributed helpers, logging.

Entry point: `msdetr.engine.trainer.Trainer(cfg, run_dir).fit()` (what `msdetr train` runs).
"""
