"""CAM weightings: pure functions (A, dy^c/dA) -> map, both (B, h, w, K), map (B, h, w) before the ReLU.

References:
  Selvaraju et al., "Grad-CAM" (ICCV 2017); Draelos & Carin, "HiResCAM" (2020).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

# (A, dy^c/dA), both (B, h, w, K) -> map before the final ReLU, (B, h, w).
Weighting = Callable[[jax.Array, jax.Array], jax.Array]


def grad_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """GradCAM: alpha_k = mean over pixels of dy/dA^k; map = sum_k alpha_k A^k."""
    alpha = grads.mean(axis=(1, 2))
    return jnp.einsum("bhwk,bk->bhw", a, alpha)


def hires_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """HiResCAM: element-wise gradient times activation, summed over channels."""
    return (a * grads).sum(axis=-1)
