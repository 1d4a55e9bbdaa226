"""Predicted poses drawn over an image or a video frame (OpenCV, BGR): each person's box and
score, skeleton and joint scores; the person's left side orange, right side blue."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from autopose.data.keypoints import KeypointInfo

# BGR colours: the person's left side orange, right side blue, the middle green.
LEFT, RIGHT, MIDDLE = (0, 140, 255), (255, 120, 0), (60, 200, 60)
BOX = (0, 215, 255)


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float,
          colour: tuple[int, int, int]) -> None:
    """Text with a black outline, readable on light and dark backgrounds alike."""
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_poses(image: np.ndarray, people: list[dict[str, Any]], info: KeypointInfo,
               kpt_thresh: float) -> np.ndarray:
    """A copy of ``image`` (BGR ``(H, W, 3)``) with boxes, skeletons and keypoint scores.

    ``people``: ``{"keypoints": (K, 3) x, y, score, "bbox": [x, y, w, h], "score": float}``;
    joints with a score below ``kpt_thresh`` are not drawn.
    """
    out = image.copy()
    h, w = out.shape[:2]
    size = max(h, w)
    thick = max(1, round(size / 320))
    radius = max(2, round(size / 160))
    font = max(0.3, size / 1600)

    def colour(j: int) -> tuple[int, int, int]:
        name = info.names[j]
        return LEFT if name.startswith("left") else RIGHT if name.startswith("right") else MIDDLE

    for person in people:
        kpts = person["keypoints"]
        x, y, bw, bh = person["bbox"]
        cv2.rectangle(out, (int(round(x)), int(round(y))), (int(round(x + bw)), int(round(y + bh))),
                      BOX, thick)
        _text(out, f"{person['score']:.2f}", (int(x) + 3, int(y) + int(16 * font / 0.4)), font,
              BOX)
        for a, b in info.skeleton:
            if kpts[a, 2] >= kpt_thresh and kpts[b, 2] >= kpt_thresh:
                pa = (int(round(kpts[a, 0])), int(round(kpts[a, 1])))
                pb = (int(round(kpts[b, 0])), int(round(kpts[b, 1])))
                both = colour(a) if colour(a) == colour(b) else MIDDLE
                cv2.line(out, pa, pb, both, thick + 1, cv2.LINE_AA)
        for j in range(kpts.shape[0]):
            if kpts[j, 2] < kpt_thresh:
                continue
            p = (int(round(kpts[j, 0])), int(round(kpts[j, 1])))
            cv2.circle(out, p, radius, colour(j), -1, cv2.LINE_AA)
            cv2.circle(out, p, radius, (0, 0, 0), 1, cv2.LINE_AA)
            _text(out, f"{kpts[j, 2]:.2f}", (p[0] + radius + 1, p[1] - radius), font,
                  (255, 255, 255))
    return out
