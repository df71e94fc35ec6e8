"""Map utilities: normalisation for comparison and upsampling for display."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NORMALIZATIONS = ("max", "minmax")


def normalize(cam: jax.Array, method: str = "max") -> jax.Array:
    """Each (h, w) map scaled for comparison.

    "max" (the paper's, SPEC.md): divided by its maximum; a map whose maximum is
    <= 0 becomes 0. "minmax" (pytorch-grad-cam's default): (cam - min) / (max - min);
    a constant map becomes 0.
    """
    if method == "max":
        peak = cam.max(axis=(-2, -1), keepdims=True)
        return jnp.where(peak > 0, cam / jnp.where(peak > 0, peak, 1), 0)
    if method == "minmax":
        low, high = cam.min(axis=(-2, -1), keepdims=True), cam.max(axis=(-2, -1), keepdims=True)
        span = high - low
        return jnp.where(span > 0, (cam - low) / jnp.where(span > 0, span, 1), 0)
    raise ValueError(f"unknown normalisation {method!r}; choose one of {NORMALIZATIONS}")


def upsample(cam: jax.Array, size: int) -> jax.Array:
    """(B, h, w) maps -> (B, size, size), bilinear; for display only, metrics use h x w."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return jax.image.resize(cam, (cam.shape[0], size, size), method="bilinear")
