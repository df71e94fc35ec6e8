"""CAM methods that need only A and dy/dA: pure functions (A, dy^c/dA) -> map before the final ReLU.

A and its gradient are both (B, h, w, K); the map is (B, h, w). Each follows
pytorch-grad-cam's definition (its get_cam_weights / get_cam_image), which the
tests restate in torch autograd. One forward and one head backward feed all of them.

References:
  Selvaraju et al. 2017 (GradCAM); Chattopadhay et al. 2018 (GradCAM++, eq. 19);
  Fu et al. 2020 (XGradCAM); Draelos & Carin 2020 (HiResCAM); Jiang et al. 2021
  (LayerCAM); Muhammad & Yeasin 2020 (EigenCAM); pytorch-grad-cam (EigenGradCAM).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

# (A, dy^c/dA), both (B, h, w, K) -> map before the final ReLU, (B, h, w).
Weighting = Callable[[jax.Array, jax.Array], jax.Array]


def _weighted(a: jax.Array, alpha: jax.Array) -> jax.Array:
    """sum_k alpha_k A^k, alpha (B, K)."""
    return jnp.einsum("bhwk,bk->bhw", a, alpha)


def grad_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """GradCAM: alpha_k = mean over pixels of dy/dA^k; map = sum_k alpha_k A^k."""
    alpha = grads.mean(axis=(1, 2))
    return _weighted(a, alpha)


def grad_cam_pp(a: jax.Array, grads: jax.Array) -> jax.Array:
    """GradCAM++: alpha_k = sum_ij relu(g_ij) a_ij with a_ij = g^2 / (2 g^2 + sum_ij(A^k) g^3 + 1e-6)
    (eq. 19 under an exponential score), a_ij = 0 where g = 0."""
    g2 = grads**2
    total = a.sum(axis=(1, 2), keepdims=True)
    aij = jnp.where(grads != 0, g2 / (2 * g2 + total * g2 * grads + 1e-6), 0.0)
    return _weighted(a, (jax.nn.relu(grads) * aij).sum(axis=(1, 2)))


def grad_cam_authors(a: jax.Array, grads: jax.Array) -> jax.Array:
    """GradCAM as the paper's authors' code computed it: gradients at A, values after a ReLU.

    They hooked conv5_3's output before its ReLU, so the gradient is dy/dA_pre, but the
    in-place ReLU that follows overwrote the stored map (SPEC.md). With A before the ReLU
    (`VGG(cam_pre_relu=True)`) this is ReLU(sum_k mean(dy/dA_pre^k) ReLU(A_pre^k)); with A after
    it, it is `grad_cam`.
    """
    return grad_cam(jax.nn.relu(a), grads)


def xgrad_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """XGradCAM: alpha_k = sum_ij g_ij A^k_ij / (sum_ij A^k_ij + 1e-7)."""
    total = a.sum(axis=(1, 2), keepdims=True)
    return _weighted(a, (grads * a / (total + 1e-7)).sum(axis=(1, 2)))


def hires_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """HiResCAM: element-wise gradient times activation, summed over channels."""
    return (a * grads).sum(axis=-1)


def layer_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """LayerCAM: relu(gradient) times activation element-wise, summed over channels."""
    return (jax.nn.relu(grads) * a).sum(axis=-1)


def principal_projection(m: jax.Array) -> jax.Array:
    """(B, h, w, K) -> (B, h, w): each image's pixels (rows) projected on their first principal
    direction, after centring each channel over the pixels (pytorch-grad-cam's get_2d_projection).

    Computed from the (h w) x (h w) Gram matrix (196 x 196 for VGG-16, not 196 x 512): the
    projection X v_1 equals sqrt(lambda_1) u_1. The sign of a principal direction is arbitrary;
    it is chosen so that the map correlates positively with the channel sum of `m` (pytorch-grad-cam
    takes whatever sign its SVD returns).
    """
    b, h, w, k = m.shape
    x = m.reshape(b, h * w, k)
    x = x - x.mean(axis=1, keepdims=True)
    values, vectors = jnp.linalg.eigh(jnp.einsum("bpk,bqk->bpq", x, x))
    proj = jnp.sqrt(jnp.maximum(values[:, -1], 0))[:, None] * vectors[:, :, -1]
    sign = jnp.where((proj * m.reshape(b, h * w, k).sum(-1)).sum(-1) < 0, -1.0, 1.0)
    return (sign[:, None] * proj).reshape(b, h, w)


def eigen_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """EigenCAM: the first principal component of A (gradient-free: `grads` is not read)."""
    return principal_projection(a)


def eigen_grad_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """EigenGradCAM: the first principal component of gradient times activation."""
    return principal_projection(a * grads)


WEIGHTINGS: dict[str, Weighting] = {
    "gradcam": grad_cam,
    "gradcam++": grad_cam_pp,
    "xgradcam": xgrad_cam,
    "hirescam": hires_cam,
    "layercam": layer_cam,
    "eigengradcam": eigen_grad_cam,
    "eigencam": eigen_cam,
}
