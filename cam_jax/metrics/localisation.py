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
