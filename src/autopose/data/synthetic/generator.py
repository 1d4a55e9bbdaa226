"""Writing a synthetic set in COCO format, the cache of the default set, ``autopose data synth``.

Layout of a set ``DIR``::

    DIR/images/train/000000.jpg ...   DIR/person_keypoints_train.json
    DIR/images/val/000000.jpg ...     DIR/person_keypoints_val.json
    DIR/README

A set is generated into a hidden temporary folder beside ``DIR`` and renamed onto it
when complete, so a killed run never leaves a half-written set behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from autopose.config import SyntheticConfig
from autopose.data.keypoints import COCO17
from autopose.data.synthetic.scene import LEVELS, PersonRender, Tiles, make_tiles, render_image
from autopose.errors import UserError
from autopose.io import atomic_write, check_writable, write_json, write_text

# Bump whenever the images or annotations for a given seed change: it keys the cache.
GENERATOR_VERSION = 1
SPLITS = {"train": 0, "val": 1}
JPEG_QUALITY = 90
README_MARK = "AutoPose synthetic pose set"
MIN_SIDE, MAX_SIDE = 64, 8192

_tiles_cache: dict[tuple[int, int, int], Tiles] = {}


def tiles_for(seed: int, width: int, height: int) -> Tiles:
    key = (seed, width, height)
    if key not in _tiles_cache:
        _tiles_cache.clear()
        _tiles_cache[key] = make_tiles(seed, width, height)
    return _tiles_cache[key]


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: a pure function of (seed, split, index)."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], index]))


def render(seed: int, split: str, index: int, width: int, height: int, level: str = "standard"
           ) -> tuple[np.ndarray, list[PersonRender], Any]:
    """Image ``index`` of ``split``: (BGR image, people with their exact keypoints, buffers).

    This is exactly what :func:`generate` writes (before JPEG encoding); tests use it to
    check the json against the renderer's own joint positions.
    """
    return render_image(image_rng(seed, split, index), width, height,
                        tiles_for(seed, width, height), LEVELS[level])


def person_annotation(p: PersonRender, image_id: int, ann_id: int) -> dict[str, Any] | None:
    """The COCO annotation of one rendered person; None when no keypoint is in the image."""
    kps = []
    for (x, y), v in zip(p.keypoints, p.visibility):
        if v == 0:
            kps += [0.0, 0.0, 0]
        else:
            kps += [round(float(x), 2), round(float(y), 2), int(v)]
    num = int((p.visibility > 0).sum())
    if num == 0 or p.area <= 0 or p.bbox[2] <= 0 or p.bbox[3] <= 0:
        return None
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
        "bbox": [round(float(b), 2) for b in p.bbox], "area": float(p.area),
        "num_keypoints": num, "keypoints": kps,
    }


def render_range(folder: str | Path, split: str, seed: int, width: int, height: int,
                 start: int, stop: int, level: str = "standard"
                 ) -> list[tuple[int, list[dict[str, Any]]]]:
    """Render and write images [start, stop) of one split; returns each image's annotations."""
    out = []
    for i in range(start, stop):
        img, people, _ = render(seed, split, i, width, height, level)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {split} image {i}")
        data = buf.tobytes()
        atomic_write(Path(folder) / f"{i:06d}.jpg", lambda p, d=data: p.write_bytes(d))
        anns = [a for a in (person_annotation(p, i + 1, 0) for p in people) if a is not None]
        out.append((i, anns))
    return out


def _render_in_processes(folder: Path, split: str, seed: int, width: int, height: int,
                         n: int, workers: int, level: str
                         ) -> list[tuple[int, list[dict[str, Any]]]]:
    """:func:`render_range` over ``workers`` child interpreters, one contiguous range each.

    Plain subprocesses (``python -m autopose.data.synthetic._worker``), not
    multiprocessing: nothing of the caller's main module is re-imported or forked.
    """
    bounds = np.linspace(0, n, workers + 1).round().astype(int)
    procs = []
    try:
        for k in range(workers):
            result = folder.parent.parent / f".{split}-{k}.json"
            cmd = [sys.executable, "-m", "autopose.data.synthetic._worker", str(folder), split,
                   str(seed), str(width), str(height), str(bounds[k]), str(bounds[k + 1]),
                   str(result), level]
            procs.append((subprocess.Popen(cmd), result))
        out: list[tuple[int, list[dict[str, Any]]]] = []
        for proc, result in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"synthetic set: a worker process failed (exit code "
                                   f"{proc.returncode}) rendering {split} images")
            out.extend((int(i), anns) for i, anns in json.loads(result.read_text()))
            result.unlink()
        return out
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def categories() -> list[dict[str, Any]]:
    return [{
        "supercategory": "person", "id": 1, "name": "person",
        "keypoints": list(COCO17.names),
        "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton],
    }]


def _write_split(root: Path, split: str, n: int, seed: int, width: int, height: int,
                 workers: int, level: str) -> dict[str, int]:
    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers, n // 50))  # a process costs about half a second to start
    if workers > 1:
        results = _render_in_processes(folder, split, seed, width, height, n, workers, level)
    else:
        results = render_range(folder, split, seed, width, height, 0, n, level)
    results.sort(key=lambda r: r[0])
    images, annotations = [], []
    for i, anns in results:
        images.append({"id": i + 1, "file_name": f"{i:06d}.jpg", "width": width, "height": height})
        for a in anns:
            a["id"] = len(annotations) + 1
            annotations.append(a)
    doc = {
        "info": {"description": f"{README_MARK}, {split} split", "version": str(GENERATOR_VERSION),
                 "seed": seed, "level": level, "year": 2026},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories(),
    }
    write_json(root / f"person_keypoints_{split}.json", doc, indent=None)
    return {"images": len(images), "persons": len(annotations)}


def _readme(num_train: int, num_val: int, seed: int, width: int, height: int, level: str,
            stats: dict[str, dict[str, int]]) -> str:
    return f"""{README_MARK} (generator version {GENERATOR_VERSION})

Made by:
    autopose data synth --out DIR --num-train {num_train} --num-val {num_val} --seed {seed} \\
        --image-size {width}x{height} --level {level}
The same command writes the same bytes again.

Parameters: seed {seed}; image size {width}x{height} (width x height); level {level};
JPEG quality {JPEG_QUALITY}.
train: {stats['train']['images']} images, {stats['train']['persons']} annotated people.
val:   {stats['val']['images']} images, {stats['val']['persons']} annotated people.

{_LEVEL_TEXT[level]}

At level standard, each image shows 1-4 articulated human figures (shaded head, trunk and limbs with human
proportions and joint ranges; front, side and back views; heights of 70-400 px at 480 px
image height; in-plane rotation; overlaps) on a textured, cluttered background with
distractor limbs, occluding objects, blur and noise. Left and right limbs share one colour:
only the face and the shirt marking (drawn on the front) tell which way a person faces.

Layout: images/<split>/NNNNNN.jpg and person_keypoints_<split>.json (COCO keypoint format,
category 1 "person" with COCO's 17 keypoints and skeleton). Keypoints are pixel-index
coordinates (the centre of the top-left pixel is 0,0). Visibility: 2 visible, 1 labelled but
hidden (behind an object, another person or the person's own body), 0 outside the image
(with x = y = 0). bbox: the person's whole silhouette, clipped to the image (it contains
every labelled keypoint). area: the silhouette's pixel count inside the image. A person with
no keypoint inside the image is not annotated.
"""


_LEVEL_TEXT = {
    "standard": "Level standard: the benchmark, as described below.",
    "easy": ("Level easy: one person per image, inside it, 160-400 px tall at 480 px image height, facing "
             "the camera\n(yaw within 40 deg, in-plane rotation within 15 deg), standing or "
             "walking, at most 7 clutter\nshapes, no distractor limbs and no occluders; "
             "figures, textures, blur and noise as below."),
}


def _check(num_train: int, num_val: int, seed: int, image_size: Any,
           level: str = "standard") -> tuple[int, int]:
    if level not in LEVELS:
        raise UserError(f"data.synthetic.level: expected one of {', '.join(LEVELS)}, "
                        f"got {level!r}")
    for name, v in (("num_train", num_train), ("num_val", num_val), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise UserError(f"data.synthetic.{name}: must be a non-negative integer, got {v!r}")
    if num_train + num_val == 0:
        raise UserError("data.synthetic: num_train and num_val are both 0: nothing to generate")
    try:
        width, height = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise UserError(f"data.synthetic.image_size: expected [width, height], "
                        f"got {image_size!r}") from None
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise UserError(f"data.synthetic.image_size: {width}x{height}: each side must be "
                        f"{MIN_SIDE}-{MAX_SIDE} pixels")
    return width, height


def _share(root: Path) -> None:
    """Make a finished set readable by everyone (temporary files are created private)."""
    for dirpath, _, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)


def is_synthetic_set(path: Path) -> bool:
    """True when ``path`` holds a complete set written by :func:`generate`."""
    readme = path / "README"
    try:
        ok = readme.read_text().startswith(README_MARK)
    except OSError:
        return False
    return ok and all((path / f"person_keypoints_{s}.json").is_file() for s in SPLITS)


def generate(out_dir: str | os.PathLike, num_train: int, num_val: int, seed: int,
             image_size: list[int] | tuple[int, int], workers: int = 1,
             replace: bool = True, level: str = "standard") -> Path:
    """Write a synthetic set to ``out_dir`` and return its path.

    The set is written into a temporary folder beside ``out_dir`` and renamed onto it at
    the end. An existing ``out_dir`` is replaced only when it is empty or an earlier
    synthetic set (and ``replace``); anything else there is a :class:`UserError`.
    ``workers`` > 1 renders in that many processes; the bytes do not depend on it.
    ``level`` names a :data:`~autopose.data.synthetic.scene.LEVELS` entry.
    """
    width, height = _check(num_train, num_val, seed, image_size, level)
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{out}: --out exists and is not a folder")
        if any(out.iterdir()) and not is_synthetic_set(out):
            raise UserError(f"{out}: --out exists and is not empty (nor an autopose synthetic "
                            "set); give a new or empty folder")
        if not replace and is_synthetic_set(out):
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    clear_killed_generations(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-{os.getpid()}-"))
    try:
        stats = {}
        for split, n in (("train", num_train), ("val", num_val)):
            stats[split] = _write_split(tmp, split, n, seed, width, height, workers, level)
        write_text(tmp / "README", _readme(num_train, num_val, seed, width, height, level,
                                           stats))
        _share(tmp)
        if out.exists():
            if not replace and is_synthetic_set(out):  # another process finished first
                return out
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-{os.getpid()}-"))
            os.replace(out, old / "set")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, out)
            except OSError:
                if is_synthetic_set(out):  # lost a race with an identical generation
                    return out
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def clear_killed_generations(out: Path) -> None:
    """Remove the temporary folders a killed generation of ``out`` left beside it
    (``.NAME.tmp-PID-*``, ``.NAME.old-PID-*``: a set of ~9 MB and more).

    A folder whose process still runs is another generation under way and is kept; one
    without a process id (written before ids were in the names) is removed.
    """
    for prefix in (f".{out.name}.tmp-", f".{out.name}.old-"):
        for stale in out.parent.glob(prefix + "*"):
            pid = stale.name[len(prefix):].split("-")[0]
            if pid.isdigit() and _alive(int(pid)):
                continue
            shutil.rmtree(stale, ignore_errors=True)


def cache_root() -> Path:
    """``$AUTOPOSE_CACHE`` or ``~/.cache/autopose``."""
    env = os.environ.get("AUTOPOSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "autopose"


def cache_dir(cfg: SyntheticConfig) -> Path:
    """The cache folder of the set ``cfg`` describes (keyed by every generation parameter)."""
    w, h = _check(cfg.num_train, cfg.num_val, cfg.seed, cfg.image_size, cfg.level)
    key = f"v{GENERATOR_VERSION}-seed{cfg.seed}-train{cfg.num_train}-val{cfg.num_val}-{w}x{h}"
    if cfg.level != "standard":  # standard keeps the key it had before levels existed
        key += f"-{cfg.level}"
    return cache_root() / "synthetic" / key


def default_workers(n_images: int) -> int:
    """Processes for a set of ``n_images``: the CPUs this process may use, at most 8."""
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8, n_images // 50))


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """An exclusive lock between processes (POSIX ``flock``; no lock where there is none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_synthetic(cfg: SyntheticConfig) -> Path:
    """The set ``cfg`` describes, generated into the cache on first use and reused after.

    Processes that ask at the same time (the ranks of a distributed run) wait for the one
    that generates; leftovers of a killed generation are removed first.
    """
    path = cache_dir(cfg)
    if is_synthetic_set(path):
        return path
    with _locked(path.parent / f".{path.name}.lock"):
        if is_synthetic_set(path):
            return path
        clear_killed_generations(path)
        n = cfg.num_train + cfg.num_val
        print(f"autopose: generating the built-in synthetic set ({cfg.num_train} train + "
              f"{cfg.num_val} val images, seed {cfg.seed}, level {cfg.level}) into {path}; "
              "later runs reuse it",
              file=sys.stderr)
        t0 = time.time()
        generate(path, cfg.num_train, cfg.num_val, cfg.seed, cfg.image_size,
                 workers=default_workers(n), replace=False, level=cfg.level)
        print(f"autopose: synthetic set ready in {time.time() - t0:.1f} s", file=sys.stderr)
    return path


def parse_image_size(text: str | None) -> list[int] | None:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise UserError(f"--image-size: expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return [int(m.group(1)), int(m.group(2))]


def run_synth_command(args: argparse.Namespace) -> int:
    """``autopose data synth``: write a set to ``args.out``."""
    d = SyntheticConfig()
    size = parse_image_size(getattr(args, "image_size", None)) or list(d.image_size)
    num_train = d.num_train if args.num_train is None else args.num_train
    num_val = d.num_val if args.num_val is None else args.num_val
    seed = d.seed if args.seed is None else args.seed
    level = getattr(args, "level", None) or d.level
    for flag, v in (("--num-train", num_train), ("--num-val", num_val), ("--seed", seed)):
        if v < 0:
            raise UserError(f"{flag}: must be >= 0, got {v}")
    # Up front: an --out that cannot be written is one line, not a traceback after the work.
    check_writable(Path(args.out))
    t0 = time.time()
    out = generate(args.out, num_train, num_val, seed, size,
                   workers=default_workers(num_train + num_val), level=level)
    print(f"wrote {num_train} train + {num_val} val images ({size[0]}x{size[1]}, seed {seed}, "
          f"level {level}) "
          f"to {out} in {time.time() - t0:.1f} s")
    return 0
