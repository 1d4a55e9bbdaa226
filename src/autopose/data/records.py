"""One person instance as the top-down pipeline sees it, and strict readers for its inputs."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from autopose.errors import UserError


@dataclass
class PersonRecord:
    """A person box (as center and scale) with its joints, ready to crop.

    ``joints`` ``(K, 2)`` and ``vis`` ``(K,)`` are in original image pixels, 0-based; for a
    detection box without matched ground truth they are zeros.
    """

    image_path: str
    image_id: int
    center: np.ndarray
    scale: np.ndarray
    joints: np.ndarray
    vis: np.ndarray
    box_score: float = 1.0
    ann_id: int | None = None
    bbox: np.ndarray | None = None  # [x, y, w, h] of the (cleaned) box


@dataclass
class SkipCounter:
    """Records a real pipeline drops (crowd, no labelled keypoint, zero-area box), by reason."""

    source: str
    counts: Counter = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        self.counts[reason] += 1

    def report(self, kept: int, what: str = "person instances") -> None:
        skipped = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items())) or "none"
        print(f"{self.source}: {kept} {what}; skipped: {skipped}", file=sys.stderr)


def read_image(path: str, image_id: int) -> np.ndarray:
    """Decode an image as uint8 BGR ``(H, W, 3)``; a missing or corrupt file is a UserError."""
    img = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        what = "missing" if not Path(path).exists() else "cannot be decoded"
        raise UserError(f"{path}: image id={image_id}: file {what}")
    return img


def finite_floats(values: Any, n: int, source: str, field_name: str) -> np.ndarray:
    """``values`` as a float64 array of length ``n`` with no NaN or infinity, else UserError."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"{source}: {field_name}: not a list of numbers") from None
    if arr.size != n:
        raise UserError(f"{source}: {field_name}: expected {n} numbers, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{source}: {field_name}: contains NaN or infinity")
    return arr
