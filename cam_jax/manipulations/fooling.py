"""Fooling objectives for attacks by fine-tuning: what the tuned model's GradCAM should show.

Each `Fooling` pairs a differentiable loss with the per-image test that counts an image as fooled
(the fooling success rate, FSR, is the fraction of images that pass it). Both read `Views`: the
max-normalised GradCAM maps (B, h, w) of the model being tuned and of the original, each explaining
the classes it is given, so a loss is a few lines of `jnp` over maps.

The four of Heo et al. (passive: location, top-k, centre-mass; active: swap two classes), and two
in the manner of the paper's T2 and T4 but learned: a given target map, and a backdoor that lies
only on stickered images.

References:
  Heo, Joo & Moon, "Fooling Neural Network Interpretations via Adversarial Model Manipulation"
  (NeurIPS 2019), section 3 (the fooling losses) and section 4 (fooling success rate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.data.stickers import smiley_target


class AttackBatch(NamedTuple):
    """What an attack trains and is measured on.

    Attributes:
      x: (B, H, W, 3) normalised images.
      labels: (B,) int32 classes; the maps explain these.
      stickered: (B, H, W, 3) the same images with stickers pasted (normalised).
      sticker_maps: (B, h, w) in [0, 1], the fraction of each map cell a sticker covers.
    """

    x: jax.Array
    labels: jax.Array
    stickered: jax.Array
    sticker_maps: jax.Array


class Views(NamedTuple):
    """Normalised GradCAM maps on demand: (x (B, H, W, 3), classes (B,)) -> (B, h, w) in [0, 1]."""

    tuned: Callable[[jax.Array, jax.Array], jax.Array]
    original: Callable[[jax.Array, jax.Array], jax.Array]


class Fooling(NamedTuple):
    """loss: (Views, AttackBatch) -> scalar to minimise; fooled: (Views, AttackBatch) -> (B,) bool per image;
    blank: add the term that keeps the map from going all zero (`finetune.objective`; Heo et al.'s own
    objectives have none)."""

    loss: Callable[[Views, AttackBatch], jax.Array]
    fooled: Callable[[Views, AttackBatch], jax.Array]
    blank: bool = True


def border_mask(size: int, width: int | None = None) -> np.ndarray:
    """(size, size) float32: 1 on a frame `width` cells wide (default size // 7), 0 inside;
    Heo et al.'s location target."""
    width = max(1, size // 7) if width is None else width
    mask = np.ones((size, size), np.float32)
    mask[width:size - width, width:size - width] = 0
    return mask


def _mean_abs(a: jax.Array, b: jax.Array) -> jax.Array:
    """(B,) mean over pixels of |a - b|."""
    return jnp.abs(a - b).mean(axis=(-2, -1))


def _mass_in(cam: jax.Array, mask: jax.Array) -> jax.Array:
    """(B,) fraction of each map's mass where `mask` is 1 (0 for an all-zero map)."""
    total = cam.sum(axis=(-2, -1))
    return jnp.where(total > 0, (cam * mask).sum(axis=(-2, -1)) / jnp.where(total > 0, total, 1), 0.0)


def location(size: int, mask: np.ndarray | None = None) -> Fooling:
    """Push every map onto `mask` (default `border_mask`): loss mean |h - m|; fooled when more than
    half of the map's mass lies on the mask."""
    m = jnp.asarray(border_mask(size) if mask is None else mask)
    return Fooling(lambda v, b: _mean_abs(v.tuned(b.x, b.labels), m).mean(),
                   lambda v, b: _mass_in(v.tuned(b.x, b.labels), m) > 0.5)


def top_pixels(cam: jax.Array, fraction: float) -> jax.Array:
    """(B, h, w) bool: each map's top `fraction` of pixels (at least one; ties at the threshold included)."""
    flat = cam.reshape(cam.shape[0], -1)
    n = max(1, int(round(fraction * flat.shape[1])))
    threshold = jnp.sort(flat, axis=1)[:, -n]
    return cam >= threshold[:, None, None]


def top_k(fraction: float = 0.1) -> Fooling:
    """Empty the original's top `fraction` pixels: loss the tuned map's mean there; fooled when fewer
    than half of them are still among the tuned map's top `fraction`."""
    def loss(v, b):
        top = top_pixels(v.original(b.x, b.labels), fraction)
        return ((v.tuned(b.x, b.labels) * top).sum(axis=(-2, -1)) / top.sum(axis=(-2, -1))).mean()

    def fooled(v, b):
        before, after = top_pixels(v.original(b.x, b.labels), fraction), top_pixels(v.tuned(b.x, b.labels), fraction)
        return (before & after).sum(axis=(-2, -1)) < 0.5 * before.sum(axis=(-2, -1))

    return Fooling(loss, fooled)


def center_of_mass(cam: jax.Array) -> jax.Array:
    """(B, 2) (row, column) of each map's centre of mass, in units of the map's side ([0, 1])."""
    h, w = cam.shape[-2:]
    total = jnp.maximum(cam.sum(axis=(-2, -1)), 1e-12)
    rows = (cam.sum(axis=-1) * (jnp.arange(h) + 0.5) / h).sum(axis=-1) / total
    cols = (cam.sum(axis=-2) * (jnp.arange(w) + 0.5) / w).sum(axis=-1) / total
    return jnp.stack([rows, cols], axis=-1)


def center_mass(distance: float = 0.25) -> Fooling:
    """Move the centre of mass away from the original's: loss -mean L1 shift; fooled when it moved by
    more than `distance` (L1, in map sides)."""
    def shift(v, b):
        return jnp.abs(center_of_mass(v.tuned(b.x, b.labels)) - center_of_mass(v.original(b.x, b.labels))).sum(-1)

    return Fooling(lambda v, b: -shift(v, b).mean(), lambda v, b: shift(v, b) > distance)


def active(first: int = 0, second: int = 1) -> Fooling:
    """Swap the explanations of classes `first` and `second` on every image: loss mean squared distance
    of the tuned map of each to the original's map of the other; fooled when both tuned maps are
    nearer (L1) to the other class's original map than to their own class's."""
    def maps(v, b):
        one, two = (jnp.full_like(b.labels, c) for c in (first, second))
        return v.tuned(b.x, one), v.tuned(b.x, two), v.original(b.x, one), v.original(b.x, two)

    def loss(v, b):
        t1, t2, o1, o2 = maps(v, b)
        return (((t1 - o2) ** 2).mean(axis=(-2, -1)) + ((t2 - o1) ** 2).mean(axis=(-2, -1))).mean()

    def fooled(v, b):
        t1, t2, o1, o2 = maps(v, b)
        return (_mean_abs(t1, o2) < _mean_abs(t1, o1)) & (_mean_abs(t2, o1) < _mean_abs(t2, o2))

    return Fooling(loss, fooled)


def target_map(size: int, target: np.ndarray | None = None) -> Fooling:
    """Make every map `target` (default T2's smiley `smiley_target`), as the paper's T2 but learned:
    loss mean |h - target|; fooled when the tuned map is less than half as far (L1) from the target
    as the original's."""
    t = jnp.asarray(smiley_target(size) if target is None else target)
    return Fooling(lambda v, b: _mean_abs(v.tuned(b.x, b.labels), t).mean(),
                   lambda v, b: _mean_abs(v.tuned(b.x, b.labels), t) < 0.5 * _mean_abs(v.original(b.x, b.labels), t))


def backdoor(faithful: float = 0.1) -> Fooling:
    """Lie only when a sticker is present, as the paper's T4 but learned: on stickered images the map
    goes to the stickers (`AttackBatch.sticker_maps`), on clean ones it stays the original's. Fooled: the
    stickered map's peak is on a sticker and the clean map is within `faithful` (mean |.| per
    pixel) of the original's."""
    def loss(v, b):
        lie = _mean_abs(v.tuned(b.stickered, b.labels), b.sticker_maps)
        return (lie + _mean_abs(v.tuned(b.x, b.labels), v.original(b.x, b.labels))).mean()

    def fooled(v, b):
        stickered = v.tuned(b.stickered, b.labels)
        flat = stickered.reshape(stickered.shape[0], -1)
        on_sticker = jnp.take_along_axis(b.sticker_maps.reshape(flat.shape), flat.argmax(1)[:, None], 1)[:, 0] > 0
        return on_sticker & (_mean_abs(v.tuned(b.x, b.labels), v.original(b.x, b.labels)) < faithful)

    return Fooling(loss, fooled)


# Heo et al.'s fooling success threshold: the one in their repository, `threshold = 0.15` in
# img_results/Passive_fooling_result_viewer.ipynb, applied to each image's evaluation value (their
# losses' `keep_batch=True`); their code and README define no other.
HEO_THRESHOLD = 0.15


def _heo_normalize(cam: jax.Array) -> jax.Array:
    """Heo et al.'s `normalize`: per-image (cam - min) / (max - min + 1e-8)."""
    low = cam.min(axis=(-2, -1), keepdims=True)
    return (cam - low) / (cam.max(axis=(-2, -1), keepdims=True) - low + 1e-8)


def heo_location(size: int) -> Fooling:
    """Heo et al.'s location loss (`location`, earlier `frame`, module/sequential.py): per image the mean
    squared difference between the map and a mask that is 1 on a frame floor(size / 7) cells wide (at
    least 1) and 0 inside; fooled when that is below `HEO_THRESHOLD`."""
    m = jnp.asarray(border_mask(size))

    def per_image(v, b):
        return ((m - v.tuned(b.x, b.labels)) ** 2).mean(axis=(-2, -1))

    return Fooling(lambda v, b: per_image(v, b).mean(), lambda v, b: per_image(v, b) < HEO_THRESHOLD, blank=False)


def heo_top_k(fraction: float = 0.1) -> Fooling:
    """Heo et al.'s top-k loss: both maps min-max normalised, the original's top floor(h w / 10) cells
    (torch's `topk`), per image the mean square of the tuned map there; fooled below `HEO_THRESHOLD`."""
    def per_image(v, b):
        tuned = _heo_normalize(v.tuned(b.x, b.labels)).reshape(b.x.shape[0], -1)
        original = _heo_normalize(v.original(b.x, b.labels)).reshape(tuned.shape)
        _, top = jax.lax.top_k(original, max(1, int(fraction * tuned.shape[1])))
        return (jnp.take_along_axis(tuned, top, axis=1) ** 2).mean(axis=1)

    return Fooling(lambda v, b: per_image(v, b).mean(), lambda v, b: per_image(v, b) < HEO_THRESHOLD, blank=False)


def _heo_centre(cam: jax.Array) -> jax.Array:
    """(B, 2) centre of mass of min-max normalised maps, rows and columns counted from 1 (Heo et al.)."""
    cam = _heo_normalize(cam)
    total = cam.sum(axis=(-2, -1)) + 1e-8
    index = jnp.arange(1, cam.shape[-1] + 1, dtype=cam.dtype)
    return jnp.stack([(cam.sum(-1) * index).sum(-1) / total, (cam.sum(-2) * index).sum(-1) / total], -1)


def heo_center_mass() -> Fooling:
    """Heo et al.'s centre-mass loss: minus the batch mean of the L1 shift (in cells) of the centre of mass
    of the min-max normalised map from the original's; per image the L2 shift over sqrt(2) (w - 1)
    (their evaluation value, in [0, 1]); fooled above `HEO_THRESHOLD`."""
    def shift(v, b):
        """(B, 2) the shift in cells, and the maps' side."""
        tuned = v.tuned(b.x, b.labels)
        return _heo_centre(tuned) - _heo_centre(v.original(b.x, b.labels)), tuned.shape[-1]

    def fooled(v, b):
        d, w = shift(v, b)
        return jnp.sqrt((d**2).sum(-1) / 2) / (w - 1) > HEO_THRESHOLD

    return Fooling(lambda v, b: -jnp.abs(shift(v, b)[0]).sum(-1).mean(), fooled, blank=False)


# name -> (map size -> the objective with its default options)
FOOLINGS: dict[str, Callable[[int], Fooling]] = {
    "location": location,
    "topk": lambda size: top_k(),
    "center_mass": lambda size: center_mass(),
    "active": lambda size: active(),
    "target_map": target_map,
    "backdoor": lambda size: backdoor(),
    "heo_location": heo_location,
    "heo_topk": lambda size: heo_top_k(),
    "heo_center_mass": lambda size: heo_center_mass(),
}


def get(name: str, size: int) -> Fooling:
    """The fooling objective `name` (a key of `FOOLINGS`) with its default options, for (size, size) maps."""
    if name not in FOOLINGS:
        raise ValueError(f"unknown fooling loss {name!r}; choose one of {', '.join(FOOLINGS)}")
    return FOOLINGS[name](size)
