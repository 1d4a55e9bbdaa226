"""OKS-based non-maximum suppression of person poses."""

from __future__ import annotations

import numpy as np

from autopose.evaluation.oks import oks_between


def oks_nms(kpts: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float,
            sigmas: np.ndarray, vis_thre: float | None = None) -> list[int]:
    """Greedy NMS: keep the best-scored pose, drop those with OKS above ``threshold`` to it.

    kpts ``(N, K, 3)`` (x, y, score), scores ``(N,)``, areas ``(N,)`` -> kept indices, best first.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        sim = oks_between(kpts[i], areas[i], kpts[rest], areas[rest], sigmas, vis_thre)
        order = rest[sim <= threshold]
    return keep
