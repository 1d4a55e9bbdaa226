"""A contact sheet of a COCO-format keypoint set: images with boxes, keypoints and skeletons
drawn from the annotation file (not from the renderer), to see that they agree.

    python -m autopose.data.synthetic.preview DIR OUT.png [--split val] [--count 6] [--cols 3]
        [--start 0] [--width 640] [--palette]
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import cv2
import numpy as np

from autopose.io import atomic_write

# BGR: left limbs orange, right limbs blue, centre green (the overlay's colours, not the figure's)
_LEFT, _RIGHT, _MID = (0, 140, 255), (255, 120, 0), (60, 200, 60)


def _side(name: str) -> tuple[int, int, int]:
    return _LEFT if name.startswith("left") else _RIGHT if name.startswith("right") else _MID


def draw_annotations(img: np.ndarray, anns: list[dict], names: list[str],
                     skeleton: list[list[int]]) -> np.ndarray:
    """Draw boxes, skeletons (1-based edges) and keypoints: filled dots visible, rings hidden."""
    out = img.copy()
    for a in anns:
        x, y, w, h = a["bbox"]
        th = 1 if h < 160 else 2  # thin marks on small people keep them visible
        cv2.rectangle(out, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), (255, 255, 255), 1)
        k = np.array(a["keypoints"], np.float64).reshape(-1, 3)
        for i, j in skeleton:
            i, j = i - 1, j - 1
            if k[i, 2] > 0 and k[j, 2] > 0:
                name_i, name_j = names[i], names[j]
                col = _side(name_i) if _side(name_i) == _side(name_j) else _MID
                cv2.line(out, (int(round(k[i, 0])), int(round(k[i, 1]))),
                         (int(round(k[j, 0])), int(round(k[j, 1]))), col, th, cv2.LINE_AA)
        for n, (u, v, vis) in enumerate(k):
            if vis > 0:
                c = (int(round(u)), int(round(v)))
                cv2.circle(out, c, th + 1, _side(names[n]), -1 if vis == 2 else 1, cv2.LINE_AA)
    return out


def contact_sheet(set_dir: str | Path, out_png: str | Path, split: str = "val", count: int = 6,
                  cols: int = 3, start: int = 0, width: int = 640, palette: bool = False) -> Path:
    """Write a PNG grid of ``count`` images of ``split`` with their annotations drawn."""
    root = Path(set_dir)
    doc = json.loads((root / f"person_keypoints_{split}.json").read_text())
    cat = doc["categories"][0]
    by_image: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    tiles = []
    for im in doc["images"][start:start + count]:
        img = cv2.imread(str(root / "images" / split / im["file_name"]))
        img = draw_annotations(img, by_image.get(im["id"], []), cat["keypoints"], cat["skeleton"])
        s = width / img.shape[1]
        size = (width, round(img.shape[0] * s))
        tiles.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + cols], axis=1) for r in range(0, len(tiles), cols)]
    sheet = np.concatenate(rows, axis=0)
    if palette:  # a 256-colour PNG: a third of the size, for pictures kept in the repository
        from PIL import Image

        img = Image.fromarray(np.ascontiguousarray(sheet[..., ::-1])).quantize(256)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
    else:
        data = cv2.imencode(".png", sheet)[1].tobytes()
    return atomic_write(out_png, lambda p: p.write_bytes(data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set_dir")
    ap.add_argument("out_png")
    ap.add_argument("--split", default="val")
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--cols", type=int, default=3)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--width", type=int, default=640, help="width of each image in the sheet")
    ap.add_argument("--palette", action="store_true", help="write a 256-colour PNG")
    a = ap.parse_args(argv)
    print(contact_sheet(a.set_dir, a.out_png, a.split, a.count, a.cols, a.start, a.width,
                        a.palette))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
