"""One synthetic image: background, clutter, people, distractor limbs, occluders, blur, noise.

Texture tiles (greyscale patterns: cloud noise, stripes, wood grain, tiles, bricks,
blotches, grass strokes) are made once per generation seed; each image colours crops of
them through random colour ramps, so backgrounds are textured and varied at the cost of
a table look-up. Everything random in an image comes from the one generator passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from autopose.data.synthetic.figure import (
    KEYPOINT_PART_IDS, RADIUS, SKIN_TONES, PlacedBody, View, random_colour, build_body, place_body,
    sample_appearance, sample_pose, sample_view,
)
from autopose.data.synthetic.render import (
    CODE_DISTRACTOR, CODE_OCCLUDER, CODE_PROP, Canvas, code_person, draw_body, draw_capsule,
    draw_ellipsoid, keypoint_visibility,
)

# Person heights (standing stature, pixels) for a 480-pixel-high image; scaled with it.
MIN_HEIGHT, MAX_HEIGHT = 70.0, 400.0
PEOPLE_P = np.array([0.3, 0.3, 0.24, 0.16])  # 1, 2, 3, 4 people
LAYER = 1.0e4  # depth between people; a body is far thinner than this
MIN_SEEN = 0.08  # a person with less of the silhouette in view than this is not annotated


@dataclass(frozen=True)
class SceneLevel:
    """How hard the scenes are: everything the ``data.synthetic.level`` field changes.

    ``standard`` is the benchmark (docs/synthetic.md). ``easy`` keeps the figures, textures,
    blur and noise, and removes what takes a network long to learn: one person per image, at
    least 160 px tall and inside the image, facing the camera (left and right follow the
    image side), upright, standing or walking (no raised arms, sitting, bending or kicking), no
    distractor limbs, no occluders, less clutter.
    """

    people_p: tuple[float, ...]  # P(1 person), P(2 people), ...
    min_height: float  # standing stature in pixels at 480 px image height
    max_height: float
    facing_camera: bool  # figure.sample_view's facing_camera
    pose_modes: tuple[str, ...] | None  # activities drawn (figure.POSE_MODES); None: all
    clutter: tuple[int, int]  # [low, high) number of clutter shapes
    distractors: bool
    occluders: bool
    whole_in_view: bool  # place each person's box inside the image (else it may be cut off)


LEVELS: dict[str, SceneLevel] = {
    "standard": SceneLevel(tuple(PEOPLE_P), MIN_HEIGHT, MAX_HEIGHT, False, None, (6, 26), True,
                           True, False),
    "easy": SceneLevel((1.0,), 160.0, MAX_HEIGHT, True, ("stand", "walk"), (0, 8),
                       False, False, True),
}


@dataclass
class Tiles:
    """Greyscale texture tiles a little larger than the image, plus a noise tile."""

    grey: list[np.ndarray]
    noise: np.ndarray  # uint8, centred on 128


def _norm_u8(a: np.ndarray) -> np.ndarray:
    a = a - a.min()
    return (a * (255.0 / max(float(a.max()), 1e-6))).astype(np.uint8)


def _octaves(rng: np.random.Generator, h: int, w: int, first: int, last: int) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    for k in range(first, last + 1):
        cells = 2 ** k
        side = max(h, w)
        small = rng.random((cells * h // side + 2, cells * w // side + 2)).astype(np.float32)
        out += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * (0.6 ** (k - first))
    return out


def make_tiles(seed: int, width: int, height: int) -> Tiles:
    """The texture tiles of one generation seed (a few tens of milliseconds)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7173]))
    th, tw = height + height // 4, width + width // 4
    yy, xx = np.mgrid[0:th, 0:tw].astype(np.float32)
    tiles = []
    tiles.append(_norm_u8(_octaves(rng, th, tw, 2, 7)))  # clouds
    tiles.append(_norm_u8(_octaves(rng, th, tw, 4, 8)))  # fine mottling
    ang = rng.uniform(0, np.pi)
    period = rng.uniform(12, 40)
    stripes = np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * (2 * np.pi / period))
    tiles.append(_norm_u8(stripes + 0.6 * _octaves(rng, th, tw, 3, 6)))
    warp = 30 * _octaves(rng, th, tw, 2, 4)  # wood grain
    tiles.append(_norm_u8(np.sin((xx + warp) * (2 * np.pi / rng.uniform(8, 20)))
                          + 0.3 * _octaves(rng, th, tw, 5, 8)))
    s = int(rng.integers(24, 64))  # floor tiles with grout
    checker = (((xx // s) + (yy // s)) % 2) * 0.5 + 0.25
    grout = ((xx % s) < 2) | ((yy % s) < 2)
    tiles.append(_norm_u8(np.where(grout, 0.0, checker) + 0.15 * _octaves(rng, th, tw, 4, 7)))
    bh = int(rng.integers(14, 30))  # bricks
    row = yy // bh
    bx = (xx + (row % 2) * bh * 1.5) % (bh * 3)
    mortar = ((yy % bh) < 2) | (bx < 2)
    brick = 0.6 + 0.3 * np.sin(row * 12.9898 + ((xx + (row % 2) * bh * 1.5) // (bh * 3)) * 78.233)
    tiles.append(_norm_u8(np.where(mortar, 0.15, brick) + 0.2 * _octaves(rng, th, tw, 5, 8)))
    blot = np.zeros((th, tw), np.uint8)  # blotches
    for _ in range(260):
        c = (int(rng.integers(tw)), int(rng.integers(th)))
        cv2.circle(blot, c, int(rng.integers(3, 40)), int(rng.integers(0, 256)), -1)
    tiles.append(cv2.GaussianBlur(blot, (0, 0), 2.0))
    grass = np.full((th, tw), 90, np.uint8)  # grass / foliage strokes
    for _ in range(1800):
        x, y = int(rng.integers(tw)), int(rng.integers(th))
        ln, an = rng.uniform(5, 25), rng.uniform(-0.5, 0.5) - np.pi / 2
        cv2.line(grass, (x, y), (int(x + ln * np.cos(an)), int(y + ln * np.sin(an))),
                 int(rng.integers(0, 256)), 1, cv2.LINE_AA)
    tiles.append(grass)
    noise = np.clip(rng.normal(128, 24, (th, tw, 3)), 0, 255).astype(np.uint8)
    return Tiles(tiles, noise)


def _ramp(rng: np.random.Generator) -> np.ndarray:
    """A random colour ramp as an OpenCV look-up table (256, 1, 3)."""
    k = int(rng.integers(2, 4))
    cols = np.stack([random_colour(rng) for _ in range(k)])
    if rng.random() < 0.5:  # low-contrast textures are common too
        cols = cols.mean(0) + (cols - cols.mean(0)) * rng.uniform(0.15, 0.6)
    pos = np.linspace(0, 255, k)
    x = np.arange(256)
    lut = np.stack([np.interp(x, pos, cols[:, c]) for c in range(3)], axis=1)
    return np.clip(lut, 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _texture(rng: np.random.Generator, tiles: Tiles, w: int, h: int) -> np.ndarray:
    """A coloured crop (h, w, 3) of a random tile."""
    t = tiles.grey[int(rng.integers(len(tiles.grey)))]
    th, tw = t.shape
    w, h = min(w, tw), min(h, th)
    y0, x0 = int(rng.integers(0, th - h + 1)), int(rng.integers(0, tw - w + 1))
    g = t[y0:y0 + h, x0:x0 + w]
    if rng.random() < 0.5:
        g = g[:, ::-1]
    return cv2.LUT(cv2.merge([g, g, g]), _ramp(rng))


def _background(rng: np.random.Generator, tiles: Tiles, W: int, H: int) -> np.ndarray:
    img = _texture(rng, tiles, W, H)
    if rng.random() < 0.6:  # a floor below a horizon
        yh = int(rng.uniform(0.4, 0.85) * H)
        img[yh:] = _texture(rng, tiles, W, H - yh)
    if rng.random() < 0.3:  # a wall, a door, a window
        x0 = int(rng.uniform(0, 0.8) * W)
        x1 = min(W, x0 + int(rng.uniform(0.1, 0.5) * W))
        y1 = int(rng.uniform(0.5, 1.0) * H)
        img[:y1, x0:x1] = _texture(rng, tiles, x1 - x0, y1)
    return img


def _clutter(rng: np.random.Generator, img: np.ndarray, tiles: Tiles,
             count: tuple[int, int]) -> None:
    """Flat and textured shapes, lines and curves painted on the background."""
    H, W = img.shape[:2]
    diag = math.hypot(W, H)
    for _ in range(int(rng.integers(*count))):
        kind = rng.random()
        col = tuple(float(c) for c in random_colour(rng))
        cx, cy = int(rng.integers(W)), int(rng.integers(H))
        size = int(diag * math.exp(rng.uniform(math.log(0.015), math.log(0.25))))
        if kind < 0.25:  # textured rectangle (furniture, posters, boxes)
            w = max(2, min(W - 1, size))
            h = max(2, min(H - 1, int(size * rng.uniform(0.3, 2.0))))
            x0, y0 = min(cx, W - w), min(cy, H - h)
            img[y0:y0 + h, x0:x0 + w] = _texture(rng, tiles, w, h)
            cv2.rectangle(img, (x0, y0), (x0 + w - 1, y0 + h - 1),
                          tuple(c * 0.5 for c in col), int(rng.integers(1, 4)))
        elif kind < 0.45:
            axes = (max(1, size // 2), max(1, int(size * rng.uniform(0.2, 1.0)) // 2))
            cv2.ellipse(img, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, col, -1,
                        cv2.LINE_AA)
        elif kind < 0.65:
            n = int(rng.integers(3, 7))
            pts = np.stack([cx + rng.normal(0, size / 2, n), cy + rng.normal(0, size / 2, n)], 1)
            cv2.fillPoly(img, [cv2.convexHull(pts.astype(np.int32))], col, cv2.LINE_AA)
        elif kind < 0.85:
            n = int(rng.integers(2, 6))
            pts = np.stack([cx + np.cumsum(rng.normal(0, size / 2, n)),
                            cy + np.cumsum(rng.normal(0, size / 2, n))], 1)
            cv2.polylines(img, [pts.astype(np.int32)], False, col, int(rng.integers(1, 8)),
                          cv2.LINE_AA)
        else:
            cv2.circle(img, (cx, cy), max(1, size // 4), col, int(rng.integers(-1, 5)) or -1,
                       cv2.LINE_AA)


def _distractor_limb(rng: np.random.Generator, cv: Canvas, depth: float, code: int) -> None:
    """An arm or leg with no body: limb-shaped clutter that is never annotated."""
    H, W = cv.h, cv.w
    scale = math.exp(rng.uniform(math.log(MIN_HEIGHT), math.log(MAX_HEIGHT))) * H / 480.0
    leg = rng.random() < 0.4
    lens = (0.245, 0.235) if leg else (0.172, 0.146)
    rads = (RADIUS["thigh"], RADIUS["shank"]) if leg else (RADIUS["upper_arm"], RADIUS["forearm"])
    if rng.random() < 0.3:
        skin = random_colour(rng)
    else:  # BGR, like everything drawn on the canvas
        skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))][::-1] + rng.normal(0, 8, 3)
    cloth = random_colour(rng)
    colours = (cloth, cloth if rng.random() < 0.5 else skin)
    p = np.array([rng.uniform(0, W), rng.uniform(0, H), depth])
    ang = rng.uniform(0, 2 * np.pi)
    nseg = int(rng.integers(1, 3))
    for k in range(nseg):
        d3 = np.array([np.cos(ang), np.sin(ang), rng.uniform(-0.4, 0.4)])
        q = p + d3 * lens[k] * scale
        draw_capsule(cv, p, q, rads[k][0] * scale, rads[k][1] * scale,
                     colours[k].astype(np.float32), code)
        p = q
        ang += rng.uniform(-2.3, 2.3)
    if rng.random() < 0.6:  # a hand or a shoe at the end
        d3 = np.array([np.cos(ang), np.sin(ang), 0.0])
        end = p + d3 * (0.12 if leg else 0.075) * scale
        col = (random_colour(rng) * 0.5) if leg else skin
        r = (RADIUS["foot"] if leg else RADIUS["hand"])[0] * scale
        draw_capsule(cv, p, end, r, r * 0.85, np.asarray(col, np.float32), code)


def _prop(rng: np.random.Generator, cv: Canvas, depth: float) -> None:
    """A shaded ball or egg: round shaded shapes are not only people."""
    r = math.exp(rng.uniform(math.log(4), math.log(60))) * cv.h / 480.0
    axes = np.diag([r, r * rng.uniform(0.5, 1.5), r])
    c = np.array([rng.uniform(0, cv.w), rng.uniform(0, cv.h), depth])
    draw_ellipsoid(cv, c, axes, random_colour(rng).astype(np.float32), CODE_PROP)


def _occluder(rng: np.random.Generator, cv: Canvas, tiles: Tiles, box: np.ndarray,
              depth: float, person_mask: np.ndarray) -> None:
    """A flat object over part of a person's box: a post, a table top, a sign or a bush.

    It is dropped when it would cover more than half of the person's silhouette.
    """
    x, y, w, h = box
    kind = rng.random()
    if kind < 0.3:  # vertical post
        pw = w * rng.uniform(0.12, 0.35)
        px = x + rng.uniform(0, 1) * w - pw / 2
        pts = [(px, -10), (px + pw, -10), (px + pw, cv.h + 10), (px, cv.h + 10)]
    elif kind < 0.6:  # table / wall / car bonnet over the lower part
        top = y + h * rng.uniform(0.5, 0.85)
        x0 = x - w * rng.uniform(0.1, 1.0)
        x1 = x + w * rng.uniform(0.6, 1.8)
        pts = [(x0, top), (x1, top), (x1, y + h * 1.5), (x0, y + h * 1.5)]
    elif kind < 0.85:  # sign or box beside
        bw, bh = w * rng.uniform(0.25, 0.6), h * rng.uniform(0.15, 0.4)
        bx = x + rng.choice([-0.2, 0.8]) * w + rng.normal(0, 0.1) * w
        by = y + rng.uniform(0.1, 0.7) * h
        pts = [(bx, by), (bx + bw, by), (bx + bw, by + bh), (bx, by + bh)]
    else:  # bush: a blob
        cx, cy = x + rng.uniform(0, 1) * w, y + rng.uniform(0.4, 1.0) * h
        rad = rng.uniform(0.2, 0.45) * w + rng.uniform(0.05, 0.15) * h
        ang = np.linspace(0, 2 * np.pi, 14, endpoint=False)
        rr = rad * rng.uniform(0.7, 1.2, ang.size)
        pts = list(zip(cx + rr * np.cos(ang), cy + rr * 0.8 * np.sin(ang)))
    poly = np.array(pts, np.float64)
    bx0, by0 = poly.min(0)
    bx1, by1 = poly.max(0)
    b = cv.box(bx0, bx1, by0, by1)
    if b is None:
        return
    x0, x1, y0, y1 = b
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(m, [np.round(poly - [x0, y0]).astype(np.int32)], 1)
    tex = _texture(rng, tiles, x1 - x0, y1 - y0)
    if tex.shape[:2] != m.shape:
        tex = cv2.resize(tex, (x1 - x0, y1 - y0))
    # a soft vertical light gradient makes it a solid, not a hole
    grad = np.linspace(1.1, 0.75, y1 - y0, dtype=np.float32)[:, None, None]
    sel = (m > 0) & (depth > cv.z[y0:y1, x0:x1])
    covered = np.count_nonzero(sel & person_mask[y0:y1, x0:x1])
    if not sel.any() or covered > 0.5 * np.count_nonzero(person_mask):
        return
    cv.z[y0:y1, x0:x1][sel] = depth
    cv.code[y0:y1, x0:x1][sel] = CODE_OCCLUDER
    cv.img[y0:y1, x0:x1][sel] = np.clip(tex * grad, 0, 255).astype(np.uint8)[sel]


@dataclass
class PersonRender:
    """What the renderer knows about one person: the ground truth the json must match."""

    index: int
    body: PlacedBody
    keypoints: np.ndarray  # (17, 2) image pixels (u, v), exact renderer positions
    visibility: np.ndarray  # (17,) 0, 1, 2
    bbox: list[float]  # x, y, w, h of the whole silhouette clipped to the image
    area: int  # silhouette pixels inside the image
    layer: int


def _sample_people(rng: np.random.Generator, W: int, H: int, level: SceneLevel) -> list[View]:
    n = int(rng.choice(len(level.people_p), p=level.people_p)) + 1
    k = H / 480.0
    views: list[View] = []
    boxes: list[tuple[float, float, float, float]] = []
    for i in range(n):
        hpx = math.exp(rng.uniform(math.log(level.min_height), math.log(level.max_height))) * k
        yaw, pitch, roll = sample_view(rng, level.facing_camera)
        bw, bh = 0.45 * hpx, 0.9 * hpx
        if i > 0 and rng.random() < 0.45:  # overlap someone already placed
            ox, oy, ow, oh = boxes[int(rng.integers(len(boxes)))]
            side = rng.choice([-1.0, 1.0])
            cx = ox + side * rng.uniform(0.25, 0.7) * (ow + bw) / 2
            cy = oy + rng.uniform(-0.25, 0.25) * oh
        else:
            for _ in range(6):
                if level.whole_in_view:
                    cx = rng.uniform(min(0.5, bw / 2 / W), max(0.5, 1 - bw / 2 / W)) * W
                    cy = rng.uniform(min(0.5, bh / 2 / H), max(0.5, 1 - bh / 2 / H)) * H
                    break
                cx = rng.uniform(0.02, 0.98) * W
                cy = rng.uniform(min(0.5, bh / 2 / H * 0.8), max(0.5, 1 - bh / 2 / H * 0.8)) * H
                if all(abs(cx - ox) > 0.5 * (ow + bw) or abs(cy - oy) > 0.5 * (oh + bh)
                       for ox, oy, ow, oh in boxes):
                    break
        boxes.append((cx, cy, bw, bh))
        views.append(View(yaw, pitch, roll, hpx, (float(cx), float(cy)), 0.0))
    return views


def render_image(rng: np.random.Generator, W: int, H: int, tiles: Tiles,
                 level: SceneLevel = LEVELS["standard"]
                 ) -> tuple[np.ndarray, list[PersonRender], Canvas]:
    """Draw one image; returns it (BGR uint8), the people in it and the final buffers."""
    img = _background(rng, tiles, W, H)
    _clutter(rng, img, tiles, level.clutter)
    light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.9, -0.1), rng.uniform(0.5, 1.0)])
    cv = Canvas(img, light, ambient=rng.uniform(0.35, 0.55))

    views = _sample_people(rng, W, H, level)
    n = len(views)
    # bigger people are nearer the camera, mostly
    order = np.argsort([math.log(v.height_px) + rng.normal(0, 0.3) for v in views])
    layers = np.empty(n, np.int64)
    layers[order] = np.arange(n)
    bodies = []
    for i, v in enumerate(views):
        v.depth = float((layers[i] + 1) * LAYER)
        bodies.append(place_body(build_body(sample_pose(rng, level.pose_modes),
                                            sample_appearance(rng)), v))

    for _ in range(int(rng.choice(4, p=[0.3, 0.35, 0.2, 0.15]))):
        _prop(rng, cv, rng.uniform(-2000, 0))
    for _ in range(int(rng.choice(5, p=[0.25, 0.3, 0.25, 0.12, 0.08])) if level.distractors else 0):
        in_front = rng.random() < 0.25 and n > 0
        depth = (int(rng.integers(n)) + 1.5) * LAYER if in_front else rng.uniform(-2000, 0)
        _distractor_limb(rng, cv, depth, CODE_DISTRACTOR)

    masks = [np.zeros((H, W), np.bool_) for _ in range(n)]
    for i, body in enumerate(bodies):
        draw_body(cv, body, i, masks[i])

    # occluders over part of some people (drawn just in front of that person)
    if level.occluders and rng.random() < 0.45:
        for _ in range(int(rng.integers(1, 3))):
            i = int(rng.integers(n))
            box = _mask_box(masks[i], bodies[i].keypoints, W, H)
            if box is not None:
                _occluder(rng, cv, tiles, np.array(box, np.float64), (layers[i] + 1.5) * LAYER,
                          masks[i])

    people = []
    owner = code_person(cv.code)
    for i, body in enumerate(bodies):
        vis = keypoint_visibility(cv, body, i, KEYPOINT_PART_IDS)
        area = int(cv2.countNonZero(masks[i].view(np.uint8)))
        if np.count_nonzero(owner == i) < MIN_SEEN * area:
            vis[:] = 0  # all but hidden: not annotated (and left out of the set's persons)
        box = _mask_box(masks[i], body.keypoints, W, H, vis)
        people.append(PersonRender(i, body, body.keypoints[:, :2].copy(), vis,
                                   box if box is not None else [0.0, 0.0, 0.0, 0.0], area,
                                   int(layers[i])))

    out = _finish(rng, cv.img, tiles)
    return out, people, cv


def _mask_box(mask: np.ndarray, kps: np.ndarray, W: int, H: int,
              vis: np.ndarray | None = None) -> list[float] | None:
    """[x, y, w, h] around the silhouette (clipped to the image) and every labelled keypoint."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0 or h == 0:
        return None
    x0, y0, x1, y1 = float(x), float(y), float(x + w - 1), float(y + h - 1)
    if vis is not None and (vis > 0).any():
        p = kps[vis > 0, :2]
        x0, y0 = min(x0, float(np.floor(p[:, 0].min()))), min(y0, float(np.floor(p[:, 1].min())))
        x1, y1 = max(x1, float(np.ceil(p[:, 0].max()))), max(y1, float(np.ceil(p[:, 1].max())))
    x0, y0 = max(x0, 0.0), max(y0, 0.0)
    x1, y1 = min(x1, W - 1.0), min(y1, H - 1.0)
    return [x0, y0, x1 - x0 + 1.0, y1 - y0 + 1.0]


def _finish(rng: np.random.Generator, img: np.ndarray, tiles: Tiles) -> np.ndarray:
    """Exposure, blur and sensor noise."""
    H, W = img.shape[:2]
    if rng.random() < 0.5:
        img = cv2.convertScaleAbs(img, alpha=rng.uniform(0.7, 1.25), beta=rng.uniform(-25, 25))
    r = rng.random()
    if r < 0.3:
        s = rng.uniform(0.6, 1.8)
        img = cv2.GaussianBlur(img, (0, 0), s)
    elif r < 0.4:  # motion blur
        n = int(rng.integers(5, 12))
        k = np.zeros((n, n), np.float32)
        ang = rng.uniform(0, np.pi)
        c = (n - 1) / 2
        cv2.line(k, (int(round(c - c * np.cos(ang))), int(round(c - c * np.sin(ang)))),
                 (int(round(c + c * np.cos(ang))), int(round(c + c * np.sin(ang)))), 1.0, 1)
        img = cv2.filter2D(img, -1, k / k.sum())
    elif r < 0.75:  # a touch of lens softness takes the edge off the raster
        img = cv2.GaussianBlur(img, (3, 3), 0.6)
    if rng.random() < 0.7:
        th, tw = tiles.noise.shape[:2]
        y0, x0 = int(rng.integers(0, th - H + 1)), int(rng.integers(0, tw - W + 1))
        a = rng.uniform(0.05, 0.45)
        img = cv2.addWeighted(img, 1.0, tiles.noise[y0:y0 + H, x0:x0 + W], a, -128.0 * a)
    return img
