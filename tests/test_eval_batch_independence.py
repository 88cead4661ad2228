"""Evaluation gives the same detections and metrics for any batch size (and so any padding)."""

from __future__ import annotations

import torch

from msdetr.data.build import build_dataset
from msdetr.engine.data_setup import build_val_loader
from msdetr.evaluation.coco_eval import CocoEvaluator
from msdetr.evaluation.evaluate import evaluate, predict_batches
from msdetr.modeling.build import build_model
from support.tiny import tiny_run_config


def test_detections_and_metrics_do_not_depend_on_batch_size(tmp_path):
    cfg = tiny_run_config(train_images=2, val_images=6)
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    dataset = build_dataset(cfg.data, "val")
    sizes = {tuple(dataset[i][0].shape[-2:]) for i in range(len(dataset))}
    assert len(sizes) > 1  # images of different sizes, so batches get padded

    def run(batch_size):
        found = {}
        loader = build_val_loader(dataset, batch_size, num_workers=0)
        predict_batches(model, loader, torch.device("cpu"), topk=20, on_batch=lambda ids, d: found.update(zip(ids, d)))
        evaluator = CocoEvaluator(dataset.annotation_file, dataset.label_to_category_id)
        return found, evaluate(model, loader, evaluator, torch.device("cpu"), topk=20)

    alone, metrics_alone = run(1)
    together, metrics_together = run(4)
    assert sorted(alone) == sorted(together) == sorted(dataset.image_ids)
    for image_id, det in alone.items():
        other = together[image_id]
        torch.testing.assert_close(det.scores, other.scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(det.boxes, other.boxes, atol=1e-2, rtol=0)  # pixels
    assert metrics_alone.stats == metrics_together.stats
