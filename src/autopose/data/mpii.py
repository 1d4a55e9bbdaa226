"""MPII in the HRNet / mmpose json layout: ``[{image, center, scale, joints, joints_vis}]``.

MPII coordinates are 1-based (MATLAB); as the reference code does, the center is moved
15 px * scale down, the scale padded by 1.25, and everything converted to 0-based.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autopose.config import DataConfig, SplitConfig
from autopose.data.keypoints import MPII16
from autopose.data.records import (ImageChecker, PersonRecord, SkipCounter, finite_floats,
                                   number, require, shown, text)
from autopose.io import read_json
from autopose.errors import UserError


def load_mpii(split: SplitConfig, data: DataConfig, role: str = "val",
              quiet: bool = False) -> list[PersonRecord]:
    """Person records of an MPII json; ``image_id`` is the record's index in the file."""
    if split.ann is None or split.images is None:
        raise UserError(f"config: data.{role}.ann and data.{role}.images are required")
    image_dir = Path(split.images)
    if not image_dir.is_dir():
        raise UserError(f"{image_dir}: data.{role}.images: folder not found")
    doc = read_json(split.ann, f"data.{role}.ann")
    src = str(split.ann)
    if not isinstance(doc, list):
        raise UserError(f"{src}: expected a list of person records")
    k = MPII16.num_joints
    skips = SkipCounter(src)
    checker = ImageChecker(data.corrupt_images)
    records: list[PersonRecord] = []
    for i, a in enumerate(doc):
        where = f"{src}: record #{i}"
        if not isinstance(a, dict):
            raise UserError(f"{where}: expected an object, got {shown(a)}")
        require(a, ("image", "center", "scale", "joints", "joints_vis"), where)
        image = text(a["image"], where, "image")
        center = finite_floats(a["center"], 2, where, "center").astype(np.float32)
        s = number(a["scale"], where, "scale")
        if s <= 0:
            raise UserError(f"{where}: scale: must be positive, got {s}")
        # The reference layout: joints as 16 [x, y] pairs, joints_vis as 16 flags 0 or 1.
        joints = finite_floats(a["joints"], 2 * k, where, "joints", rows=k).reshape(k, 2)
        vis = finite_floats(a["joints_vis"], k, where, "joints_vis")
        if not np.isin(vis, (0, 1)).all():
            raise UserError(f"{where}: joints_vis: flags must be 0 or 1")
        if vis.max() <= 0:
            skips.skip("no labelled keypoint")
            continue
        if center[0] != -1:
            center[1] = center[1] + 15 * s
            s = s * 1.25
        scale = np.array([s, s], dtype=np.float32)
        path = image_dir / image
        if not checker.usable(path, i, src):
            skips.skip("damaged image")
            continue
        records.append(PersonRecord(
            image_path=str(path), image_id=i, center=center - 1, scale=scale,
            joints=(joints - 1).astype(np.float32), vis=(vis > 0).astype(np.float32)))
    if not quiet:
        skips.report(len(records))
    if not records:
        raise UserError(f"{src}: no usable person record (empty dataset)")
    return records
