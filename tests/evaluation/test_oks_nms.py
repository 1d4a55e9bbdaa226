import contextlib
import io
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from autopose.data.keypoints import COCO17
from autopose.evaluation.nms import oks_nms
from autopose.evaluation.oks import oks, oks_between

SIGMAS = COCO17.sigmas_array


def _random_people(rng, n, unlabelled_last=False):
    people = []
    for i in range(n):
        x0, y0 = rng.uniform(0, 400, 2)
        w, h = rng.uniform(30, 200, 2)
        kp = np.zeros((17, 3))
        kp[:, 0] = x0 + rng.uniform(0, w, 17)
        kp[:, 1] = y0 + rng.uniform(0, h, 17)
        kp[:, 2] = rng.choice([0, 1, 2], size=17, p=[0.3, 0.2, 0.5])
        if unlabelled_last and i == n - 1:
            kp[:, 2] = 0
        people.append((kp, [x0, y0, w, h], float(w * h * rng.uniform(0.3, 0.9))))
    return people


def test_oks_matches_pycocotools_compute_oks():
    rng = np.random.default_rng(0)
    gts = _random_people(rng, 6, unlabelled_last=True)
    n_det = 15
    dets = rng.uniform(0, 600, size=(n_det, 17, 2))
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "width": 640, "height": 640}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names)}],
        "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": a,
                         "iscrowd": 0, "num_keypoints": int((k[:, 2] > 0).sum()),
                         "keypoints": k.reshape(-1).tolist()} for i, (k, b, a) in enumerate(gts)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        scores = rng.random(n_det)
        dt = gt.loadRes([{"image_id": 1, "category_id": 1, "score": float(s),
                          "keypoints": np.concatenate([d, np.ones((17, 1))], 1).reshape(-1).tolist()}
                         for d, s in zip(dets, scores)])
        ev = COCOeval(gt, dt, "keypoints")
        ev._prepare()
        ref = ev.computeOks(1, 1)  # (D, G), detections sorted by score
    order = np.argsort(-scores, kind="mergesort")
    ours = np.stack([oks(k, a, dets[order], SIGMAS, gt_bbox=np.array(b)) for k, b, a in gts], axis=1)
    assert ref.shape == ours.shape
    assert np.abs(ref - ours).max() < 1e-6


def _brute_oks(a, area_a, b, area_b):
    total = 0.0
    for j in range(17):
        d2 = (a[j, 0] - b[j, 0]) ** 2 + (a[j, 1] - b[j, 1]) ** 2
        var = (2 * SIGMAS[j]) ** 2
        total += math.exp(-d2 / var / ((area_a + area_b) / 2 + np.spacing(1)) / 2)
    return total / 17


@pytest.mark.parametrize("seed", range(5))
def test_oks_nms_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 300, size=(4, 17, 2))
    kpts = np.concatenate([base[rng.integers(0, 4, 30)] + rng.normal(0, 1.5, (30, 17, 2)),
                           rng.random((30, 17, 1))], axis=2)
    scores = rng.random(30)
    areas = rng.uniform(20000, 60000, 30)
    keep = oks_nms(kpts, scores, areas, 0.9, SIGMAS)
    brute = []
    for i in sorted(range(30), key=lambda i: -scores[i]):
        if all(_brute_oks(kpts[i], areas[i], kpts[j], areas[j]) <= 0.9 for j in brute):
            brute.append(i)
    assert keep == brute
    assert 1 < len(keep) < 30  # the case exercises suppression


def test_oks_between_visibility_threshold():
    a = np.zeros((17, 3))
    a[:, 2] = 1
    b = a.copy()[None]
    b[0, :8, 0] = 1000  # far away...
    b[0, :8, 2] = 0.0  # ...but not confidently seen: ignored under the threshold
    assert oks_between(a, 100.0, b, np.array([100.0]), SIGMAS, 0.2)[0] == pytest.approx(1.0)
    assert oks_between(a, 100.0, b, np.array([100.0]), SIGMAS, None)[0] < 0.6
