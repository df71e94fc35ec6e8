"""Complexity: how concentrated a map is, per image (B,), from the (B, H, W) map alone.

Definitions follow Quantus 0.6 (complexity/) on the map's absolute values, as its default (abs=True);
it also scales by one maximum over the batch first, which cam_jax does not: only `effective_complexity`
and the 1e-7 of `sparseness` depend on the scale.

References:
  Chalasani et al., "Concise explanations of neural networks using adversarial training" (ICML 2020);
  Bhatt et al., "Evaluating and aggregating feature-based model explanations" (IJCAI 2020);
  Nguyen & Martinez, "On quantitative aspects of model interpretability" (2020).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _flat(maps: jax.Array) -> jax.Array:
    """(B, H W) |maps|: a signed map (gradient x input) is as complex as its magnitude."""
    return jnp.abs(maps.reshape(maps.shape[0], -1).astype(jnp.float32))


def sparseness(maps: jax.Array) -> jax.Array:
    """(B,) Gini index of each map's |values| (+1e-7) in [0, 1]: 1 when one pixel holds everything.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(sparseness(jnp.eye(4)[None] * jnp.array([0, 0, 0, 1.0]))[0]), 3)
      0.937
    """
    a = jnp.sort(_flat(maps) + 1e-7, axis=-1)
    n = a.shape[-1]
    rank = jnp.arange(1, n + 1, dtype=a.dtype)
    return ((2 * rank - n - 1) * a).sum(-1) / (n * a.sum(-1))


def complexity(maps: jax.Array) -> jax.Array:
    """(B,) entropy (nats) of |map| / sum |map|: log(H W) for a uniform map, 0 for one pixel."""
    a = _flat(maps)
    p = a / a.sum(-1, keepdims=True)
    return -(p * jnp.log(p + 1e-12)).sum(-1)


def effective_complexity(maps: jax.Array, eps: float = 1e-5) -> jax.Array:
    """(B,) how many pixels of the map exceed `eps` in magnitude (int32)."""
    return (_flat(maps) > eps).sum(-1).astype(jnp.int32)
