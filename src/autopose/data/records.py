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

    def summary(self) -> str:
        """``"2 crowd, 1 zero-area box"``, or ``"none"``."""
        return ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items())) or "none"

    def report(self, kept: int, what: str = "person instances") -> None:
        print(f"{self.source}: {kept} {what}; skipped: {self.summary()}", file=sys.stderr)


# ---------------------------------------------------------------------------- field checks
# JSON gives a field any type; each reader below accepts only the one kind the field holds
# and names the record and the field otherwise. ``bool`` is an ``int`` subclass in Python
# (``true`` would pass as 1), so it is refused wherever a number is expected.


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_number(value: Any) -> bool:
    """A JSON number: int or float, not bool (NaN and infinity included; see finite_floats)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(value: Any, source: str, field_name: str, minimum: int | None = None) -> int:
    """``value`` as an int (no bool, no float, no string), at least ``minimum``; else UserError."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise UserError(f"{source}: {field_name}: expected an integer, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise UserError(f"{source}: {field_name}: must be >= {minimum}, got {value}")
    return value


def number(value: Any, source: str, field_name: str, minimum: float | None = None) -> float:
    """``value`` as a finite float (an int or float, no bool or string), at least ``minimum``."""
    if not is_number(value):
        raise UserError(f"{source}: {field_name}: expected a number, got {shown(value)}")
    v = float(value)
    if not np.isfinite(v):
        raise UserError(f"{source}: {field_name}: contains NaN or infinity")
    if minimum is not None and v < minimum:
        raise UserError(f"{source}: {field_name}: must be >= {minimum}, got {v}")
    return v


def text(value: Any, source: str, field_name: str) -> str:
    """``value`` as a non-empty string; else UserError."""
    if not isinstance(value, str) or not value:
        raise UserError(f"{source}: {field_name}: expected a non-empty string, got {shown(value)}")
    return value


def finite_floats(values: Any, n: int, source: str, field_name: str,
                  rows: int | None = None) -> np.ndarray:
    """A flat JSON list of ``n`` finite numbers as float64, else UserError.

    With ``rows`` the list is ``rows`` lists of ``n // rows`` numbers instead (MPII's joints);
    any other nesting, a string or a bool among the numbers, is refused: numpy would turn
    ``"12.5"`` into 12.5 and ``[[1, 2], 3]`` into garbage.
    """
    if rows is not None:
        if (not isinstance(values, list) or len(values) != rows
                or not all(isinstance(r, list) and len(r) == n // rows for r in values)):
            raise UserError(f"{source}: {field_name}: expected {rows} lists of {n // rows} "
                            f"numbers, got {shown(values)}")
        values = [v for r in values for v in r]
    if not isinstance(values, list) or not all(is_number(v) for v in values):
        raise UserError(f"{source}: {field_name}: expected a list of {n} numbers, got "
                        f"{shown(values)}")
    if len(values) != n:
        raise UserError(f"{source}: {field_name}: expected {n} numbers, got {len(values)}")
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{source}: {field_name}: contains NaN or infinity")
    return arr


def json_list(value: Any, source: str, field_name: str) -> list[Any]:
    """``value`` if it is a JSON list, else UserError (``annotations: 5`` is not a list)."""
    if not isinstance(value, list):
        raise UserError(f"{source}: {field_name}: expected a list, got {shown(value)}")
    return value


def require(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """UserError naming the first of ``keys`` missing from ``obj``."""
    for k in keys:
        if k not in obj:
            raise UserError(f"{where}: missing '{k}'")


# ---------------------------------------------------------------------------- images

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def image_bytes_problem(head: bytes, tail: bytes) -> str | None:
    """Why an image whose file starts with ``head`` and ends with ``tail`` is damaged, or None.

    libjpeg decodes a truncated JPEG without failing (it warns "Premature end of JPEG file",
    naming no file, and fills the rest grey), so a JPEG must end with its end-of-image marker
    FF D9; a PNG must end with its IEND chunk. No padding after the marker is allowed: the
    standard has none, and every sample image of COCO and MPII ends exactly there.
    """
    if head.startswith(JPEG_START) and not tail.endswith(JPEG_END):
        return "truncated JPEG: no end-of-image marker FF D9 at the end of the file"
    if head.startswith(PNG_START) and not tail.endswith(PNG_END):
        return "truncated PNG: no IEND chunk at the end of the file"
    return None


def image_file_problem(path: str | Path, decode: bool = False) -> str | None:
    """Why the image at ``path`` cannot be used ("missing", or what is damaged), or None.

    Cheap by default: only the first and last bytes are read (no decoding), so a loader can
    check every image once. ``decode`` also decodes it at 1/8 size (libjpeg scales in the
    DCT, a fraction of a full decode), which catches files whose header is garbage.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(max(0, f.seek(0, 2) - 8))
            tail = f.read(8)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    problem = image_bytes_problem(head, tail)
    if problem is None and decode:
        data = np.fromfile(str(path), dtype=np.uint8)
        if cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
            problem = "not an image OpenCV can decode"
    return problem


@dataclass
class ImageChecker:
    """Checks each image file of a data set once, as its loader first meets it.

    ``mode`` is ``data.corrupt_images``: "error" stops at the first damaged image with one
    line naming it (as mmpose does); "skip" drops the image's records and counts them. A
    missing file is an error in both modes: it is a wrong path far more often than a lost
    image, and skipping would hide that.
    """

    mode: str = "error"
    verdicts: dict[str, str | None] = field(default_factory=dict)

    def usable(self, path: Path, image_id: object, referrer: str) -> bool:
        """False for a damaged image in "skip" mode; UserError for any other problem."""
        key = str(path)
        if key not in self.verdicts:
            # In "skip" mode a decode is what finds a garbage file before the run needs it.
            self.verdicts[key] = image_file_problem(path, decode=self.mode == "skip")
        problem = self.verdicts[key]
        if problem is None:
            return True
        if problem == "missing":
            raise UserError(f"{path}: image id={image_id}: file missing (referenced by {referrer})")
        if self.mode == "skip":
            return False
        raise UserError(f"{path}: image id={image_id}: file cannot be decoded ({problem}); "
                        "data.corrupt_images=skip skips such images")


def read_image(path: str, image_id: object) -> np.ndarray:
    """Decode an image as uint8 BGR ``(H, W, 3)``; a missing or corrupt file is a UserError.

    The bytes are read once; the truncation check runs on them in memory, so it costs no
    second read and no second decode.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f"{path}: image id={image_id}: file missing") from None
    except OSError as e:
        raise UserError(f"{path}: image id={image_id}: file cannot be read ({e.strerror})") from None
    problem = image_bytes_problem(data[:8].tobytes(), data[-8:].tobytes())
    img = None if problem else cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise UserError(f"{path}: image id={image_id}: file cannot be decoded"
                        + (f" ({problem})" if problem else ""))
    return img
