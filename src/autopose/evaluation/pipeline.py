"""The evaluation pipeline: heatmaps from a network (or the ground-truth oracle) to COCO AP or
MPII PCKh, shared by ``autopose test``, validation during training and the search's reward.

The path is the reference one: crop each person box, predict heatmaps (averaged with those
of the mirrored crop, flipped back and shifted one pixel, when ``test.flip``), decode with
the quarter-pixel offset, map back through the inverse crop transform, rescore, OKS-NMS,
and score with pycocotools (COCO) or PCKh (MPII).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from autopose.config import Config
from autopose.data.codec import HeatmapCodec, instance_scores
from autopose.data.formats import dataset_format
from autopose.data.keypoints import KeypointInfo
from autopose.data.loader import iterate, make_loader
from autopose.data.topdown import TopDownDataset
from autopose.data.transforms import normalize_batch
from autopose.errors import UserError
from autopose.evaluation.coco_metric import coco_evaluate, coco_results
from autopose.evaluation.pckh import load_pckh_gt, pckh
from autopose.io import write_json

# (batch, flipped) -> heatmaps (N, K, h, w) for the crops in the batch (mirrored if flipped).
HeatmapFn = Callable[[dict[str, Any], bool], np.ndarray]


@dataclass
class EvalSet:
    """The validation split, ready to predict on and to score."""

    dataset: TopDownDataset
    info: KeypointInfo
    ann_file: Path
    format: str  # a key of SCORERS: coco | mpii


@dataclass
class Predictions:
    """Decoded poses of every person box, in image pixels."""

    coords: np.ndarray  # (N, K, 2)
    maxvals: np.ndarray  # (N, K)
    centers: np.ndarray  # (N, 2)
    scales: np.ndarray  # (N, 2)
    box_scores: np.ndarray  # (N,)
    image_ids: np.ndarray  # (N,)
    indices: np.ndarray  # (N,) the person's index in the dataset

    @staticmethod
    def empty(num_joints: int) -> "Predictions":
        """No persons (a process whose share of a small split is empty)."""
        return Predictions(np.zeros((0, num_joints, 2)), np.zeros((0, num_joints), np.float32),
                           np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32),
                           np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))


def gather_predictions(preds: Predictions) -> Predictions:
    """Every process's predictions on every process, in dataset order (the order one process
    would have produced), for scoring a split that the processes predicted in shares."""
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, dataclasses.asdict(preds))
    merged = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    order = np.argsort(merged["indices"], kind="stable")
    return Predictions(**{k: v[order] for k, v in merged.items()})


def build_eval_set(cfg: Config, oracle: bool = False, quiet: bool = False) -> EvalSet:
    """The val split as a top-down dataset: ground-truth boxes, or detections when
    ``data.val.det_file`` is set (each carrying the overlapping person's joints for the oracle)."""
    fmt = dataset_format(cfg.data.format)
    split = fmt.load_val(cfg.data, oracle, quiet)
    return EvalSet(TopDownDataset(split.records, split.info, cfg.data, train=False, seed=cfg.seed),
                   split.info, split.ann_file, fmt.name)


def oracle_heatmaps(codec: HeatmapCodec, flip_index: np.ndarray) -> HeatmapFn:
    """Ground-truth heatmaps in place of network output, encoded from the crop's joints.

    For the mirrored crop the joints are mirrored at input resolution (``x -> W - 1 - x``)
    and swapped left-right, exactly what a network sees when the test mirrors its input.
    """

    def fn(batch: dict[str, Any], flipped: bool) -> np.ndarray:
        if not flipped:
            return batch["target"].numpy()
        joints = batch["joints"].numpy().copy()
        vis = batch["vis"].numpy()
        joints[..., 0] = codec.input_w - 1 - joints[..., 0]
        joints, vis = joints[:, flip_index], vis[:, flip_index]
        return np.stack([codec.encode(j, v)[0] for j, v in zip(joints, vis)])

    return fn


def network_heatmaps(model: torch.nn.Module, device: torch.device) -> HeatmapFn:
    """Heatmaps from a pose network (in eval mode) for the crops, or their mirror images."""

    @torch.no_grad()
    def fn(batch: dict[str, Any], flipped: bool) -> np.ndarray:
        images = normalize_batch(batch["image"].to(device, non_blocking=True))
        if flipped:
            images = images.flip(3)
        return model(images).float().cpu().numpy()

    return fn


def load_batches(eval_set: EvalSet, cfg: Config,
                 part: tuple[int, int] = (0, 1)) -> list[dict[str, Any]]:
    """The batches of the split, decoded and cropped once (for repeated evaluation).

    ``part=(k, n)``: only batches ``k, k + n, k + 2n, ...`` of the whole split's batches
    (process ``k``'s share of ``n``), without decoding the others.
    """
    return list(iterate(_loader(eval_set, cfg, part)))


def _loader(eval_set: EvalSet, cfg: Config, part: tuple[int, int] = (0, 1)):
    ds = eval_set.dataset
    size, b = len(ds), cfg.test.batch_size
    k, n = part
    indices = None if n == 1 else [
        i for start in range(k * b, size, n * b) for i in range(start, min(start + b, size))]
    return make_loader(ds, b, min(cfg.data.workers, max(1, size // 8)), sampler=indices)


def predict(eval_set: EvalSet, heatmap_fn: HeatmapFn, cfg: Config, progress: bool = True,
            batches: list[dict[str, Any]] | None = None, flip: bool | None = None,
            part: tuple[int, int] = (0, 1)) -> Predictions:
    """Run ``heatmap_fn`` over the split (or over pre-loaded ``batches`` of it, or over
    process ``k``'s share ``part=(k, n)`` of its batches) and decode every person's pose to
    image pixels. ``flip`` defaults to ``cfg.test.flip``."""
    codec = eval_set.dataset.codec
    flip_index = eval_set.info.flip_index
    flip = cfg.test.flip if flip is None else flip
    if batches is None:
        loader = _loader(eval_set, cfg, part)
        source, total = iterate(loader), len(loader)
    else:
        source, total = iter(batches), len(batches)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("coords", "maxvals", "centers", "scales",
                                           "box_scores", "image_ids", "indices")}
    for batch in tqdm(source, total=total, desc="test", disable=not progress, leave=False):
        heatmaps = heatmap_fn(batch, False)
        if flip:
            flipped = heatmap_fn(batch, True)
            heatmaps = (heatmaps + codec.flip_back(flipped, flip_index, cfg.test.shift_heatmap)) * 0.5
        coords, maxvals = codec.decode(heatmaps)
        centers, scales = batch["center"].numpy(), batch["scale"].numpy()
        parts["coords"].append(codec.heatmap_to_image(coords, centers, scales))
        parts["maxvals"].append(maxvals)
        parts["centers"].append(centers)
        parts["scales"].append(scales)
        parts["box_scores"].append(batch["box_score"].numpy())
        parts["image_ids"].append(batch["image_id"].numpy())
        parts["indices"].append(batch["index"].numpy())
    if not parts["coords"]:
        return Predictions.empty(eval_set.info.num_joints)
    return Predictions(**{k: np.concatenate(v) for k, v in parts.items()})


def _score_coco(eval_set: EvalSet, preds: Predictions, cfg: Config,
                results_path: Path | None) -> dict[str, float]:
    """COCO AP/AR (fractions): rescore, OKS-NMS, COCOeval; writes ``results_path`` if given."""
    sigmas = eval_set.info.sigmas_array
    scores = instance_scores(preds.maxvals, preds.box_scores, cfg.test.in_vis_thre)
    areas = np.prod(preds.scales * 200.0, axis=1)
    results = coco_results(preds.image_ids, preds.coords, preds.maxvals, scores, areas,
                           sigmas, cfg.test.oks_thre)
    if results_path is not None:
        write_json(results_path, results, indent=None)
    return coco_evaluate(eval_set.ann_file, results, sigmas)


def _score_pckh(eval_set: EvalSet, preds: Predictions, cfg: Config,
                results_path: Path | None) -> dict[str, float]:
    """MPII PCKh (percent) against ``data.val.pckh_gt``; writes no results file."""
    if not cfg.data.val.pckh_gt:
        raise UserError("config: data.val.pckh_gt: MPII PCKh needs the ground truth in "
                        "gt_valid.mat layout (pos_gt_src, jnt_missing, headboxes_src)")
    order = np.argsort(preds.image_ids)
    return pckh(preds.coords[order], load_pckh_gt(cfg.data.val.pckh_gt))


Scorer = Callable[[EvalSet, Predictions, Config, Path | None], dict[str, float]]

# The metric of each dataset format of autopose.data.formats.FORMATS.
SCORERS: dict[str, Scorer] = {"coco": _score_coco, "mpii": _score_pckh}


def score(eval_set: EvalSet, preds: Predictions, cfg: Config,
          results_path: Path | None = None) -> dict[str, float]:
    """COCO AP/AR (fractions) or MPII PCKh (percent) of decoded predictions."""
    return SCORERS[eval_set.format](eval_set, preds, cfg, results_path)


def evaluate(cfg: Config, heatmap_fn: HeatmapFn, eval_set: EvalSet | None = None,
             results_path: Path | None = None, progress: bool = True,
             part: tuple[int, int] = (0, 1)) -> dict[str, float]:
    """Predict and score the val split of ``cfg`` with ``heatmap_fn``.

    With ``part=(rank, world_size)`` in a process group, every process predicts its share
    of the batches, rank 0 scores them all (and writes ``results_path``), and every process
    returns rank 0's metrics.
    """
    eval_set = eval_set or build_eval_set(cfg)
    rank, world = part
    preds = predict(eval_set, heatmap_fn, cfg, progress and rank == 0, part=part)
    if world == 1:
        return score(eval_set, preds, cfg, results_path)
    preds = gather_predictions(preds)
    # Rank 0's metrics on every rank; torch.distributed directly, as gather_predictions,
    # since evaluation/ sits below engine/distributed.py.
    box = [score(eval_set, preds, cfg, results_path) if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
