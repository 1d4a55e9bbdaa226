"""Keypoint metadata: names, flip pairs, OKS sigmas, skeleton, upper and lower body.

COCO-17 and MPII-16 are built in. A custom COCO-format set takes its joint names and
skeleton from its category and its flip pairs and sigmas from the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from autopose.config import KeypointConfig
from autopose.errors import UserError


@dataclass(frozen=True)
class KeypointInfo:
    """Everything about a keypoint layout that transforms, codec and metrics need.

    Indices are 0-based. ``sigmas`` are the per-joint OKS constants (COCO's, so that
    ``2 * sigma`` is the standard deviation used by ``computeOks``).
    """

    dataset: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    skeleton: tuple[tuple[int, int], ...]
    upper_body: tuple[int, ...]
    lower_body: tuple[int, ...]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation ``p`` such that joint ``j`` of a mirrored person is joint ``p[j]``."""
        idx = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return idx

    @property
    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float64)


COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

COCO17 = KeypointInfo(
    dataset="coco",
    names=COCO_NAMES,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    sigmas=(.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107,
            .087, .087, .089, .089),
    # COCO's category skeleton, converted to 0-based indices.
    skeleton=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
              (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
              (3, 5), (4, 6)),
    upper_body=tuple(range(0, 11)),
    lower_body=tuple(range(11, 17)),
)

MPII16 = KeypointInfo(
    dataset="mpii",
    names=("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
           "pelvis", "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
           "right_shoulder", "left_shoulder", "left_elbow", "left_wrist"),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    # MPII has no OKS constants of its own; these (mmpose's) serve OKS-NMS only.
    sigmas=(.089, .083, .107, .107, .083, .089, .026, .026, .026, .026, .062, .072, .179,
            .179, .072, .062),
    skeleton=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
              (8, 12), (12, 11), (11, 10), (8, 13), (13, 14), (14, 15)),
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    lower_body=(0, 1, 2, 3, 4, 5, 6),
)


def _check_pairs(pairs: Any, k: int, source: str) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    for p in pairs:
        if len(p) != 2:
            raise UserError(f"{source}: data.keypoints.flip_pairs: {p!r} is not a pair")
        a, b = int(p[0]), int(p[1])
        if not (0 <= a < k and 0 <= b < k) or a == b:
            raise UserError(f"{source}: data.keypoints.flip_pairs: {p!r} out of range for {k} joints")
        if a in seen or b in seen:
            raise UserError(f"{source}: data.keypoints.flip_pairs: joint in two pairs at {p!r}")
        seen.update((a, b))
        out.append((a, b))
    return tuple(out)


def from_coco_category(category: dict[str, Any], cfg: KeypointConfig, source: str) -> KeypointInfo:
    """Metadata for a COCO-format set from its category and the config.

    The 17 COCO joints in COCO's order get the built-in metadata (config values, when set,
    take precedence). Any other layout needs ``data.keypoints.flip_pairs`` and
    ``data.keypoints.sigmas``; a missing or inconsistent value is a :class:`UserError`.
    """
    names = category.get("keypoints")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{source}: categories[id={category.get('id')}].keypoints: "
                        "missing or not a list of joint names")
    k = len(names)
    builtin = COCO17 if tuple(names) == COCO_NAMES else None
    raw_skeleton = category.get("skeleton") or []
    if not isinstance(raw_skeleton, list):
        raise UserError(f"{source}: categories[id={category.get('id')}].skeleton: expected a "
                        f"list of joint pairs, got {raw_skeleton!r:.40}")
    skeleton = []
    for e in raw_skeleton:
        # Integers only: bool is an int in Python, and a float or a string is not an index.
        if (not isinstance(e, list) or len(e) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= k
                           for i in e)):
            raise UserError(f"{source}: categories[id={category.get('id')}].skeleton: "
                            f"edge {e!r:.40} is not a pair of 1-based joint indices <= {k}")
        skeleton.append((e[0] - 1, e[1] - 1))

    if cfg.flip_pairs is not None:
        flip_pairs = _check_pairs(cfg.flip_pairs, k, source)
    elif builtin is not None:
        flip_pairs = builtin.flip_pairs
    else:
        raise UserError(f"{source}: data.keypoints.flip_pairs: required for a custom "
                        f"keypoint layout ({k} joints: {', '.join(names[:4])}...)")
    if cfg.sigmas is not None:
        if len(cfg.sigmas) != k or not all(0 < s < math.inf for s in cfg.sigmas):
            raise UserError(f"{source}: data.keypoints.sigmas: need {k} positive values, "
                            f"got {len(cfg.sigmas)}")
        sigmas = tuple(float(s) for s in cfg.sigmas)
    elif builtin is not None:
        sigmas = builtin.sigmas
    else:
        raise UserError(f"{source}: data.keypoints.sigmas: required for a custom keypoint "
                        f"layout ({k} joints)")
    if cfg.upper_body is not None:
        if not all(0 <= i < k for i in cfg.upper_body):
            raise UserError(f"{source}: data.keypoints.upper_body: index out of range for {k} joints")
        upper = tuple(int(i) for i in cfg.upper_body)
    elif builtin is not None:
        upper = builtin.upper_body
    else:
        upper = ()  # half-body augmentation needs it; without it that augmentation is off
    lower = tuple(i for i in range(k) if i not in upper) if upper else ()
    return KeypointInfo(dataset="coco" if builtin else "custom", names=tuple(names),
                        flip_pairs=flip_pairs, sigmas=sigmas,
                        skeleton=tuple(skeleton) if skeleton else (builtin.skeleton if builtin else ()),
                        upper_body=upper, lower_body=lower)
