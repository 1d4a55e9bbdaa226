"""Training-transform throughput of the top-down pipeline, per worker (one core).

Runs the training dataset (JPEG decode, half-body / scale / rotation / flip augmentation,
affine crop, normalisation, Gaussian targets) on coco-mini at 256x192 in this process, the
way one DataLoader worker does, and prints images per second. Beside it, in the same run,
JPEG decode alone, so the ratio says how much of a worker's time the decode takes.

    python bench/data_pipeline.py [--data ../shared/data/coco-mini] [--seconds 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2

from autopose.config import load_config
from autopose.data.coco import load_coco
from autopose.data.records import read_image
from autopose.data.topdown import TopDownDataset


def interleaved_rates(fns: dict, n_items: int, seconds: float, rounds: int = 10) -> dict:
    """Items per second of each function, measured in alternating short rounds so that
    load from elsewhere on a noisy machine falls on all of them alike."""
    done = {k: 0 for k in fns}
    wall = {k: 0.0 for k in fns}
    cpu = {k: 0.0 for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            while time.perf_counter() - t0 < seconds / rounds / len(fns):
                fn(done[k] % n_items)
                done[k] += 1
            wall[k] += time.perf_counter() - t0
            cpu[k] += time.process_time() - c0
    # Per CPU-second is the per-core figure: it does not count time the process spent
    # waiting for a core that other work on the machine held.
    return {k: (done[k] / wall[k], done[k] / cpu[k]) for k in fns}


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "data" / "coco-mini")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one worker is one core
    cfg = load_config(None, [f"data.train.images={args.data / 'train2017'}",
                             f"data.train.ann={args.data / 'annotations/person_keypoints_train2017.json'}",
                             "data.input_size=[256,192]"])
    coco = load_coco(cfg.data.train, cfg.data, "train", quiet=True)
    ds = TopDownDataset(coco.records, coco.info, cfg.data, train=True)
    ds[0]  # warm up
    rates = interleaved_rates({"full": lambda i: ds[i],
                               "decode": lambda i: read_image(ds.records[i].image_path, 0)},
                              len(ds), args.seconds)
    (full_wall, full), (decode_wall, decode) = rates["full"], rates["decode"]
    print(f"coco-mini, {len(ds)} persons, input 256x192, one process, OpenCV {cv2.__version__}")
    print("                                       per CPU-second   per wall-second")
    print(f"training transform (decode included): {full:10.1f} {full_wall:17.1f} images/s")
    print(f"JPEG decode alone:                    {decode:10.1f} {decode_wall:17.1f} images/s")
    print(f"pipeline / decode-alone rate:         {full / decode:10.2f}")
    print(f"target >= 250 images/s per core:      {'met' if full >= 250 else 'NOT met'}")


if __name__ == "__main__":
    main()
