"""How far a manipulation moved a model: its scores, its accuracy and its explanation, per image (B,).

Explanation distances compare normalised maps at A's resolution (14x14 for VGG-16), as SPEC.md
defines the paper's L1. A map "moved" by the mean per-pixel distance; above `FOOLED` the
explanation counts as fooled, wherever cam_jax says so (the matrix, the attacks, the audit's
population).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cam_jax.cams.maps import normalize

FOOLED = 0.1  # mean |difference| per pixel of the normalised maps, in [0, 1], above which a map is fooled


def correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """(B,) bool: top-1 of `logits` (B, C) equals `labels` (B,)."""
    return logits.argmax(axis=-1) == labels


def dy_inf(y_o: jax.Array, y_n: jax.Array) -> jax.Array:
    """(B,) ||y_o - y_n||_inf per image: max over classes of |y_o - y_n|."""
    return jnp.abs(y_o - y_n).max(axis=-1)


def dy_mean(y_o: jax.Array, y_n: jax.Array) -> jax.Array:
    """(B,) mean over classes of |y_o - y_n| per image (how the authors' table reported T3)."""
    return jnp.abs(y_o - y_n).mean(axis=-1)


def l1(cam: jax.Array, reference: jax.Array, normalization: str = "max") -> jax.Array:
    """(B,) sum over the h x w pixels of |normalise(reference) - normalise(cam)|, both normalised
    alike ("max", the paper's, or "minmax")."""
    distance = jnp.abs(normalize(reference, normalization) - normalize(cam, normalization)).sum(axis=(-2, -1))
    # Identical maps are at distance 0 exactly: XLA's CPU backend may compile the two copies of the
    # same division differently (normalisations of bit-identical maps were seen 4.9e-8 apart).
    return jnp.where((cam == reference).all(axis=(-2, -1)), 0.0, distance)


def moved(cam: jax.Array, reference: jax.Array, normalization: str = "max") -> jax.Array:
    """(B,) mean over the h x w pixels of |normalise(cam) - normalise(reference)|, in [0, 1]: `l1` per pixel."""
    return l1(cam, reference, normalization) / (cam.shape[-2] * cam.shape[-1])


def collapsed(cam: jax.Array) -> jax.Array:
    """(B,) bool: the map is 0 everywhere (GradCAM's ReLU took it all)."""
    return cam.max(axis=(-2, -1)) == 0
