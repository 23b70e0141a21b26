"""Deterministic synthetic aerial scenes with ISPRS-Potsdam-like labels (the embedded demo dataset).

A scene is laid out in metres on a (possibly rotated) city grid: straight roads with sidewalks
split the ground into blocks; each block is residential, dense (closed perimeter), industrial, a
park or a field. Buildings (rectangles, L-shapes, some rotated), parked cars, clutter patches and
clustered tree crowns are then drawn into a label map and a per-pixel base colour; finally shadows
(from a height map), texture, illumination, sensor blur and noise turn the base colour into an RGB
image. Confusions are intended: dark-grey roofs look like asphalt, dark lawns like light trees, and
tree crowns occlude roads, cars and building edges.

All randomness comes from the ``numpy.random.Generator`` passed in, so a seed reproduces a scene.
Class ids follow ``POTSDAM_CLASSES``; the generator never emits the ignore value 255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dial_core.errors import ConfigError

POTSDAM_CLASSES: list[dict] = [
    {"name": "impervious_surfaces", "color": [255, 255, 255]},
    {"name": "building", "color": [0, 0, 255]},
    {"name": "low_vegetation", "color": [0, 255, 255]},
    {"name": "tree", "color": [0, 255, 0]},
    {"name": "car", "color": [255, 255, 0]},
    {"name": "clutter", "color": [255, 0, 0]},
]
BUILDINGS_CLASSES: list[dict] = [
    {"name": "background", "color": [0, 0, 0]},
    {"name": "building", "color": [255, 255, 255]},
]
IMPERVIOUS, BUILDING, LOW_VEG, TREE, CAR, CLUTTER = range(6)
IGNORE = 255
MIN_SIZE = 64

RGB = tuple[float, float, float]
BLOCK_KINDS = ("residential", "dense", "industrial", "park", "field")


@dataclass(frozen=True)
class Domain:
    """Look and scale of one 'city'. Colours are linear RGB in 0..1 before the sensor model."""

    name: str
    ground_sampling_distance_m: float  # metres per pixel: sets the pixel size of every object
    asphalt: RGB
    pavement: RGB
    roofs: tuple[RGB, ...]  # the first two are pitched tiles, 'grey' roofs are flat
    roof_weights: tuple[float, ...]
    roof_pitched: tuple[bool, ...]
    grass: RGB
    dry_grass: RGB
    fields: tuple[RGB, ...]
    tree: RGB
    tree_light: RGB
    block_weights: tuple[float, ...]  # probabilities of BLOCK_KINDS
    shadow_direction_deg: float  # image direction shadows fall in (0 = right, 90 = down)
    shadow_rgb: RGB  # multiplier in shadow (bluish: lit by sky only)
    color_cast: RGB
    brightness: float
    contrast: float
    gamma: float
    noise_sigma: float  # per-pixel sensor noise, 0..1 units
    blur_sigma_px: float  # sensor point spread function


_SOIL: RGB = (0.50, 0.40, 0.30)
_WATER: RGB = (0.14, 0.20, 0.22)
_CONTAINERS: tuple[RGB, ...] = ((0.20, 0.33, 0.60), (0.70, 0.25, 0.20), (0.85, 0.85, 0.80), (0.55, 0.50, 0.30))
_CAR_COLORS: tuple[RGB, ...] = ((0.90, 0.90, 0.90), (0.10, 0.10, 0.11), (0.60, 0.61, 0.63),
                                (0.62, 0.10, 0.10), (0.15, 0.22, 0.48), (0.35, 0.35, 0.36))

DOMAINS: dict[str, Domain] = {
    # Potsdam-like: bright, warm, red/orange tiles, green lawns, 0.5 m pixels (cars ~9x4 px).
    "A": Domain(
        name="A", ground_sampling_distance_m=0.5,
        asphalt=(0.42, 0.42, 0.43), pavement=(0.62, 0.60, 0.56),
        roofs=((0.62, 0.30, 0.22), (0.76, 0.46, 0.28), (0.41, 0.41, 0.43), (0.66, 0.66, 0.65), (0.48, 0.36, 0.28)),
        roof_weights=(0.30, 0.15, 0.20, 0.20, 0.15), roof_pitched=(True, True, False, False, True),
        grass=(0.40, 0.54, 0.26), dry_grass=(0.56, 0.57, 0.36),
        fields=((0.48, 0.57, 0.29), (0.62, 0.60, 0.38), (0.38, 0.50, 0.24)),
        tree=(0.22, 0.36, 0.16), tree_light=(0.34, 0.48, 0.23),
        block_weights=(0.46, 0.34, 0.10, 0.07, 0.03),
        shadow_direction_deg=-120.0, shadow_rgb=(0.42, 0.46, 0.56),
        color_cast=(1.04, 1.00, 0.93), brightness=1.05, contrast=1.0, gamma=1.0,
        noise_sigma=0.012, blur_sigma_px=0.6,
    ),
    # AIRS-like other city: grey/blue roofs, yellower grass, cool cast, darker and more contrast,
    # coarser 0.75 m pixels so every object is 1.5x smaller in pixels.
    "B": Domain(
        name="B", ground_sampling_distance_m=0.75,
        asphalt=(0.36, 0.37, 0.39), pavement=(0.58, 0.58, 0.57),
        roofs=((0.55, 0.30, 0.25), (0.72, 0.66, 0.55), (0.34, 0.35, 0.37), (0.70, 0.71, 0.72), (0.42, 0.46, 0.53)),
        roof_weights=(0.12, 0.13, 0.25, 0.25, 0.25), roof_pitched=(True, True, False, False, True),
        grass=(0.52, 0.57, 0.30), dry_grass=(0.68, 0.64, 0.40),
        fields=((0.62, 0.60, 0.36), (0.70, 0.64, 0.42), (0.50, 0.55, 0.30)),
        tree=(0.20, 0.30, 0.17), tree_light=(0.32, 0.42, 0.24),
        block_weights=(0.50, 0.28, 0.13, 0.06, 0.03),
        shadow_direction_deg=45.0, shadow_rgb=(0.45, 0.48, 0.55),
        color_cast=(0.93, 0.99, 1.07), brightness=0.92, contrast=1.18, gamma=1.12,
        noise_sigma=0.018, blur_sigma_px=0.7,
    ),
}


def buildings_only(label: np.ndarray) -> np.ndarray:
    """Map a Potsdam label to BUILDINGS_CLASSES: 1 = building, 0 = other, 255 (ignore) kept."""
    label = np.asarray(label)
    out = (label == BUILDING).astype(np.uint8)
    out[label == IGNORE] = IGNORE
    return out


# --------------------------------------------------------------------------- drawing canvas


class _Canvas:
    """Label, base colour and height maps plus the metre grid frame ('u, v') they are drawn in."""

    def __init__(self, size: int, dom: Domain, rng: np.random.Generator):
        self.size, self.dom, self.g = size, dom, dom.ground_sampling_distance_m
        # City grids are often axis-aligned, sometimes rotated.
        self.theta = 0.0 if rng.random() < 0.4 else float(rng.uniform(-0.6, 0.6))
        self.c = (size - 1) / 2.0
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        ct, st = math.cos(self.theta), math.sin(self.theta)
        self.U = ((x - self.c) * ct + (y - self.c) * st) * self.g
        self.V = (-(x - self.c) * st + (y - self.c) * ct) * self.g
        self.label = np.full((size, size), LOW_VEG, np.uint8)
        self.base = np.empty((size, size, 3), np.float32)
        self.height = np.zeros((size, size), np.float32)
        self.road = np.zeros((size, size), bool)
        self.n_med = _smooth_noise(rng, size, 6.0 / self.g)  # lawn patchiness, stains
        self.n_clump = _smooth_noise(rng, size, max(1.2 / self.g, 1.0))  # leaf clumps
        self.n_coarse = _smooth_noise(rng, size, 60.0 / self.g)  # illumination
        self.reach = size / 2 * self.g * math.sqrt(2) + 5.0  # grid half-extent covering the image
        d = math.radians(dom.shadow_direction_deg)
        self.shadow_dir = (math.cos(d), math.sin(d))  # image (x, y)
        # Direction towards the sun in grid coordinates, for roof and crown shading.
        self.sun_uv = (-(self.shadow_dir[0] * ct + self.shadow_dir[1] * st),
                       -(-self.shadow_dir[0] * st + self.shadow_dir[1] * ct))

    def to_px(self, u: float, v: float) -> tuple[int, int]:
        ct, st = math.cos(self.theta), math.sin(self.theta)
        return (int(round(self.c + (u * ct - v * st) / self.g)), int(round(self.c + (u * st + v * ct) / self.g)))

    def rect(self, cu, cv, hu, hv, phi=0.0):
        """Pixels of a rectangle (centre, half sizes in metres, extra rotation phi) as
        (slices, mask, a, b) with a, b the rectangle-local coordinates, or None if off-image."""
        ca, sa = math.cos(phi), math.sin(phi)
        ka, kb = np.array([-hu, hu, hu, -hu]), np.array([-hv, -hv, hv, hv])
        return self._window(cu + ka * ca - kb * sa, cv + ka * sa + kb * ca, cu, cv, ca, sa,
                            lambda a, b: (np.abs(a) < hu) & (np.abs(b) < hv))

    def blob(self, cu, cv, r, rng, wobble=0.25):
        """Irregular round patch: radius modulated by two random angular harmonics."""
        k1, k2 = rng.integers(2, 5, 2)
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        w1, w2 = rng.uniform(0, wobble, 2)

        def inside(a, b):
            ang = np.arctan2(b, a)
            rr = r * (1 + w1 * np.sin(k1 * ang + p1) + w2 * np.sin(k2 * ang + p2))
            return a * a + b * b < rr * rr

        R = r * (1 + 2 * wobble)
        return self._window(np.array([cu - R, cu + R, cu + R, cu - R]),
                            np.array([cv - R, cv - R, cv + R, cv + R]), cu, cv, 1.0, 0.0, inside)

    def _window(self, us, vs, cu, cv, ca, sa, inside):
        ct, st = math.cos(self.theta), math.sin(self.theta)
        xs = self.c + (us * ct - vs * st) / self.g
        ys = self.c + (us * st + vs * ct) / self.g
        x0, x1 = max(int(math.floor(xs.min())), 0), min(int(math.ceil(xs.max())) + 1, self.size)
        y0, y1 = max(int(math.floor(ys.min())), 0), min(int(math.ceil(ys.max())) + 1, self.size)
        if x0 >= x1 or y0 >= y1:
            return None
        sl = (slice(y0, y1), slice(x0, x1))
        du, dv = self.U[sl] - cu, self.V[sl] - cv
        a, b = du * ca + dv * sa, -du * sa + dv * ca
        m = inside(a, b)
        return (sl, m, a, b) if m.any() else None

    def paint(self, sl, m, cls, color, height=None):
        self.label[sl][m] = cls
        self.base[sl][m] = color if np.ndim(color) == 1 else color[m]
        if height is not None:
            h = self.height[sl]
            h[m] = height if np.ndim(height) == 0 else height[m]

    def lawn(self, sl, m, rng, dry=0.35):
        t = np.clip(dry + 0.3 * self.n_med[sl] + rng.normal(0, 0.1), 0, 1)[..., None]
        col = _jitter(rng, self.dom.grass, 0.05) * (1 - t) + _jitter(rng, self.dom.dry_grass, 0.05) * t
        self.paint(sl, m, LOW_VEG, col)


def _jitter(rng: np.random.Generator, color: RGB, amount: float) -> np.ndarray:
    """Per-object colour variation: overall brightness plus a smaller per-channel tint."""
    return np.asarray(color, np.float32) * np.float32(rng.normal(1, amount)) * rng.normal(1, amount / 2, 3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, scale_px: float) -> np.ndarray:
    """Zero-mean, unit-std noise with features about scale_px wide (upsampled coarse noise)."""
    if scale_px <= 4:
        n = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), scale_px / 2)
    else:
        k = int(math.ceil(size / scale_px)) + 4
        n = ndimage.zoom(rng.standard_normal((k, k)).astype(np.float32), scale_px, order=3)[:size, :size]
    return ((n - n.mean()) / (n.std() + 1e-6)).astype(np.float32)


# --------------------------------------------------------------------------- layout


def _road_network(cv: _Canvas, rng: np.random.Generator):
    """Straight roads with sidewalks along both grid axes; returns roads and the blocks between.

    A road is (axis, centre, width, sidewalk): axis 0 means constant u (it runs along v).
    Blocks are (u0, u1, v0, v1) interiors in grid metres."""
    roads, edges = [], ([], [])
    for axis in (0, 1):
        pos = -cv.reach - rng.uniform(0, 60)
        while pos < cv.reach + 80:
            w, sw = float(rng.choice([6.0, 7.0, 8.0, 10.0, 13.0])), float(rng.uniform(1.5, 3.0))
            roads.append((axis, pos, w, sw))
            edges[axis].append((pos - w / 2 - sw, pos + w / 2 + sw))
            pos += rng.uniform(75, 140)
    for axis, pos, w, sw in roads:
        for half, color in ((w / 2 + sw, cv.dom.pavement), (w / 2, cv.dom.asphalt)):
            hit = cv.rect(pos, 0.0, half, cv.reach) if axis == 0 else cv.rect(0.0, pos, cv.reach, half)
            if hit is not None:
                cv.paint(hit[0], hit[1], IMPERVIOUS, _jitter(rng, color, 0.06))
                cv.road[hit[0]] |= hit[1]
    eu, ev = edges
    blocks = [(eu[i][1], eu[i + 1][0], ev[j][1], ev[j + 1][0])
              for i in range(len(eu) - 1) for j in range(len(ev) - 1)]
    return roads, [b for b in blocks if cv.rect((b[0] + b[1]) / 2, (b[2] + b[3]) / 2,
                                                (b[1] - b[0]) / 2, (b[3] - b[2]) / 2) is not None]


def _place_buildings(cv: _Canvas, rng, block, dense: bool, boxes: list) -> None:
    """Buildings along the block perimeter (row houses, L-shaped corners), facing the streets;
    residential blocks often get a second, inner ring of rear buildings."""
    setback = 0.0 if dense else rng.uniform(1.0, 5.0)
    depth = rng.uniform(13, 20) if dense else rng.uniform(11, 17)
    _ring(cv, rng, block, dense, boxes, setback, depth)
    if not dense and rng.random() < 0.6:
        _ring(cv, rng, block, dense, boxes, setback + depth + rng.uniform(3, 8), rng.uniform(8, 12))


def _ring(cv: _Canvas, rng, block, dense: bool, boxes: list, setback: float, depth: float) -> None:
    """One ring of buildings at a given setback from the block edges (overlaps are skipped)."""
    u0, u1, v0, v1 = block
    for cu, cv_, su, sv in ((u0, v0, 1, 1), (u1, v0, -1, 1), (u0, v1, 1, -1), (u1, v1, -1, -1)):
        if rng.random() < (0.8 if dense else 0.4):  # L-shaped corner building
            la, lb = rng.uniform(depth + 6, depth + 25, 2)
            eu, ev = cu + su * setback, cv_ + sv * setback
            parts = [(eu + su * la / 2, ev + sv * depth / 2, la / 2, depth / 2),
                     (eu + su * depth / 2, ev + sv * lb / 2, depth / 2, lb / 2)]
            _building(cv, rng, parts, boxes)
    for axis, edge, inward in ((0, u0, 1), (0, u1, -1), (1, v0, 1), (1, v1, -1)):
        lo, hi = (v0, v1) if axis == 0 else (u0, u1)
        t = lo + setback + rng.uniform(0, 6)
        while t < hi - setback:
            length = rng.uniform(15, 40) if dense else rng.uniform(10, 24)
            off = edge + inward * (setback + depth / 2)
            c_along = t + length / 2
            part = (off, c_along, depth / 2, length / 2) if axis == 0 else (c_along, off, length / 2, depth / 2)
            if c_along + length / 2 < hi - setback:
                _building(cv, rng, [part], boxes)
            t += length + (rng.uniform(0, 3) if dense else rng.uniform(1.5, 7))


def _building(cv: _Canvas, rng, parts, boxes: list, phi: float = 0.0, kind: int | None = None,
              margin: float = 1.5) -> bool:
    """Draw one building (one or two rectangles sharing a roof) unless it overlaps another."""
    ext = [(cu, cv_, abs(hu * math.cos(phi)) + abs(hv * math.sin(phi)),
            abs(hu * math.sin(phi)) + abs(hv * math.cos(phi))) for cu, cv_, hu, hv in parts]
    for cu, cv_, eu, ev in ext:
        for bu, bv, fu, fv in boxes:
            if abs(cu - bu) < eu + fu + margin and abs(cv_ - bv) < ev + fv + margin:
                return False
    boxes.extend(ext)
    dom = cv.dom
    w = np.asarray(dom.roof_weights) / sum(dom.roof_weights)
    kind = int(rng.choice(len(dom.roofs), p=w)) if kind is None else kind
    roof, pitched, height = _jitter(rng, dom.roofs[kind], 0.07), dom.roof_pitched[kind], rng.uniform(6, 20)
    for cu, cv_, hu, hv in parts:
        hit = cv.rect(cu, cv_, hu, hv, phi)
        if hit is None:
            continue
        sl, m, a, b = hit
        if pitched:  # ridge along the long side; the half facing the sun is brighter
            across, normal = (b, (-math.sin(phi), math.cos(phi))) if hu >= hv else (a, (math.cos(phi), math.sin(phi)))
            lit = 1.0 if normal[0] * cv.sun_uv[0] + normal[1] * cv.sun_uv[1] >= 0 else -1.0
            shade = 1 + 0.16 * lit * np.sign(across)
        else:  # flat roof: lighter parapet rim and a few darker patches (vents, gravel)
            rim = (np.abs(a) > hu - 0.7) | (np.abs(b) > hv - 0.7)
            shade = np.where(rim, 1.12, 1 + 0.06 * cv.n_med[sl])
        cv.paint(sl, m, BUILDING, roof * shade[..., None].astype(np.float32), height)
    return True


def _fill_block(cv: _Canvas, rng, block, kind: str, boxes: list, crowns: list) -> None:
    """Ground cover, buildings, lot cars, clutter and tree-cluster seeds of one block."""
    u0, u1, v0, v1 = block
    cu, cv_, hu, hv = (u0 + u1) / 2, (v0 + v1) / 2, (u1 - u0) / 2, (v1 - v0) / 2
    ground = cv.rect(cu, cv_, hu, hv)
    if ground is None:
        return
    sl, m, a, b = ground
    area = 4 * hu * hv
    dom = cv.dom
    if kind == "field":
        phi = rng.uniform(0, np.pi)
        stripes = np.sin(2 * np.pi * (a * math.cos(phi) + b * math.sin(phi)) / rng.uniform(2.0, 4.0))
        col = _jitter(rng, dom.fields[rng.integers(len(dom.fields))], 0.05)
        cv.paint(sl, m, LOW_VEG, col * (1 + 0.09 * stripes[..., None]).astype(np.float32))
    elif kind == "industrial" or (kind == "dense" and rng.random() < 0.3):
        cv.paint(sl, m, IMPERVIOUS, _jitter(rng, dom.pavement, 0.08) * 0.92)
    else:
        cv.lawn(sl, m, rng, dry=0.2 if kind == "park" else 0.4)
    n_trees, n_clutter = area / 380, area / 500
    if kind in ("residential", "dense"):
        _place_buildings(cv, rng, block, kind == "dense", boxes)
        for _ in range(int(rng.poisson(area / 650))):  # patios, driveways, garages, villas
            pu, pv = rng.uniform(u0, u1), rng.uniform(v0, v1)
            if rng.random() < 0.25:
                hit = cv.rect(pu, pv, rng.uniform(2, 6), rng.uniform(2, 6))
                if hit is not None:
                    s2, m2 = hit[0], hit[1] & (cv.label[hit[0]] == LOW_VEG)
                    cv.paint(s2, m2, IMPERVIOUS, _jitter(rng, dom.pavement, 0.08))
            else:
                _building(cv, rng, [(pu, pv, rng.uniform(5, 10), rng.uniform(4, 8))], boxes,
                          phi=rng.uniform(-0.8, 0.8) if rng.random() < 0.5 else 0.0, margin=3.0)
        n_trees *= 1.0 if kind == "residential" else 0.4
    elif kind == "industrial":
        for _ in range(int(rng.integers(1, 4))):
            lu, lv = min(rng.uniform(12, 30), hu - 3), min(rng.uniform(8, 18), hv - 3)
            _building(cv, rng, [(rng.uniform(u0 + lu, u1 - lu), rng.uniform(v0 + lv, v1 - lv), lu, lv)],
                      boxes, kind=int(rng.choice([2, 3])), margin=6.0)
        _parking_lot(cv, rng, block)
        n_trees, n_clutter = n_trees * 0.3, n_clutter * 2.0
    elif kind == "park":
        for _ in range(int(rng.integers(1, 3))):  # footpaths
            hit = cv.rect(cu, cv_ + rng.uniform(-hv, hv), hu, rng.uniform(0.8, 1.5), rng.uniform(-0.6, 0.6))
            if hit is not None:
                cv.paint(hit[0], hit[1], IMPERVIOUS, _jitter(rng, dom.pavement, 0.06))
        n_trees *= 3.0
    else:
        n_trees *= 0.3
    for _ in range(int(rng.poisson(n_clutter))):
        _clutter(cv, rng, rng.uniform(u0, u1), rng.uniform(v0, v1), kind)
    for _ in range(int(rng.poisson(n_trees))):
        crowns.append((rng.uniform(u0, u1), rng.uniform(v0, v1), int(rng.integers(1, 7))))


def _parking_lot(cv: _Canvas, rng, block) -> None:
    """Rows of cars parked perpendicular to a lot aisle (never overlapping a building)."""
    u0, u1, v0, v1 = block
    for _ in range(int(rng.integers(1, 4))):
        rv = rng.uniform(v0 + 4, v1 - 4)
        for pu in np.arange(u0 + 2, u1 - 2, rng.uniform(2.5, 3.0)):
            if rng.random() < 0.6:
                _car(cv, rng, pu, rv, 1)


def _clutter(cv: _Canvas, rng, cu, cv_, kind: str) -> None:
    """Bare soil, water-ish dark blobs or containers; only on ground (never on roads/buildings)."""
    r = rng.uniform(1.5, 5.0) * (1.5 if kind in ("field", "park") else 1.0)
    style = rng.choice(["soil", "water", "container"], p=[0.5, 0.15, 0.35] if kind != "industrial" else [0.3, 0.0, 0.7])
    if style == "container":
        hit = cv.rect(cu, cv_, rng.uniform(1.2, 6.0), rng.uniform(1.0, 2.5), rng.uniform(0, np.pi))
        color = _jitter(rng, _CONTAINERS[rng.integers(len(_CONTAINERS))], 0.08)
    else:
        hit = cv.blob(cu, cv_, r, rng, wobble=0.22)
        color = _jitter(rng, _SOIL if style == "soil" else _WATER, 0.1)
    if hit is not None:
        sl, m = hit[0], hit[1] & ~cv.road[hit[0]] & (cv.label[hit[0]] != BUILDING)
        cv.paint(sl, m, CLUTTER, color * (1 + 0.15 * cv.n_med[sl][..., None]).astype(np.float32),
                 2.0 if style == "container" else None)


def _car(cv: _Canvas, rng, cu, cv_, along_axis: int) -> None:
    """A car aligned with grid axis along_axis: body colour, dark windscreen and rear window."""
    length, width = rng.uniform(4.2, 4.9), rng.uniform(1.75, 2.0)
    hu, hv = (length / 2, width / 2) if along_axis == 0 else (width / 2, length / 2)
    hit = cv.rect(cu, cv_, hu, hv, rng.normal(0, 0.03))
    if hit is None:
        return
    sl, m, a, b = hit
    if (cv.label[sl][m] == BUILDING).any() or (cv.label[sl][m] == CAR).any():
        return
    t = (a if along_axis == 0 else b) / (length / 2) * rng.choice([-1, 1])  # -1 rear .. 1 front
    glass = ((t > 0.25) & (t < 0.55)) | ((t < -0.55) & (t > -0.8))
    body = _jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.05)
    col = np.where(glass[..., None], body * 0.25 + 0.05, body).astype(np.float32)
    cv.paint(sl, m, CAR, col, 1.5)


def _cars(cv: _Canvas, rng, roads) -> None:
    """Cars parked along road edges (and a few driving), aligned with the road direction."""
    for axis, pos, w, sw in roads:
        p_park = rng.uniform(0.15, 0.8) if w >= 8 else rng.uniform(0.0, 0.35)
        lanes = [(pos - w / 2 + 1.2, p_park), (pos + w / 2 - 1.2, p_park),
                 (pos - w / 4, 0.04), (pos + w / 4, 0.04)]
        crossing = [(p, cw / 2 + csw + 3) for ax, p, cw, csw in roads if ax != axis]
        for off, p in lanes:
            slots = np.arange(-cv.reach, cv.reach, rng.uniform(5.6, 6.6))
            slots = slots[rng.random(slots.size) < p]
            for q, half in crossing:
                slots = slots[np.abs(slots - q) > half]
            for s in slots:
                cu, cv_ = (off, s) if axis == 0 else (s, off)
                _car(cv, rng, cu + rng.normal(0, 0.15), cv_ + rng.normal(0, 0.15), 1 - axis)


def _trees(cv: _Canvas, rng, crowns: list, roads) -> None:
    """Clustered round crowns; they overwrite any label below (occluding roads, cars, roofs)."""
    for axis, pos, w, sw in roads:  # street trees on some sidewalks
        if rng.random() < 0.6:
            side = rng.choice([-1, 1])
            for s in np.arange(-cv.reach, cv.reach, rng.uniform(8, 14)):
                off = pos + side * (w / 2 + sw * 0.6)
                crowns.append(((off, s) if axis == 0 else (s, off)) + (1,))
    dom = cv.dom
    for tu, tv, n in crowns:
        base_r = rng.uniform(2.0, 5.5)
        for _ in range(n):
            cu, cv_ = tu + rng.normal(0, base_r * 0.9) * (n > 1), tv + rng.normal(0, base_r * 0.9) * (n > 1)
            r = base_r * rng.uniform(0.7, 1.2)
            hit = cv.blob(cu, cv_, r, rng, wobble=0.12)
            if hit is None:
                continue
            sl, m, a, b = hit
            # Trunks stand on the ground, not on roofs; crowns may still overhang a roof edge.
            cx, cy = cv.to_px(cu, cv_)
            if 0 <= cx < cv.size and 0 <= cy < cv.size and (
                    cv.label[cy, cx] == BUILDING or (cv.road[cy, cx] and n > 1)):
                continue
            rho = np.clip(np.sqrt(a * a + b * b) / r, 0, 1)
            facing = (a * cv.sun_uv[0] + b * cv.sun_uv[1]) / r
            shade = (0.8 + 0.2 * np.sqrt(1 - rho * rho) + 0.18 * facing)[..., None]
            t = rng.uniform(0, 1)
            col = (np.asarray(dom.tree) * (1 - t) + np.asarray(dom.tree_light) * t) * rng.normal(1, 0.06)
            h = rng.uniform(6, 16) * (0.7 + 0.3 * np.sqrt(1 - rho * rho))
            keep = m & (h > cv.height[sl])  # a lower crown does not cover a taller neighbour
            cv.paint(sl, keep, TREE, (col * shade).astype(np.float32), h)


# --------------------------------------------------------------------------- rendering


def _shift(a: np.ndarray, ox: int, oy: int) -> np.ndarray:
    """out[y, x] = a[y - oy, x - ox], zero outside (no wrap-around)."""
    s = a.shape[0]
    out = np.zeros_like(a)
    out[max(oy, 0):s + min(oy, 0), max(ox, 0):s + min(ox, 0)] = a[max(-oy, 0):s - max(oy, 0),
                                                                   max(-ox, 0):s - max(ox, 0)]
    return out


def _shadows(cv: _Canvas, rng) -> np.ndarray:
    """Cast shadows from the height map: a pixel is shaded if a taller object towards the sun
    blocks the sun ray (elevation random per scene). Labels are untouched."""
    k = rng.uniform(0.5, 0.9)  # shadow length per metre of height
    dx, dy = cv.shadow_dir
    shadow = np.zeros(cv.height.shape, bool)
    for t in range(1, int(math.ceil(float(cv.height.max()) * k / cv.g)) + 1):
        src = _shift(cv.height, int(round(t * dx)), int(round(t * dy)))
        shadow |= src - t * cv.g / k > cv.height + 0.3
    return shadow


def _render_texture(cv: _Canvas, rng, shadow: np.ndarray) -> np.ndarray:
    """Base colour -> RGB uint8: class texture, illumination, shadow, colour cast, blur, noise."""
    dom = cv.dom
    clump_amp = np.array([0.05, 0.04, 0.07, 0.22, 0.02, 0.08], np.float32)[cv.label]
    med_amp = np.array([0.04, 0.03, 0.05, 0.06, 0.0, 0.06], np.float32)[cv.label]
    img = cv.base * (1 + clump_amp * cv.n_clump + med_amp * cv.n_med)[..., None]
    img *= (1 + 0.07 * cv.n_coarse)[..., None]
    soft = ndimage.gaussian_filter(shadow.astype(np.float32), 0.8)[..., None]
    img *= 1 - soft * (1 - np.asarray(dom.shadow_rgb, np.float32) * rng.uniform(0.9, 1.1))
    img = img * np.asarray(dom.color_cast, np.float32) * dom.brightness
    img = np.clip((img - 0.45) * dom.contrast + 0.45, 0, 1) ** dom.gamma
    img = ndimage.gaussian_filter(img, (dom.blur_sigma_px, dom.blur_sigma_px, 0))
    img += rng.normal(0, dom.noise_sigma, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def generate_scene(size: int, domain: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic aerial scene: (image (size, size, 3) uint8 RGB, label (size, size) uint8 in 0..5)."""
    if domain not in DOMAINS:
        raise ConfigError(f"unknown synthetic domain {domain!r}; allowed: {', '.join(sorted(DOMAINS))}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ConfigError(f"synthetic scene size {size!r} is invalid; it must be an integer >= {MIN_SIZE}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(seed)")
    dom = DOMAINS[domain]
    cv = _Canvas(int(size), dom, rng)
    cv.lawn((slice(None), slice(None)), np.ones((size, size), bool), rng)
    roads, blocks = _road_network(cv, rng)
    boxes: list = []
    crowns: list = []
    weights = np.asarray(dom.block_weights) / sum(dom.block_weights)
    for block in blocks:
        if block[1] - block[0] > 20 and block[3] - block[2] > 20:
            _fill_block(cv, rng, block, BLOCK_KINDS[rng.choice(len(BLOCK_KINDS), p=weights)], boxes, crowns)
    _cars(cv, rng, roads)
    _trees(cv, rng, crowns, roads)
    image = _render_texture(cv, rng, _shadows(cv, rng))
    return image, cv.label.copy()
