"""One spec per dataset format: how to read its splits and how its numbers are named and shown.

Adding a format means a loader in ``data/``, one :class:`DatasetFormat` here, and its scoring
function in :data:`autopose.evaluation.pipeline.SCORERS` (data/ does not import evaluation/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autopose.config import DataConfig
from autopose.data.coco import load_coco, load_detections
from autopose.data.keypoints import MPII16, KeypointInfo
from autopose.data.mpii import load_mpii
from autopose.data.records import PersonRecord
from autopose.errors import UserError


@dataclass(frozen=True)
class ValSplit:
    """The person boxes of a val split and what scoring them needs."""

    records: list[PersonRecord]
    info: KeypointInfo
    ann_file: Path  # the annotation file COCOeval reads (unused by PCKh)


@dataclass(frozen=True)
class DatasetFormat:
    """What the commands need to know about one dataset format."""

    name: str
    # (data, quiet) -> person records and keypoint layout of ``data.train``.
    load_train: Callable[[DataConfig, bool], tuple[list[PersonRecord], KeypointInfo]]
    # (data, oracle, quiet) -> ``data.val``: ground-truth boxes, or detections from
    # ``data.val.det_file`` (carrying the overlapping person's joints when ``oracle``).
    load_val: Callable[[DataConfig, bool, bool], ValSplit]
    # (num_joints, data) -> why a network predicting that many joints cannot be scored on
    # this format's val split, or None.
    joints_mismatch: Callable[[int, DataConfig], str | None]
    best_metric: str  # the metric that picks best.pt: "AP" or PCKh "Mean"
    percent: bool  # the metrics are percentages (PCKh), not fractions (AP)
    # Missing paths are filled with the built-in synthetic set (COCO-format).
    synthetic_default: bool = False


def _coco_train(data: DataConfig, quiet: bool) -> tuple[list[PersonRecord], KeypointInfo]:
    s = load_coco(data.train, data, "train", quiet=quiet)
    return s.records, s.info


def _coco_val(data: DataConfig, oracle: bool, quiet: bool) -> ValSplit:
    gt = load_coco(data.val, data, "val", quiet=quiet)
    records = gt.records
    if data.val.det_file:
        records = load_detections(data.val.det_file, gt, data, data.val.det_score_thresh,
                                  attach_gt=oracle, quiet=quiet)
    return ValSplit(records, gt.info, gt.ann_file)


def _coco_joints(k: int, data: DataConfig) -> str | None:
    if data.keypoints.flip_pairs is None and k != 17:
        return "the config's COCO layout has 17 (set data.keypoints for a custom layout)"
    return None


def _mpii_train(data: DataConfig, quiet: bool) -> tuple[list[PersonRecord], KeypointInfo]:
    return load_mpii(data.train, data, "train", quiet=quiet), MPII16


def _mpii_val(data: DataConfig, oracle: bool, quiet: bool) -> ValSplit:
    if data.val.det_file:
        raise UserError("config: data.val.det_file: MPII is tested on its annotated boxes only")
    return ValSplit(load_mpii(data.val, data, "val", quiet=quiet), MPII16,
                    Path(data.val.ann or ""))


def _mpii_joints(k: int, data: DataConfig) -> str | None:
    return "MPII has 16" if k != 16 else None


COCO = DatasetFormat("coco", _coco_train, _coco_val, _coco_joints, best_metric="AP",
                     percent=False, synthetic_default=True)
MPII = DatasetFormat("mpii", _mpii_train, _mpii_val, _mpii_joints, best_metric="Mean",
                     percent=True)

FORMATS: dict[str, DatasetFormat] = {"coco": COCO, "mpii": MPII}


def dataset_format(name: str) -> DatasetFormat:
    """The spec of ``data.format``; an unknown name is a UserError listing the known ones."""
    if name not in FORMATS:
        raise UserError(f"config: data.format: unknown format {name!r} "
                        f"({' | '.join(FORMATS)})")
    return FORMATS[name]
