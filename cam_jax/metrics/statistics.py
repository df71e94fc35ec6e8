"""Row-wise statistics the metrics compare with: correlations and Quantus's 1-D SSIM, over the last axis."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pearson(a: jax.Array, b: jax.Array) -> jax.Array:
    """(...,) Pearson correlation of a and b (..., n) along the last axis; NaN where either is constant."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / jnp.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def average_ranks(values: jax.Array) -> jax.Array:
    """(..., n) 1-based ranks along the last axis, tied values sharing their mean rank (scipy's rankdata)."""
    ordered = jnp.sort(values, axis=-1)
    flat_o, flat_v = ordered.reshape(-1, values.shape[-1]), values.reshape(-1, values.shape[-1])
    below = jax.vmap(lambda o, v: jnp.searchsorted(o, v, side="left"))(flat_o, flat_v)
    upto = jax.vmap(lambda o, v: jnp.searchsorted(o, v, side="right"))(flat_o, flat_v)
    return ((below + upto + 1) / 2).reshape(values.shape)


def spearman(a: jax.Array, b: jax.Array) -> jax.Array:
    """(...,) Spearman correlation along the last axis (Pearson of average ranks, as scipy's spearmanr)."""
    return pearson(average_ranks(a), average_ranks(b))


def ssim_1d(a: jax.Array, b: jax.Array, window: int = 7) -> jax.Array:
    """(...,) SSIM of two (..., n) vectors as Quantus 0.6 computes it on flattened maps: skimage's
    `structural_similarity` of 1-D signals, a uniform window of `window`, sample covariances, K1 = 0.01,
    K2 = 0.03, data range max - min over both, the mean over the positions a whole window covers."""
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    both = jnp.concatenate([a, b], -1)
    r = both.max(-1, keepdims=True) - both.min(-1, keepdims=True)
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2

    def local_mean(v):
        kernel = jnp.ones(window, v.dtype) / window
        return jax.vmap(lambda row: jnp.convolve(row, kernel, mode="valid"))(v.reshape(-1, v.shape[-1])).reshape(
            *v.shape[:-1], -1)

    norm = window / (window - 1)
    ma, mb = local_mean(a), local_mean(b)
    va = norm * (local_mean(a * a) - ma * ma)
    vb = norm * (local_mean(b * b) - mb * mb)
    vab = norm * (local_mean(a * b) - ma * mb)
    s = (2 * ma * mb + c1) * (2 * vab + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return s.mean(-1)


def peak_scaled(maps: jax.Array) -> jax.Array:
    """(B, ...) each map over its largest |value| (a map of zeros stays zeros)."""
    peak = jnp.abs(maps).reshape(maps.shape[0], -1).max(-1).reshape((-1,) + (1,) * (maps.ndim - 1))
    return jnp.where(peak > 0, maps / jnp.where(peak > 0, peak, 1), 0)
