"""Drawing shaded solids with a depth buffer.

Every solid (an ellipsoid, or a capsule: a segment with tapered round ends) is drawn
pixel by pixel over its bounding box with NumPy: the front surface's depth, its normal
and a Lambert shade. A depth buffer keeps the nearest surface, so limbs pass in front of
or behind the trunk as they do in 3D, and an id map records which person and which body
part each pixel shows. Keypoint visibility is read from those two buffers.

The head and the chest have shaders that paint features in the part's own frame: face
(eyes, brows, mouth) on the front of the head and hair on the back, and a marking on
the front of the shirt. They are the only cues to which way a person faces; left and
right limbs are drawn in the same colours.
"""

from __future__ import annotations

import math

import numpy as np

from autopose.data.synthetic.figure import Appearance, PlacedBody, Primitive

# Id-map codes: 0 background, small codes for scenery, (person + 1) * 32 + part for people.
CODE_OCCLUDER = 1
CODE_DISTRACTOR = 2
CODE_PROP = 3
PERSON_STRIDE = 32


def person_code(person: int, part: int) -> int:
    return (person + 1) * PERSON_STRIDE + part


def code_person(code: np.ndarray | int) -> np.ndarray | int:
    """Person index of an id-map code (-1 for scenery and background)."""
    return code // PERSON_STRIDE - 1


def code_part(code: np.ndarray | int) -> np.ndarray | int:
    return code % PERSON_STRIDE


class Canvas:
    """An image with its depth buffer and id map (BGR uint8, like OpenCV)."""

    def __init__(self, img: np.ndarray, light: np.ndarray, ambient: float = 0.42):
        self.img = img
        self.h, self.w = img.shape[:2]
        self.z = np.full((self.h, self.w), -np.inf, np.float32)
        self.code = np.zeros((self.h, self.w), np.int16)
        self.xs = np.arange(self.w, dtype=np.float32)
        self.ys = np.arange(self.h, dtype=np.float32)
        self.light = (light / np.linalg.norm(light)).astype(np.float32)
        self.ambient = float(ambient)
        self.diffuse = 1.08 - float(ambient)

    def box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int] | None:
        """Integer pixel box [x0, x1) x [y0, y1) covering the float box, clipped; None if empty."""
        ix0, iy0 = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
        ix1, iy1 = min(int(math.ceil(x1)) + 1, self.w), min(int(math.ceil(y1)) + 1, self.h)
        if ix0 >= ix1 or iy0 >= iy1:
            return None
        return ix0, ix1, iy0, iy1

    def shade(self, nx: np.ndarray, ny: np.ndarray, nz: np.ndarray) -> np.ndarray:
        lam = nx * self.light[0] + ny * self.light[1] + nz * self.light[2]
        return self.ambient + self.diffuse * np.maximum(lam, 0.0)

    def commit(self, box: tuple[int, int, int, int], m: np.ndarray, z: np.ndarray,
               colours: np.ndarray, code: int) -> None:
        x0, x1, y0, y1 = box
        self.z[y0:y1, x0:x1][m] = z
        self.code[y0:y1, x0:x1][m] = code
        self.img[y0:y1, x0:x1][m] = np.clip(colours, 0, 255).astype(np.uint8)


def draw_capsule(cv: Canvas, a: np.ndarray, b: np.ndarray, ra: float, rb: float,
                 colour: np.ndarray, code: int, mask: np.ndarray | None = None) -> None:
    """A capsule from ``a`` to ``b`` (image-space 3D) with radii ``ra`` -> ``rb``."""
    r_max = max(ra, rb)
    box = cv.box(min(a[0], b[0]) - r_max, max(a[0], b[0]) + r_max,
                 min(a[1], b[1]) - r_max, max(a[1], b[1]) + r_max)
    if box is None:
        return
    x0, x1, y0, y1 = box
    X = cv.xs[x0:x1][None, :] - np.float32(a[0])
    Y = cv.ys[y0:y1][:, None] - np.float32(a[1])
    abx, aby = np.float32(b[0] - a[0]), np.float32(b[1] - a[1])
    l2 = abx * abx + aby * aby
    if l2 > 1e-6:
        t = np.clip((X * abx + Y * aby) * (1.0 / l2), 0.0, 1.0)
    else:
        t = np.zeros((y1 - y0, x1 - x0), np.float32)
    dx = X - t * abx
    dy = Y - t * aby
    d2 = dx * dx + dy * dy
    r = np.float32(ra) + t * np.float32(rb - ra)
    inside = d2 < r * r
    if mask is not None:
        mask[y0:y1, x0:x1] |= inside
    hz = np.sqrt(np.maximum(r * r - d2, 0.0))
    z = np.float32(a[2]) + t * np.float32(b[2] - a[2]) + hz
    m = inside & (z > cv.z[y0:y1, x0:x1])
    if not m.any():
        return
    rm = r[m]
    inten = cv.shade(dx[m] / rm, dy[m] / rm, hz[m] / rm)
    cv.commit(box, m, z[m], inten[:, None] * colour[None, :], code)


def draw_ellipsoid(cv: Canvas, c: np.ndarray, axes: np.ndarray, colour: np.ndarray, code: int,
                   mask: np.ndarray | None = None, shader: str = "",
                   app: Appearance | None = None) -> None:
    """An ellipsoid centred at ``c`` whose semi-axes are the columns of ``axes``."""
    S = axes @ axes.T
    ex, ey = math.sqrt(S[0, 0]), math.sqrt(S[1, 1])
    box = cv.box(c[0] - ex, c[0] + ex, c[1] - ey, c[1] + ey)
    if box is None:
        return
    x0, x1, y0, y1 = box
    A = np.linalg.inv(S).astype(np.float32)
    dx = cv.xs[x0:x1][None, :] - np.float32(c[0])
    dy = cv.ys[y0:y1][:, None] - np.float32(c[1])
    bq = A[0, 2] * dx + A[1, 2] * dy
    cq = A[0, 0] * dx * dx + (2 * A[0, 1]) * dx * dy + A[1, 1] * dy * dy - 1.0
    disc = bq * bq - A[2, 2] * cq
    inside = disc >= 0
    if mask is not None:
        mask[y0:y1, x0:x1] |= inside
    dz = (np.sqrt(np.maximum(disc, 0.0)) - bq) * (1.0 / A[2, 2])
    z = np.float32(c[2]) + dz
    m = inside & (z > cv.z[y0:y1, x0:x1])
    if not m.any():
        return
    px = np.broadcast_to(dx, m.shape)[m]
    py = np.broadcast_to(dy, m.shape)[m]
    pz = dz[m]
    nx = A[0, 0] * px + A[0, 1] * py + A[0, 2] * pz
    ny = A[1, 0] * px + A[1, 1] * py + A[1, 2] * pz
    nz = A[2, 0] * px + A[2, 1] * py + A[2, 2] * pz
    inv = 1.0 / np.sqrt(nx * nx + ny * ny + nz * nz + 1e-12)
    inten = cv.shade(nx * inv, ny * inv, nz * inv)
    if shader and app is not None:
        E_inv = np.linalg.inv(axes).astype(np.float32)
        q = E_inv @ np.stack([px, py, pz])  # the pixel's point on the unit sphere, part frame
        base = (_head_colours if shader == "head" else _chest_colours)(q, colour, app)
        colours = inten[:, None] * base
    else:
        colours = inten[:, None] * colour[None, :]
    cv.commit(box, m, z[m], colours, code)


def _head_colours(q: np.ndarray, skin: np.ndarray, app: Appearance) -> np.ndarray:
    """Face on the front of the head, hair on top and back (head frame: x left, y up, z front)."""
    qx, qy, qz = q
    out = np.empty((qx.size, 3), np.float32)
    out[:] = skin
    if app.hair_style == 0:
        hair = (qy > 0.5 - 0.15 * qz) | ((qz < 0.05) & (qy > -0.45)) | (qz < -0.45)
    elif app.hair_style == 1:
        hair = (qy > 0.45 - 0.1 * qz) | (qz < 0.25)
    else:
        hair = (qy > 0.7) | ((qz < -0.2) & (qy > 0.2))
    out[hair] = app.hair
    front = qz > 0.45
    ax = np.abs(qx)
    eye_r = ((ax - 0.38) / 0.12) ** 2 + ((qy - 0.12) / 0.075) ** 2
    eye = front & (eye_r < 1.0)
    pupil = front & (eye_r < 0.3)
    brow = front & (np.abs(ax - 0.38) < 0.17) & (qy > 0.28) & (qy < 0.34)
    mouth = front & (ax < 0.26) & (np.abs(qy + 0.5) < 0.055)
    out[brow] = app.hair * 0.8
    out[eye] = (225.0, 230.0, 230.0)
    out[pupil] = (40.0, 30.0, 30.0)
    out[mouth] = (60.0, 60.0, 150.0)  # BGR: dark red
    return out


def _chest_colours(q: np.ndarray, shirt: np.ndarray, app: Appearance) -> np.ndarray:
    """The shirt, with a marking on its front only (torso frame: x left, y up, z front)."""
    qx, qy, qz = q
    out = np.empty((qx.size, 3), np.float32)
    out[:] = shirt
    kind = app.marking
    if kind == "emblem":
        sel = (qz > 0.2) & (qx * qx + (qy - 0.1) ** 2 < 0.09)
    elif kind == "stripe":
        sel = (qz > 0.35) & (np.abs(qy - 0.05) < 0.15)
    elif kind == "vneck":
        sel = (qz > 0.2) & (qy > 0.45 + 1.4 * np.abs(qx))
        out[sel] = app.skin
        return out
    elif kind == "buttons":
        sel = (qz > 0.5) & (np.abs(qx) < 0.055) & (np.mod(qy * 6.0, 1.0) < 0.45)
    elif kind == "letter":  # a bold "H": symmetric, so it says front, never left or right
        ax = np.abs(qx)
        sel = (qz > 0.45) & (np.abs(qy - 0.05) < 0.3) & ((np.abs(ax - 0.2) < 0.07) | (
            (ax < 0.2) & (np.abs(qy - 0.05) < 0.06)))
    else:
        return out
    out[sel] = app.marking_colour
    return out


def draw_primitive(cv: Canvas, p: Primitive, code: int, mask: np.ndarray | None = None,
                   app: Appearance | None = None) -> None:
    if p.kind == "capsule":
        draw_capsule(cv, p.a, p.b, p.ra, p.rb, p.colour, code, mask)
    else:
        draw_ellipsoid(cv, p.a, p.axes, p.colour, code, mask, p.shader, app)


def draw_body(cv: Canvas, body: PlacedBody, person: int, mask: np.ndarray) -> None:
    """Draw every solid of ``body``; ``mask`` collects its whole silhouette (occluded or not)."""
    for p in body.prims:
        draw_primitive(cv, p, person_code(person, p.part), mask, body.appearance)


def keypoint_visibility(cv: Canvas, body: PlacedBody, person: int,
                        part_ids: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """COCO flags for the 17 keypoints: 0 outside the image, 1 hidden, 2 visible.

    A keypoint inside the image is visible when the surface drawn at its pixel belongs to
    one of the parts meeting at it, of the same person, no further in front of the joint
    than that part's thickness: so a joint behind the trunk, behind another person, or
    under an occluder is labelled hidden.
    """
    vis = np.zeros(len(body.keypoints), np.int64)
    for j, (u, v, d) in enumerate(body.keypoints):
        if not (0.0 <= u <= cv.w - 1 and 0.0 <= v <= cv.h - 1):
            continue
        iu, iv = int(round(u)), int(round(v))
        c = int(cv.code[iv, iu])
        ok = (code_person(c) == person and code_part(c) in part_ids[j]
              and cv.z[iv, iu] <= d + 1.3 * body.radii[j] + 1.0)
        vis[j] = 2 if ok else 1
    return vis
