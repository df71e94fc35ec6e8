"""Localisation: does a map point at the object? Per image (B,), against (B, H, W) object masks.

The maps are looked at upsampled to the image (bilinear), as SPEC.md defines the scores.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cam_jax.cams.maps import normalize


def _upsample(cam: jax.Array, size: int) -> jax.Array:
    return jax.image.resize(cam, (*cam.shape[:-2], size, size), method="bilinear")


def _dilate(masks: jax.Array, radius: int) -> jax.Array:
    """Boolean dilation of (B, H, W) masks by a (2r+1)^2 square."""
    if radius <= 0:
        return masks
    window = (1, 2 * radius + 1, 2 * radius + 1)
    return jax.lax.reduce_window(masks, False, jax.lax.bitwise_or, window, (1, 1, 1), "SAME")


def pointing_game(cam: jax.Array, masks: jax.Array, tolerance: int = 15) -> jax.Array:
    """(B,) bool: the peak of the map, upsampled to the image, lies within `tolerance`
    pixels of the object (Zhang et al. 2016's pointing game). A map that is 0
    everywhere points nowhere and misses.

    Args:
      cam: (B, h, w) maps; masks: (B, H, W) bool object masks.
    """
    up = _upsample(cam, masks.shape[-1]).reshape(cam.shape[0], -1)
    hit = jnp.take_along_axis(_dilate(masks, tolerance).reshape(cam.shape[0], -1), up.argmax(-1)[:, None], axis=1)[:, 0]
    return hit & (up.max(-1) > 0)


def pointing_chance(masks: jax.Array, tolerance: int = 15) -> jax.Array:
    """(B,) the pointing game's score for a uniformly random point: the dilated mask's area fraction."""
    return _dilate(masks, tolerance).mean(axis=(-2, -1))


def _upsampling_matrix(size: int, h: int) -> jax.Array:
    """(size, h) R with `_upsample(cam, size)` = R cam R^T: bilinear resizing is separable and linear."""
    return jax.image.resize(jnp.eye(h), (size, h), method="bilinear")


def mass_in_mask(cam: jax.Array, masks: jax.Array, normalization: str = "max") -> jax.Array:
    """(B,) fraction of the upsampled normalised map's mass inside the object mask (0 for an all-zero
    map); max normalisation leaves the fractions of the raw map, min-max first subtracts its minimum.

    Computed at the map's resolution: sum(R c R^T * mask) = sum(c * R^T mask R), so the masks are
    brought down once instead of every map brought up to the image.
    """
    r = _upsampling_matrix(masks.shape[-1], cam.shape[-1])
    inside = jnp.einsum("Hh,bHW,Ww->bhw", r, masks.astype(cam.dtype), r)
    everywhere = jnp.einsum("Hh,Ww->hw", r, r)
    c = normalize(cam, normalization)
    total = (c * everywhere).sum(axis=(-2, -1))
    return jnp.where(total > 0, (c * inside).sum(axis=(-2, -1)) / jnp.where(total > 0, total, 1), 0.0)


# Quantus 0.6's localisation metrics (localisation/): a map at the masks' resolution (B, H, W) against
# (B, H, W) bool masks, per image (B,), NaN where a mask is empty.


def _pairs(maps: jax.Array, masks: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    b = maps.shape[0]
    a, s = maps.reshape(b, -1).astype(jnp.float32), masks.reshape(b, -1).astype(bool)
    return a, s, s.sum(-1) == 0


def _undefined_if(empty: jax.Array, values: jax.Array) -> jax.Array:
    return jnp.where(empty, jnp.nan, values.astype(jnp.float32))


def peak_in_mask(maps: jax.Array, masks: jax.Array) -> jax.Array:
    """(B,) 1.0 when any pixel holding the map's maximum lies inside the mask (the pointing game, with
    no tolerance), else 0.0."""
    a, s, empty = _pairs(maps, masks)
    return _undefined_if(empty, (s & (a == a.max(-1, keepdims=True))).any(-1))


def energy_in_mask(maps: jax.Array, masks: jax.Array) -> jax.Array:
    """(B,) share of the map's positive part inside the mask (Wang et al.'s energy-based pointing game;
    Quantus's AttributionLocalisation, unweighted): sum(max(a, 0) s) / (sum(max(a, 0)) + 1e-9)."""
    a, s, empty = _pairs(maps, masks)
    a = jnp.maximum(a, 0)
    return _undefined_if(empty, (a * s).sum(-1) / (a.sum(-1) + 1e-9))


def relevance_mass_accuracy(maps: jax.Array, masks: jax.Array) -> jax.Array:
    """(B,) sum(a s) / sum(a) (Arras et al. 2022), the signed map as given."""
    a, s, empty = _pairs(maps, masks)
    return _undefined_if(empty, (a * s).sum(-1) / a.sum(-1))


def _descending(a: jax.Array) -> jax.Array:
    """(B, N) pixel indices by decreasing value, ties in pixel order."""
    return jnp.argsort(-a, axis=-1, stable=True)


def relevance_rank_accuracy(maps: jax.Array, masks: jax.Array) -> jax.Array:
    """(B,) share of the K = |mask| highest pixels of the map that lie inside the mask (Arras et al.)."""
    a, s, empty = _pairs(maps, masks)
    ranked = jnp.take_along_axis(s, _descending(a), axis=-1)
    k = s.sum(-1, keepdims=True)
    top = jnp.arange(a.shape[-1]) < k
    return _undefined_if(empty, (ranked & top).sum(-1) / jnp.maximum(k[:, 0], 1))


def top_k_intersection(maps: jax.Array, masks: jax.Array, k: int = 1000) -> jax.Array:
    """(B,) share of the map's `k` highest pixels inside the mask (Theiner et al. 2021)."""
    a, s, empty = _pairs(maps, masks)
    return _undefined_if(empty, jnp.take_along_axis(s, _descending(a)[:, :k], axis=-1).mean(-1))


def auc(maps: jax.Array, masks: jax.Array) -> jax.Array:
    """(B,) area under the ROC curve of the map's values as a detector of the mask's pixels: the
    probability that a pixel inside outscores one outside, ties counting half (Mann-Whitney U)."""
    a, s, empty = _pairs(maps, masks)
    outside = jnp.sort(jnp.where(s, jnp.inf, a), axis=-1)  # the mask's pixels sorted past every other
    negatives = (~s).sum(-1)
    below = jax.vmap(lambda o, v: jnp.searchsorted(o, v, side="left"))(outside, a)
    upto = jnp.minimum(jax.vmap(lambda o, v: jnp.searchsorted(o, v, side="right"))(outside, a), negatives[:, None])
    # Per pixel inside, the share of pixels outside it beats (ties half), each in [0, 1]: no large sums.
    beaten = (below + upto) / (2 * jnp.maximum(negatives, 1)[:, None])
    inside = jnp.where(s, beaten, 0).sum(-1) / jnp.maximum(s.sum(-1), 1)
    return _undefined_if(empty | (negatives == 0), inside)
