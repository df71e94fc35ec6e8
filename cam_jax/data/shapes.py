"""A generated image set: shapes of random colour, size, pose on cluttered backgrounds, with masks.

Every image is a pure function of (seed, index), so any batch of any split can
be drawn on the fly and reproduced exactly. The class is the shape alone:
colours, sizes, positions, rotations and backgrounds are drawn independently
of it, and distractor strokes share the object's palette.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import numpy as np

from cam_jax.data import images
from cam_jax.data.batch import Batch, Loader

CLASSES = ("disk", "square", "triangle", "plus")
TRAIN_SEED, TEST_SEED = 0, 1  # different seeds: disjoint streams of images


def shape_mask(label: int, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Mask of shape `label` in object-centred, rotated coordinates (u, v), pixels."""
    r = np.hypot(u, v)
    if label == 0:  # disk
        return r <= radius
    if label == 1:  # square
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * radius
    if label == 2:  # equilateral triangle, circumradius `radius`
        inside = np.ones_like(u, bool)
        for angle in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= u * np.cos(angle) + v * np.sin(angle) <= radius / 2
        return inside
    if label == 3:  # plus
        arm = 0.3 * radius
        return ((np.abs(u) <= arm) & (np.abs(v) <= radius)) | ((np.abs(v) <= arm) & (np.abs(u) <= radius))
    raise ValueError(f"label must be in [0, {len(CLASSES)}), got {label}")


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, 3)


def render(seed: int, index: int, size: int = 224) -> tuple[np.ndarray, int, np.ndarray]:
    """Image `index` of the stream `seed`: (pixels (size, size, 3) uint8, label, mask (size, size) bool)."""
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(CLASSES)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    # Background: a linear gradient between two random colours, plus pixel noise.
    direction = rng.uniform(0, 2 * np.pi)
    t = ((xx * np.cos(direction) + yy * np.sin(direction)) / size + 1) / 2
    c0, c1 = _colour(rng), _colour(rng)
    image = c0 * (1 - t[..., None]) + c1 * t[..., None]

    # Distractor strokes: thin lines and arcs in random colours, any shape class's palette.
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.uniform(0, size, 2)
        angle, length, width = rng.uniform(0, np.pi), rng.uniform(0.2, 0.8) * size, rng.uniform(0.8, 2.0)
        along = (xx - x0) * np.cos(angle) + (yy - y0) * np.sin(angle)
        across = -(xx - x0) * np.sin(angle) + (yy - y0) * np.cos(angle)
        if rng.random() < 0.5:
            bend = rng.uniform(-3, 3) / size
            across = across - bend * along**2
        stroke = (np.abs(across) <= width) & (np.abs(along) <= length / 2)
        image[stroke] = _colour(rng)

    # The object: random radius, centre (in the middle half, fully inside), rotation,
    # and a colour that differs clearly from the background under it.
    radius = rng.uniform(0.16, 0.26) * size
    cx, cy = rng.uniform(0.3 * size, 0.7 * size, 2)
    rot = rng.uniform(0, 2 * np.pi)
    u = (xx - cx) * np.cos(rot) + (yy - cy) * np.sin(rot)
    v = -(xx - cx) * np.sin(rot) + (yy - cy) * np.cos(rot)
    mask = shape_mask(label, u, v, radius)
    under = image[mask].mean(axis=0)
    colour = _colour(rng)
    while np.abs(colour - under).sum() < 0.8:
        colour = _colour(rng)
    image[mask] = colour

    image = image + rng.normal(0, 0.04, image.shape)
    pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return pixels, label, mask


def batch(seed: int, indices, size: int = 224) -> Batch:
    """Images `indices` of stream `seed`, stacked."""
    rendered = [render(seed, int(i), size) for i in indices]
    return Batch(
        np.stack([r[0] for r in rendered]),
        np.array([r[1] for r in rendered], np.int32),
        np.stack([r[2] for r in rendered]),
    )


def loader(size: int = 224, seed: int = TEST_SEED) -> Loader:
    """Generated test images at `size`, masks included."""
    return lambda indices: batch(seed, indices, size)


def training_batches(seed: int, batch_size: int, steps: int, size: int = 224
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Normalised generated batches for `steps` steps, the next one rendered in a thread meanwhile."""
    def render(k):
        b = batch(seed, range(k * batch_size, (k + 1) * batch_size), size)
        return images.normalize(b.pixels), b.labels

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(render, 0)
        for k in range(steps):
            ready = pending.result()
            if k + 1 < steps:
                pending = pool.submit(render, k + 1)
            yield ready
