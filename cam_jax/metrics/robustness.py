"""Robustness: does the explanation stay put when the image barely changes? Per image (B,).

Each metric re-explains noisy copies of the images with `explain`, a function (model, images (B, H, W, 3),
classes (B,)) -> maps (B, H, W) (`cams.methods.explainer` makes one for any method); one noisy copy of
the batch is explained at a time, so memory holds one explanation. Definitions follow Quantus 0.6
(robustness/); sample t's noise is drawn from `jax.random.fold_in(key, t)`.

References:
  Yeh et al., "On the (in)fidelity and sensitivity of explanations" (NeurIPS 2019);
  Alvarez-Melis & Jaakkola, "On the robustness of interpretability methods" (2018).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from cam_jax.metrics.statistics import peak_scaled
from cam_jax.model import Model

Explain = Callable[[Model, jax.Array, jax.Array], jax.Array]


def explained(explain: Explain, model: Model, images: jax.Array, classes: jax.Array, shape: tuple) -> jax.Array:
    """`explain`'s maps, checked (when traced) to be one (H, W) map per image: `shape`."""
    maps = explain(model, images, classes)
    if tuple(maps.shape) != tuple(shape):
        raise ValueError(f"explain must return (B, H, W) = {tuple(shape)} maps, one per image, got "
                         f"{tuple(maps.shape)}")
    return maps


def _norm(v: jax.Array) -> jax.Array:
    return jnp.sqrt((v.reshape(v.shape[0], -1) ** 2).sum(-1))


def _sensitivities(model, images, maps, classes, key, explain, samples, radius):
    """(B, samples) ||map - map(x + u)|| / ||map||, u uniform in [-radius, radius] on every value."""

    def one(t):
        noisy = images + jax.random.uniform(jax.random.fold_in(key, t), images.shape, images.dtype, -radius, radius)
        return _norm(maps - explained(explain, model, noisy, classes, maps.shape)) / _norm(maps)

    return jax.lax.map(one, jnp.arange(samples)).T


def max_sensitivity(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
                    explain: Explain, samples: int = 10, radius: float = 0.2) -> jax.Array:
    """(B,) the largest relative change of the map over `samples` noisy copies of the image (Quantus's
    MaxSensitivity: uniform noise of `radius`, Frobenius norms; its default 200 samples)."""
    return _sensitivities(model, images, maps, classes, key, explain, samples, radius).max(-1)


def avg_sensitivity(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
                    explain: Explain, samples: int = 10, radius: float = 0.2) -> jax.Array:
    """(B,) the mean relative change of the map over `samples` noisy copies (Quantus's AvgSensitivity)."""
    return _sensitivities(model, images, maps, classes, key, explain, samples, radius).mean(-1)


def local_lipschitz(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
                    explain: Explain, samples: int = 10, sigma: float = 0.1) -> jax.Array:
    """(B,) max over `samples` Gaussian copies x' = x + N(0, sigma) of ||m(x) - m(x')|| / (||x - x'|| + 1e-10),
    each map over its own maximum (Quantus's LocalLipschitzEstimate with per-image normalisation; its
    default scales by one maximum over the whole batch)."""
    reference = peak_scaled(maps)

    def one(t):
        noise = sigma * jax.random.normal(jax.random.fold_in(key, t), images.shape, images.dtype)
        moved = peak_scaled(explained(explain, model, images + noise, classes, maps.shape))
        return _norm(reference - moved) / (_norm(noise) + 1e-10)

    return jax.lax.map(one, jnp.arange(samples)).T.max(-1)
