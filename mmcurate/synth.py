"""Generated scenes: simple images with captions that describe them, for tests, demos and the
tiny stand-in model.

A scene is one kind of shape (circle, square, triangle, star, diamond, cross), in one of eight
colours, 1–3 copies, small or large, placed left/right/top/bottom/centre on a lightly textured
background. Captions describe every attribute with varied phrasing (templates, synonyms, word
order). Everything is deterministic for a ``random_state``; numpy + PIL only.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from mmcurate._fileio import atomic_write_frame
from mmcurate._util import check_random_state
from mmcurate.noise import inject_noise

__all__ = [
    "COLORS",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "Scene",
    "describe_scene",
    "domain_pair_chunks",
    "generate_scenes",
    "render_scene",
    "write_scene_dataset",
]

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
COLORS = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (40, 70, 220), "yellow": (240, 210, 20),
    "purple": (140, 40, 170), "orange": (250, 140, 20), "black": (20, 20, 20), "white": (250, 250, 250),
}
POSITIONS = ("left", "right", "top", "bottom", "centre")
SIZES = ("small", "large")
_COUNT_WORDS = {1: ("a", "one", "a single"), 2: ("two", "a pair of", "2"), 3: ("three", "3", "three")}
_PLURAL = {"cross": "crosses"}
_POS_PHRASES = {
    "left": ("on the left", "at the left side", "to the left"),
    "right": ("on the right", "at the right side", "to the right"),
    "top": ("at the top", "near the top", "in the upper part"),
    "bottom": ("at the bottom", "near the bottom", "in the lower part"),
    "centre": ("in the centre", "in the middle", "at the center"),
}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
_PREFIXES = ("", "", "a picture of ", "an image of ", "a photo showing ", "there is ")


@dataclass(frozen=True)
class Scene:
    """Attributes of one generated scene."""

    shape: str
    color: str
    count: int
    position: str
    size: str
    seed: int


def generate_scenes(n: int, *, random_state: int | np.random.Generator | None = 0) -> list[Scene]:
    """Draw ``n`` scenes with uniformly random attributes.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        [s.shape for s in generate_scenes(3, random_state=0)]
        # ['star', 'circle', 'diamond']
    """
    rng = check_random_state(random_state)
    colors = list(COLORS)
    return [
        Scene(shape=SHAPES[rng.integers(len(SHAPES))], color=colors[rng.integers(len(colors))],
              count=int(rng.integers(1, 4)), position=POSITIONS[rng.integers(len(POSITIONS))],
              size=SIZES[rng.integers(len(SIZES))], seed=int(rng.integers(2**31)))
        for _ in range(n)
    ]


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        angles = np.deg2rad([-90, 30, 150])
        return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = np.deg2rad(-90 + 36 * k)
            pts.append((cx + rad * np.cos(a), cy + rad * np.sin(a)))
        return pts
    w = 0.33 * r  # cross
    return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
            (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
            (cx - r, cy - w), (cx - w, cy - w)]


def _centres(scene: Scene, size: int, r: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    region = {"left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75),
              "centre": (0.5, 0.5)}[scene.position]
    spread = 1.6 * r
    layouts: dict[int, list[tuple[float, float]]] = {1: [(0, 0)], 2: [(-1, 0), (1, 0)],
                                                     3: [(-1, 0.6), (1, 0.6), (0, -0.9)]}
    offsets = layouts[scene.count]
    if scene.position in ("left", "right"):
        offsets = [(o[1], o[0]) for o in offsets]
    jitter = rng.normal(0, 0.02 * size, 2)
    return [(region[0] * size + dx * spread + jitter[0], region[1] * size + dy * spread + jitter[1])
            for dx, dy in offsets]


def render_scene(scene: Scene, *, size: int = 64) -> Image.Image:
    """Draw a scene as an RGB image of ``size`` × ``size`` pixels (deterministic per scene)."""
    rng = np.random.default_rng(scene.seed)
    base = rng.integers(150, 225)
    noise = rng.normal(0, 6, (size, size, 1)) + rng.normal(0, 3, (size, size, 3))
    bg = np.clip(base + noise + np.array(rng.integers(-20, 20, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    draw = ImageDraw.Draw(img)
    scale = {"small": 0.07, "large": 0.13}[scene.size] * (1.0 if scene.count == 1 else 0.85)
    r = scale * size * rng.uniform(0.9, 1.1)
    rgb = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in COLORS[scene.color])
    outline = (60, 60, 60) if scene.color == "white" else None
    for cx, cy in _centres(scene, size, r, rng):
        if scene.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb, outline=outline)
        elif scene.shape == "square":
            h = 0.85 * r
            draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=rgb, outline=outline)
        else:
            draw.polygon(_polygon(scene.shape, cx, cy, r), fill=rgb, outline=outline)
    return img


def describe_scene(scene: Scene, *, random_state: int | np.random.Generator | None = None) -> str:
    """A caption naming every attribute, with varied phrasing."""
    rng = check_random_state(scene.seed if random_state is None else random_state)
    count = _COUNT_WORDS[scene.count][rng.integers(3)]
    noun = scene.shape if scene.count == 1 else _PLURAL.get(scene.shape, scene.shape + "s")
    size = _SIZE_WORDS[scene.size][rng.integers(3)]
    pos = _POS_PHRASES[scene.position][rng.integers(3)]
    prefix = _PREFIXES[rng.integers(len(_PREFIXES))]
    if rng.random() < 0.5:
        text = f"{count} {size} {scene.color} {noun} {pos}"
    elif rng.random() < 0.5:
        text = f"{pos}, {count} {size} {scene.color} {noun}"
    else:
        verb = "is" if scene.count == 1 else "are"
        text = f"{count} {scene.color} {noun} {pos}; the {noun} {verb} {size}"
    if prefix and text[0].isalpha() and not text.startswith(("on", "at", "in", "to", "near")):
        text = prefix + text
    return text[0].upper() + text[1:] if rng.random() < 0.3 else text


def write_scene_dataset(out_dir: str | os.PathLike, n: int, *, random_state: int = 0,
                        size: int = 96) -> Path:
    """Write ``n`` scenes as PNGs plus ``pairs.csv``; returns the CSV path.

    Columns: ``id, image, caption, category, shape, color, count, position, size`` with ``image``
    relative to ``out_dir`` and ``category`` = the shape (used for same-category caption swaps).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        csv = write_scene_dataset("datasets/generated", 400, random_state=0)
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, scene in enumerate(generate_scenes(n, random_state=random_state)):
        name = f"images/scene_{i:05d}.png"
        # generated, not user data: written plainly (no fsync per image); pairs.csv, written last and
        # atomically, is what marks the set complete, so a crash here leaves no pairs.csv and the
        # set is generated again
        render_scene(scene, size=size).save(out / name)
        rec = asdict(scene)
        rec.pop("seed")
        rows.append({"id": f"s{i:05d}", "image": name, "caption": describe_scene(scene),
                     "category": scene.shape, **rec})
    return atomic_write_frame(pd.DataFrame(rows), out / "pairs.csv", fmt="csv")


def domain_shift_embeddings(n: int = 2000, d: int = 32, *, kind: str = "random", rate: float = 0.2,
                            n_domains: int = 20, random_state: int = 0):
    """Synthetic CLIP-like pairs whose aligned-cosine level differs by domain, with planted swaps.

    Image vectors are clustered by domain; caption vectors are the image plus isotropic noise
    whose level grows across domains (0.5 → 2.5), so a pair's absolute cosine depends on its
    domain, as CLIP scores do. ``rate`` of the captions are swapped (``random`` or within the same
    domain: ``same_category``; a permutation, so no caption is duplicated). Returns
    ``(image (N, d), text (N, d), is_noisy (N,), domain (N,))``, float32 and L2-normalised.
    A stand-in for real embeddings: label figures made with it so.
    """
    rng = check_random_state(random_state)
    domain = rng.integers(0, n_domains, n)
    centres = rng.normal(size=(n_domains, d))
    img = centres[domain] + 0.8 * rng.normal(size=(n, d))
    level = np.linspace(0.5, 2.5, n_domains)[domain]
    txt = img + level[:, None] * rng.normal(size=(n, d))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    src, noisy = inject_noise(n, rate=rate, kind=kind, categories=domain, random_state=random_state)
    return img.astype(np.float32), txt[src].astype(np.float32), noisy, domain


def domain_pair_chunks(n: int, dim: int = 512, *, chunk: int = 100_000, rate: float = 0.2,
                       seed: int = 0):
    """Large synthetic pools in chunks (benchmarks): yields ``(start, image, text, is_noisy)``.

    Image vectors are clustered in 256 domains; a caption is its image plus noise whose level grows
    across domains (1 → 4), so absolute cosines shift by domain; ``rate`` of each chunk's captions
    are rotated among the chunk's pairs of the same domain (hard negatives). float32, normalised.
    A stand-in for real embeddings, generated chunk by chunk so millions of rows fit in memory.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, dim), dtype=np.float32) * 1.5
    level = np.linspace(1.0, 4.0, 256).astype(np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        r = np.random.default_rng(seed + 1 + start)
        dom = r.integers(0, 256, m)
        img = centres[dom] + r.standard_normal((m, dim), dtype=np.float32)
        txt = img + level[dom, None] * r.standard_normal((m, dim), dtype=np.float32)
        img /= np.linalg.norm(img, axis=1, keepdims=True)
        txt /= np.linalg.norm(txt, axis=1, keepdims=True)
        swap = np.flatnonzero(r.random(m) < rate)
        donor = swap.copy()
        for g in np.unique(dom[swap]):
            sel = np.flatnonzero(dom[swap] == g)
            if len(sel) > 1:
                donor[sel] = np.roll(swap[sel], 1)
        txt[swap] = txt[donor]
        noisy = np.zeros(m, bool)
        noisy[swap[donor != swap]] = True
        yield start, img, txt, noisy
