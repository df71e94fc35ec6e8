"""Map utilities: normalisation for comparison and upsampling for display."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def normalize(cam: jax.Array) -> jax.Array:
    """Divide each (h, w) map by its maximum; a map whose maximum is 0 stays 0."""
    peak = cam.max(axis=(-2, -1), keepdims=True)
    return jnp.where(peak > 0, cam / jnp.where(peak > 0, peak, 1), 0)


def upsample(cam: jax.Array, size: int) -> jax.Array:
    """(B, h, w) maps -> (B, size, size), bilinear; for display only, metrics use h x w."""
    return jax.image.resize(cam, (cam.shape[0], size, size), method="bilinear")
