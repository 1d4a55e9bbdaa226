"""Synthetic set generation speed on ONE core (issue 3: 2,000 images in under a minute).

Pins the process to one CPU, sets OpenCV to one thread, and writes a full set (renders,
JPEG-encodes and writes every image, then the json) with ``generate(..., workers=1)``.
A second, small pass times the stages side by side: rendering, JPEG encoding, writing.

    .venv/bin/python bench/synth_speed.py [--num 2000] [--size 640x480] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=2000, help="images in all (train; val gets 0)")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--stage-sample", type=int, default=200, help="images in the per-stage pass")
    ap.add_argument("--out", type=Path, default=None, help="folder (default: a temporary one)")
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    from autopose.data.synthetic import generate, render
    from autopose.data.synthetic.generator import JPEG_QUALITY, tiles_for

    w, h = (int(s) for s in args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="synth_speed_"))
    out = args.out or tmp / "set"
    try:
        t0 = time.perf_counter()
        generate(out, args.num, 0, seed=0, image_size=[w, h], workers=1)
        total = time.perf_counter() - t0
        nbytes = sum(f.stat().st_size for f in (out / "images" / "train").iterdir())

        tiles_for(0, w, h)
        t_render = t_jpeg = t_write = 0.0
        n = min(args.stage_sample, args.num)
        for i in range(n):
            a = time.perf_counter()
            img, _, _ = render(0, "train", i, w, h)
            b = time.perf_counter()
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            c = time.perf_counter()
            (tmp / "x.jpg").write_bytes(buf.tobytes())
            t_write += time.perf_counter() - c
            t_render += b - a
            t_jpeg += c - b
    finally:
        if args.out is None:
            shutil.rmtree(tmp, ignore_errors=True)

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, 1 pinned, OpenCV threads 1, "
          f"python {platform.python_version()}, load average {load:.1f} at the end")
    print(f"{args.num} images {w}x{h} (render + JPEG + write + json): {total:.1f} s, "
          f"{1000 * total / args.num:.1f} ms/image, {args.num / total:.0f} images/s, "
          f"{nbytes / args.num / 1024:.0f} KiB/image")
    print(f"budget 60 s for 2000 images: this run uses {total / args.num * 2000 / 60:.2f} of it")
    per = 1000 / n
    s = t_render + t_jpeg + t_write
    print(f"stages over {n} images (ms/image): render {t_render * per:.1f}, "
          f"JPEG {t_jpeg * per:.1f}, write {t_write * per:.2f}; "
          f"render is {t_render / s:.0%} of the time")


if __name__ == "__main__":
    main()
