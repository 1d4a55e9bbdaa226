"""An articulated human figure: skeleton kinematics, human proportions, joint-angle ranges.

The figure is built in a body frame of height 1 (a standing adult is one unit tall):
``x`` points to the person's left, ``y`` up, ``z`` forward (out of the chest), the pelvis
centre at the origin. Proportions are rounded adult averages of the kind anthropometric
tables give (segment lengths and limb radii as fractions of stature); joint angles are
drawn within the active ranges of motion of the human joints.

:func:`place_body` then turns the figure towards the camera (yaw: front, side, back
views; a small camera pitch), rotates it in the image plane, scales it to a height in
pixels and places it, giving image-space 3D: ``u`` right, ``v`` down (pixel indices, the
centre of pixel ``(i, j)`` is ``u = j, v = i``) and a depth ``d`` that grows toward the
camera. The projection is orthographic, so an ellipsoid stays an ellipsoid and a capsule
a capsule, which lets :mod:`render` shade them pixel by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Part ids (one per drawn primitive kind); the renderer writes them into its id map.
PARTS = (
    "head", "nose", "left_ear", "right_ear", "neck", "chest", "waist", "pelvis",
    "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm",
    "left_hand", "right_hand", "left_thigh", "right_thigh", "left_shank", "right_shank",
    "left_foot", "right_foot",
)
PART_ID = {name: i for i, name in enumerate(PARTS)}

# For each COCO keypoint: the parts meeting at it. A keypoint is visible (v=2) when the
# surface seen at its pixel is one of these parts of the same person and lies no further
# in front of the joint than the part's thickness (``Body.radii``).
KEYPOINT_PARTS: tuple[tuple[str, ...], ...] = (
    ("nose", "head"),
    ("head",), ("head",),
    ("left_ear", "head"), ("right_ear", "head"),
    ("left_upper_arm", "chest"), ("right_upper_arm", "chest"),
    ("left_upper_arm", "left_forearm"), ("right_upper_arm", "right_forearm"),
    ("left_forearm", "left_hand"), ("right_forearm", "right_hand"),
    ("left_thigh", "pelvis"), ("right_thigh", "pelvis"),
    ("left_thigh", "left_shank"), ("right_thigh", "right_shank"),
    ("left_shank", "left_foot"), ("right_shank", "right_foot"),
)
KEYPOINT_PART_IDS = tuple(tuple(PART_ID[p] for p in ps) for ps in KEYPOINT_PARTS)

# Segment lengths and radii as fractions of stature.
LENGTH = {
    "upper_arm": 0.172, "forearm": 0.146, "hand": 0.075,
    "thigh": 0.245, "shank": 0.235, "foot": 0.125, "heel": 0.035,
    "neck": 0.05, "spine_low": 0.14, "spine_high": 0.15,
}
RADIUS = {  # (proximal, distal)
    "upper_arm": (0.034, 0.027), "forearm": (0.027, 0.020), "hand": (0.022, 0.018),
    "thigh": (0.054, 0.038), "shank": (0.040, 0.025), "foot": (0.024, 0.020),
    "neck": (0.028, 0.027),
}
SHOULDER_HALF_WIDTH = 0.105
HIP_HALF_WIDTH = 0.062
TRUNK_SEE_THROUGH = (0.06, 0.08)  # shoulder, hip: depth of own trunk allowed in front
HEAD_AXES = np.array([0.050, 0.066, 0.058])  # lateral, vertical, front-back semi-axes

# Face landmarks as directions on the unit head sphere (head frame: x left, y up, z front).
_EYE_DIR = np.array([0.38, 0.12, 0.92])
_EAR_DIR = np.array([1.0, 0.02, -0.08])
NOSE_OFFSET = np.array([0.0, -0.10, 1.02])  # nose-tip centre, in head semi-axis units


def rot(axis: str, angle_deg: float) -> np.ndarray:
    """Right-handed rotation matrix about a coordinate axis."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def rot_about(v: np.ndarray, axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate vector ``v`` about the unit ``axis`` (Rodrigues)."""
    a = np.deg2rad(angle_deg)
    return (v * np.cos(a) + np.cross(axis, v) * np.sin(a)
            + axis * np.dot(axis, v) * (1 - np.cos(a)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


# ------------------------------------------------------------------------------ pose


# Active ranges of motion (degrees); every sampled angle is clipped into them.
RANGES = {
    "trunk_flex": (-25.0, 70.0), "trunk_side": (-25.0, 25.0), "trunk_twist": (-35.0, 35.0),
    "pelvis_tilt": (-15.0, 80.0),
    "head_yaw": (-70.0, 70.0), "head_pitch": (-35.0, 45.0), "head_roll": (-25.0, 25.0),
    "shoulder_flex": (-50.0, 180.0), "shoulder_abd": (-10.0, 170.0),
    "shoulder_rot": (-60.0, 90.0), "elbow": (0.0, 150.0),
    "hip_flex": (-25.0, 125.0), "hip_abd": (-15.0, 45.0), "hip_rot": (-35.0, 40.0),
    "knee": (0.0, 150.0), "ankle": (-20.0, 45.0),
}


@dataclass
class Pose:
    """Joint angles (degrees). Per-limb entries are (left, right)."""

    trunk_flex: float = 0.0
    trunk_side: float = 0.0
    trunk_twist: float = 0.0
    pelvis_tilt: float = 0.0
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    shoulder_flex: list[float] = field(default_factory=lambda: [0.0, 0.0])
    shoulder_abd: list[float] = field(default_factory=lambda: [10.0, 10.0])
    shoulder_rot: list[float] = field(default_factory=lambda: [0.0, 0.0])
    elbow: list[float] = field(default_factory=lambda: [10.0, 10.0])
    hip_flex: list[float] = field(default_factory=lambda: [0.0, 0.0])
    hip_abd: list[float] = field(default_factory=lambda: [3.0, 3.0])
    hip_rot: list[float] = field(default_factory=lambda: [0.0, 0.0])
    knee: list[float] = field(default_factory=lambda: [0.0, 0.0])
    ankle: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def clip(self) -> "Pose":
        for name, (lo, hi) in RANGES.items():
            v = getattr(self, name)
            if isinstance(v, list):
                setattr(self, name, [float(np.clip(x, lo, hi)) for x in v])
            else:
                setattr(self, name, float(np.clip(v, lo, hi)))
        return self


POSE_MODES = ("stand", "walk", "arms", "sit", "free")
_MODE_P = np.array([0.22, 0.26, 0.2, 0.12, 0.2])


def sample_pose(rng: np.random.Generator, modes: tuple[str, ...] | None = None) -> Pose:
    """A random pose from a mixture of activities, every angle inside its human range.

    ``modes``: the activities to draw from (their mixture weights renormalised); None: all.
    """
    if modes is None:
        mode = POSE_MODES[rng.choice(len(POSE_MODES), p=_MODE_P)]
    else:
        w = np.array([_MODE_P[POSE_MODES.index(m)] for m in modes])
        mode = modes[rng.choice(len(modes), p=w / w.sum())]
    u = rng.uniform
    n = rng.normal
    p = Pose()
    p.trunk_side, p.trunk_twist = n(0, 6), n(0, 10)
    p.head_yaw, p.head_pitch, p.head_roll = n(0, 25), n(5, 12), n(0, 7)
    p.shoulder_rot = [u(-20, 50), u(-20, 50)]
    p.hip_rot = [n(0, 10), n(0, 10)]
    p.ankle = [n(5, 8), n(5, 8)]
    if mode == "stand":
        p.trunk_flex = n(3, 5)
        p.shoulder_flex = [n(5, 18), n(5, 18)]
        p.shoulder_abd = [u(3, 30), u(3, 30)]
        p.elbow = [u(0, 70), u(0, 70)]
        p.hip_flex = [n(0, 6), n(0, 6)]
        p.hip_abd = [u(0, 10), u(0, 10)]
        p.knee = [u(0, 12), u(0, 12)]
    elif mode == "walk":
        amp, phase = u(15, 50), u(0, 2 * np.pi)
        sw = np.sin(phase)
        run = amp > 35
        p.trunk_flex = u(0, 20 if run else 8)
        p.hip_flex = [amp * sw + n(0, 4), -amp * sw + n(0, 4)]
        # the leg swinging forward bends its knee; running bends both more
        base = u(20, 80) if run else u(0, 25)
        p.knee = [base + max(0.0, -sw) * u(20, 80), base + max(0.0, sw) * u(20, 80)]
        p.shoulder_flex = [-0.9 * amp * sw + n(0, 8), 0.9 * amp * sw + n(0, 8)]
        p.shoulder_abd = [u(5, 20), u(5, 20)]
        p.elbow = [u(60, 110) if run else u(5, 50), u(60, 110) if run else u(5, 50)]
        p.hip_abd = [u(0, 6), u(0, 6)]
        p.ankle = [n(10, 12), n(10, 12)]
    elif mode == "arms":
        p.trunk_flex = n(3, 8)
        p.shoulder_flex = [u(-40, 180), u(-40, 180)]
        p.shoulder_abd = [u(0, 170), u(0, 170)]
        p.shoulder_rot = [u(-50, 85), u(-50, 85)]
        p.elbow = [u(0, 145), u(0, 145)]
        p.hip_flex = [n(0, 10), n(0, 10)]
        p.hip_abd = [u(0, 25), u(0, 25)]
        p.knee = [u(0, 25), u(0, 25)]
    elif mode == "sit":
        squat = rng.random() < 0.4
        p.trunk_flex = u(0, 35) if squat else n(5, 8)
        flex = u(70, 120)
        p.hip_flex = [flex + n(0, 8), flex + n(0, 8)]
        p.knee = [u(100, 145), u(100, 145)] if squat else [u(60, 110), u(60, 110)]
        p.hip_abd = [u(0, 30), u(0, 30)]
        p.shoulder_flex = [u(-10, 90), u(-10, 90)]
        p.shoulder_abd = [u(0, 40), u(0, 40)]
        p.elbow = [u(0, 130), u(0, 130)]
        p.ankle = [u(-20, 30), u(-20, 30)]
    else:  # free: bending, reaching, kicking, dancing; anything in range
        p.pelvis_tilt = u(-10, 70) if rng.random() < 0.35 else n(0, 6)
        p.trunk_flex = u(-20, 50)
        p.trunk_side = n(0, 12)
        p.trunk_twist = n(0, 18)
        p.shoulder_flex = [u(-50, 180), u(-50, 180)]
        p.shoulder_abd = [u(-10, 170), u(-10, 170)]
        p.shoulder_rot = [u(-60, 90), u(-60, 90)]
        p.elbow = [u(0, 150), u(0, 150)]
        # legs relative to the pelvis: a tilted pelvis with upright legs is a bow
        p.hip_flex = [u(-25, 100) + p.pelvis_tilt * 0.8, u(-20, 60) + p.pelvis_tilt * 0.8]
        if rng.random() < 0.5:
            p.hip_flex = p.hip_flex[::-1]
        p.hip_abd = [u(-10, 45), u(-10, 45)]
        p.knee = [u(0, 140), u(0, 60)] if rng.random() < 0.5 else [u(0, 60), u(0, 140)]
        p.head_pitch = n(5, 18)
    return p.clip()


# ------------------------------------------------------------------------ appearance


# Skin tones, hair and clothing in RGB (0-255).
SKIN_TONES = np.array([
    [255, 224, 196], [241, 194, 160], [224, 172, 128], [198, 134, 94], [160, 104, 68],
    [120, 76, 50], [90, 56, 38], [232, 190, 172],
], dtype=np.float64)
HAIR_COLOURS = np.array([
    [20, 16, 14], [60, 40, 28], [110, 72, 40], [170, 130, 80], [220, 190, 130],
    [150, 60, 30], [160, 160, 160], [235, 235, 230],
], dtype=np.float64)
MARKINGS = ("none", "emblem", "stripe", "vneck", "buttons", "letter")


def random_colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.25:  # greys, black, white
        g = rng.uniform(25, 235)
        return np.array([g, g, g]) + rng.normal(0, 6, 3)
    hue = rng.uniform(0, 1)
    sat, val = rng.uniform(0.25, 0.95), rng.uniform(60, 240)
    # HSV -> RGB without colorsys (vectorised enough for three numbers)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    rgb = val * (1 - sat * np.clip(np.minimum(k, 4 - k), 0, 1))
    return rgb


@dataclass
class Appearance:
    """Colours (BGR, for OpenCV) and build of one person. Left and right share colours."""

    skin: np.ndarray
    hair: np.ndarray
    shirt: np.ndarray
    pants: np.ndarray
    shoes: np.ndarray
    marking_colour: np.ndarray
    marking: str
    long_sleeves: bool
    long_pants: bool
    hair_style: int  # 0 short, 1 long, 2 very short / shaved
    build: float  # width factor
    head_scale: float


def sample_appearance(rng: np.random.Generator) -> Appearance:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 8, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] + rng.normal(0, 6, 3)
    shirt = random_colour(rng)
    pants = random_colour(rng)
    shoes = random_colour(rng) * rng.uniform(0.3, 0.8)
    mark = random_colour(rng)
    if np.abs(mark - shirt).sum() < 150:  # the marking must stand out from the shirt
        mark = 255.0 - shirt
    marking = MARKINGS[rng.choice(len(MARKINGS), p=[0.1, 0.25, 0.2, 0.15, 0.15, 0.15])]
    bgr = lambda c: np.clip(c, 0, 255)[::-1].astype(np.float32)  # noqa: E731
    return Appearance(
        skin=bgr(skin), hair=bgr(hair), shirt=bgr(shirt), pants=bgr(pants), shoes=bgr(shoes),
        marking_colour=bgr(mark), marking=marking,
        long_sleeves=bool(rng.random() < 0.55), long_pants=bool(rng.random() < 0.7),
        hair_style=int(rng.choice(3, p=[0.55, 0.3, 0.15])),
        build=float(rng.uniform(0.85, 1.2)), head_scale=float(rng.uniform(0.92, 1.1)))


# ------------------------------------------------------------------------- the body


@dataclass
class Primitive:
    """One shaded solid. ``kind`` is ``ellipsoid`` (centre ``a``, semi-axes as the columns
    of ``axes``) or ``capsule`` (segment ``a``-``b`` with radii ``ra``, ``rb``)."""

    kind: str
    part: int
    colour: np.ndarray
    a: np.ndarray
    b: np.ndarray | None = None
    ra: float = 0.0
    rb: float = 0.0
    axes: np.ndarray | None = None
    shader: str = ""  # "" | "head" | "chest"


@dataclass
class Body:
    """A posed figure: the 17 COCO keypoints, the solids to draw and per-keypoint radii."""

    keypoints: np.ndarray  # (17, 3)
    # (17,) how far in front of each keypoint the surface of its own parts may lie
    # (a limb's radius; the heel behind the ankle, the hand beyond the wrist)
    radii: np.ndarray
    prims: list[Primitive]
    appearance: Appearance


def build_body(pose: Pose, app: Appearance) -> Body:
    """Forward kinematics: joint angles -> keypoints and solids in the body frame."""
    w = app.build
    R_pel = rot("x", pose.pelvis_tilt)
    R_mid = R_pel @ rot("y", pose.trunk_twist / 2) @ rot("z", pose.trunk_side / 2) \
        @ rot("x", pose.trunk_flex / 2)
    R_tor = R_mid @ rot("y", pose.trunk_twist / 2) @ rot("z", pose.trunk_side / 2) \
        @ rot("x", pose.trunk_flex / 2)
    pelvis = np.zeros(3)
    waist_pt = pelvis + R_mid @ np.array([0, LENGTH["spine_low"], 0])
    neck_base = waist_pt + R_tor @ np.array([0, LENGTH["spine_high"], 0])

    R_head = R_tor @ rot("y", pose.head_yaw) @ rot("x", pose.head_pitch) @ rot("z", pose.head_roll)
    R_neck = R_tor @ rot("y", pose.head_yaw / 2) @ rot("x", pose.head_pitch / 2)
    neck_top = neck_base + R_neck @ np.array([0, LENGTH["neck"], 0.005])
    hs = app.head_scale
    head_axes = R_head @ np.diag(HEAD_AXES * hs)
    head_c = neck_top + R_head @ np.array([0, 0.050 * hs, 0.008])

    def on_head(d: np.ndarray) -> np.ndarray:
        return head_c + head_axes @ _unit(d)

    nose = head_c + head_axes @ NOSE_OFFSET
    eyes = [on_head(_EYE_DIR * [1, 1, 1]), on_head(_EYE_DIR * [-1, 1, 1])]
    ears = [on_head(_EAR_DIR * [1, 1, 1]), on_head(_EAR_DIR * [-1, 1, 1])]

    sho = [neck_base + R_tor @ np.array([s * SHOULDER_HALF_WIDTH * w, -0.015, 0]) for s in (1, -1)]
    hip = [pelvis + R_pel @ np.array([s * HIP_HALF_WIDTH * w, -0.03, 0]) for s in (1, -1)]

    kp = np.zeros((17, 3))
    radii = np.zeros(17)
    kp[0], kp[1], kp[2], kp[3], kp[4] = nose, eyes[0], eyes[1], ears[0], ears[1]
    radii[0] = 0.02 * hs
    radii[1:3] = 0.006 * hs
    radii[3:5] = 0.03 * hs  # an ear stays in view until the head turns ~25 degrees away
    shirt, pants, skin = app.shirt, app.pants, app.skin
    prims: list[Primitive] = []
    P = Primitive
    # head, nose, ears, neck
    prims.append(P("ellipsoid", PART_ID["head"], skin, head_c, axes=head_axes, shader="head"))
    prims.append(P("ellipsoid", PART_ID["nose"], skin * 0.92, nose,
                   axes=R_head @ np.diag(np.array([0.011, 0.016, 0.014]) * hs)))
    for i, s in enumerate((1, -1)):
        prims.append(P("ellipsoid", PART_ID["left_ear" if i == 0 else "right_ear"], skin * 0.9,
                       ears[i] + R_head @ np.array([s * 0.002, 0, 0]),
                       axes=R_head @ np.diag(np.array([0.008, 0.019, 0.013]) * hs)))
    prims.append(P("capsule", PART_ID["neck"], skin * 0.95, neck_base, neck_top,
                   ra=RADIUS["neck"][0] * w, rb=RADIUS["neck"][1] * w))
    # trunk: chest, waist, pelvis ellipsoids
    chest_c = neck_base + R_tor @ np.array([0, -0.1, 0.008])
    prims.append(P("ellipsoid", PART_ID["chest"], shirt, chest_c,
                   axes=R_tor @ np.diag([0.095 * w, 0.125, 0.066 * w]), shader="chest"))
    # the shoulder girdle squares the top of the trunk
    girdle_l = sho[0] + R_tor @ np.array([-0.025 * w, -0.005, 0])
    girdle_r = sho[1] + R_tor @ np.array([0.025 * w, -0.005, 0])
    prims.append(P("capsule", PART_ID["chest"], shirt, girdle_l, girdle_r,
                   ra=0.04 * w, rb=0.04 * w))
    waist_c = waist_pt + R_mid @ np.array([0, 0.01, 0])
    prims.append(P("ellipsoid", PART_ID["waist"], shirt * 0.97, waist_c,
                   axes=R_mid @ np.diag([0.082 * w, 0.085, 0.058 * w])))
    pelvis_c = pelvis + R_pel @ np.array([0, 0.0, -0.004])
    prims.append(P("ellipsoid", PART_ID["pelvis"], pants, pelvis_c,
                   axes=R_pel @ np.diag([0.096 * w, 0.088, 0.064 * w])))

    sides = ("left", "right")
    for i, s in enumerate((1.0, -1.0)):
        side = sides[i]
        # arm: flexion swings forward (about x), abduction outward (about z)
        R_arm = R_tor @ rot("z", s * pose.shoulder_abd[i]) @ rot("x", -pose.shoulder_flex[i])
        d_up = R_arm @ np.array([0.0, -1.0, 0.0])
        fwd = rot_about(R_arm @ np.array([0.0, 0.0, 1.0]), d_up, s * pose.shoulder_rot[i])
        e = np.deg2rad(pose.elbow[i])
        d_fo = np.cos(e) * d_up + np.sin(e) * fwd
        elbow = sho[i] + d_up * LENGTH["upper_arm"]
        wrist = elbow + d_fo * LENGTH["forearm"]
        hand_end = wrist + d_fo * LENGTH["hand"]
        kp[5 + i], kp[7 + i], kp[9 + i] = sho[i], elbow, wrist
        ra_u, rb_u = (r * w for r in RADIUS["upper_arm"])
        ra_f, rb_f = (r * w for r in RADIUS["forearm"])
        # a shoulder seen through its own side of the chest, a hip through its side of the
        # pelvis, is still visible (as annotators mark them); the far side is not
        radii[5 + i], radii[7 + i], radii[9 + i] = (TRUNK_SEE_THROUGH[0] * w, max(rb_u, ra_f),
                                                   RADIUS["hand"][0] + 0.01)
        prims.append(P("capsule", PART_ID[f"{side}_upper_arm"], shirt, sho[i], elbow,
                       ra=ra_u, rb=rb_u))
        prims.append(P("capsule", PART_ID[f"{side}_forearm"], shirt if app.long_sleeves else skin,
                       elbow, wrist, ra=ra_f, rb=rb_f))
        prims.append(P("capsule", PART_ID[f"{side}_hand"], skin * 0.97, wrist + d_fo * 0.01,
                       hand_end, ra=RADIUS["hand"][0], rb=RADIUS["hand"][1]))
        # leg: flexion forward, abduction outward, rotation sets the knee's plane
        R_leg = R_pel @ rot("z", s * pose.hip_abd[i]) @ rot("x", -pose.hip_flex[i])
        d_th = R_leg @ np.array([0.0, -1.0, 0.0])
        fwd_l = rot_about(R_leg @ np.array([0.0, 0.0, 1.0]), d_th, s * pose.hip_rot[i])
        k = np.deg2rad(pose.knee[i])
        d_sh = np.cos(k) * d_th - np.sin(k) * fwd_l
        foot_fwd = np.cos(k) * fwd_l + np.sin(k) * d_th
        a = np.deg2rad(pose.ankle[i])
        d_ft = np.cos(a) * foot_fwd + np.sin(a) * d_sh
        knee = hip[i] + d_th * LENGTH["thigh"]
        ankle = knee + d_sh * LENGTH["shank"]
        kp[11 + i], kp[13 + i], kp[15 + i] = hip[i], knee, ankle
        ra_t, rb_t = (r * w for r in RADIUS["thigh"])
        ra_s, rb_s = (r * w for r in RADIUS["shank"])
        radii[11 + i], radii[13 + i], radii[15 + i] = (TRUNK_SEE_THROUGH[1] * w, max(rb_t, ra_s),
                                                     RADIUS["foot"][0] + LENGTH["heel"])
        prims.append(P("capsule", PART_ID[f"{side}_thigh"], pants, hip[i], knee, ra=ra_t, rb=rb_t))
        prims.append(P("capsule", PART_ID[f"{side}_shank"], pants if app.long_pants else skin,
                       knee, ankle, ra=ra_s, rb=rb_s))
        heel = ankle + d_sh * 0.02 - d_ft * LENGTH["heel"]
        toe = ankle + d_sh * 0.025 + d_ft * LENGTH["foot"]
        prims.append(P("capsule", PART_ID[f"{side}_foot"], app.shoes, heel, toe,
                       ra=RADIUS["foot"][0], rb=RADIUS["foot"][1]))
    return Body(kp, radii, prims, app)


# --------------------------------------------------------------------------- viewing


@dataclass
class View:
    """How a figure appears: yaw 0 faces the camera, 180 shows the back."""

    yaw: float
    pitch: float
    roll: float  # in-plane rotation, degrees (positive turns the figure clockwise on screen)
    height_px: float
    center: tuple[float, float]  # where the figure's box centre lands (u, v)
    depth: float  # offset added to every depth (people further back get lower values)


def sample_view(rng: np.random.Generator, facing_camera: bool = False
                ) -> tuple[float, float, float]:
    """(yaw, pitch, roll): every facing direction, a mild camera pitch, in-plane rotation.

    Yaw is uniform over the circle for 60 % of people; the rest face the camera roughly
    (people in photos often do). ``facing_camera``: yaw within 40 deg and roll within 15 deg
    (the easy scene level), the same pitch.
    """
    if facing_camera:
        yaw = float(np.clip(rng.normal(0.0, 20.0), -40.0, 40.0))
        pitch = rng.uniform(-12.0, 22.0)
        return yaw, pitch, float(np.clip(rng.normal(0.0, 6.0), -15.0, 15.0))
    if rng.random() < 0.6:
        yaw = rng.uniform(-180.0, 180.0)
    else:
        yaw = float(np.clip(rng.normal(0.0, 35.0), -180.0, 180.0))
    pitch = rng.uniform(-12.0, 22.0)
    roll = rng.normal(0.0, 10.0) if rng.random() < 0.8 else rng.uniform(-75.0, 75.0)
    return yaw, pitch, roll


def view_matrix(yaw: float, pitch: float, roll: float, scale: float) -> np.ndarray:
    """Body frame -> image-space 3D (u right, v down, depth toward the camera), linear part."""
    R = rot("x", pitch) @ rot("y", yaw)
    c, s = np.cos(np.deg2rad(roll)), np.sin(np.deg2rad(roll))
    screen = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([1.0, -1.0, 1.0])
    return scale * screen @ R


@dataclass
class PlacedBody:
    """A body in image space, ready to draw."""

    keypoints: np.ndarray  # (17, 3): u, v, depth
    radii: np.ndarray  # (17,) in pixels
    prims: list[Primitive]
    view: View
    appearance: Appearance


def place_body(body: Body, view: View) -> PlacedBody:
    """Apply ``view``: rotate, project (orthographically), scale and translate."""
    M = view_matrix(view.yaw, view.pitch, view.roll, view.height_px)
    kp = body.keypoints @ M.T
    pts = [kp]
    for p in body.prims:
        pts.append((p.a @ M.T)[None])
        if p.b is not None:
            pts.append((p.b @ M.T)[None])
    allp = np.concatenate(pts)
    lo, hi = allp[:, :2].min(0), allp[:, :2].max(0)
    shift = np.array([view.center[0] - (lo[0] + hi[0]) / 2, view.center[1] - (lo[1] + hi[1]) / 2,
                      view.depth])
    s = view.height_px
    prims = []
    for p in body.prims:
        prims.append(Primitive(
            kind=p.kind, part=p.part, colour=p.colour, a=p.a @ M.T + shift,
            b=None if p.b is None else p.b @ M.T + shift, ra=p.ra * s, rb=p.rb * s,
            axes=None if p.axes is None else M @ p.axes, shader=p.shader))
    return PlacedBody(kp + shift, body.radii * s, prims, view, body.appearance)
