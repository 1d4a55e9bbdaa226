"""The controller's reward: OKS AP of a sub-network with the shared supernet weights.

The reward crops are decoded once and kept in memory; each evaluation runs the network it is
given on them (in the search: the network derivation would build, with the supernet's
weights), then the ordinary test path (decode, rescoring, OKS-NMS, COCOeval) scores the
result.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autopose.config import Config
from autopose.data.transforms import normalize_batch
from autopose.errors import UserError
from autopose.evaluation.oks import oks
from autopose.evaluation.pipeline import (EvalSet, Predictions, gather_predictions,
                                          load_batches, predict, score)


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """BatchNorm normalises with each batch's own statistics and leaves the running ones
    untouched (momentum 0): running statistics of a supernet mix every sub-network trained so
    far, and do not describe the one under evaluation."""
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.training, m.momentum))
            m.train()
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, training, momentum in saved:
            m.train(training)
            m.momentum = momentum


class RewardEvaluator:
    """The reward of networks ``images (N, 3, H, W) -> heatmaps`` on a fixed evaluation set:
    in the search, sub-networks built from the supernet's shared weights."""

    def __init__(self, eval_set: EvalSet, cfg: Config, device: torch.device,
                 rank: int = 0, world_size: int = 1):
        self.eval_set = eval_set
        self.cfg = cfg
        self.device = device
        self.world_size = world_size
        # Each process decodes and predicts its share of the batches; the reward scores
        # them together.
        self.batches: list[dict[str, Any]] = load_batches(eval_set, cfg, (rank, world_size))

    def __call__(self, model: nn.Module) -> float:
        preds = self.predictions(model)
        if self.cfg.search.reward == "oks":
            return self.mean_oks(preds)
        # COCOeval reports -1 when no ground truth is in range: no signal, not a penalty.
        return max(score(self.eval_set, preds, self.cfg)["AP"], 0.0)

    @torch.no_grad()
    def predictions(self, model: nn.Module) -> Predictions:
        """Poses of every reward person, from all processes, predicted by ``model``."""
        was_training = model.training
        model.eval()

        def heatmaps(batch: dict[str, Any], flipped: bool) -> np.ndarray:
            images = normalize_batch(batch["image"].to(self.device),
                                     self.cfg.search.channels_last)
            if flipped:
                images = images.flip(3)
            return model(images).float().cpu().numpy()

        try:
            with batch_statistics(model):
                preds = predict(self.eval_set, heatmaps, self.cfg, progress=False,
                                batches=self.batches, flip=self.cfg.search.reward_flip)
        finally:
            model.train(was_training)
        return gather_predictions(preds) if self.world_size > 1 else preds

    def mean_oks(self, preds: Predictions) -> float:
        """Mean over ground-truth persons of the OKS of the pose predicted in their box."""
        if not hasattr(self, "_gt"):
            doc = json.loads(Path(self.eval_set.ann_file).read_text())
            by_id = {a["id"]: a for a in doc["annotations"] if "id" in a}
            records = self.eval_set.dataset.records
            if any(r.ann_id not in by_id for r in records):
                raise UserError(f"{self.eval_set.ann_file}: search.reward: oks needs "
                                "ground-truth boxes with annotation ids (no det_file)")
            self._gt = [by_id[r.ann_id] for r in records]
        sigmas = self.eval_set.info.sigmas_array
        k = len(sigmas)
        values = []
        for i, xy in zip(preds.indices, preds.coords):
            ann = self._gt[int(i)]
            gt = np.asarray(ann["keypoints"], np.float64).reshape(k, 3)
            values.append(float(oks(gt, float(ann["area"]), xy[None], sigmas,
                                    np.asarray(ann["bbox"], np.float64))[0]))
        return float(np.mean(values)) if values else 0.0
