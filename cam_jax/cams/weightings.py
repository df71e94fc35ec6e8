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

import functools
import itertools
import operator
from collections.abc import Callable

import jax
import jax.numpy as jnp

# (A, dy^c/dA), both (B, h, w, K) -> map before the final ReLU, (B, h, w).
Weighting = Callable[[jax.Array, jax.Array], jax.Array]


def _weighted(a: jax.Array, alpha: jax.Array) -> jax.Array:
    """sum_k alpha_k A^k, alpha (B, K)."""
    return jnp.einsum("bhwk,bk->bhw", a, alpha)


def channel_blocks(x: jax.Array, appended: int = 0) -> tuple[jax.Array, ...]:
    """x (..., K) split on its last axis into (the first K - appended channels, the appended ones)."""
    k = x.shape[-1] - appended
    return (x,) if not appended else (x[..., :k], x[..., k:])


def _sum_of_blocks(fn: Callable[..., jax.Array], *blocks: tuple[jax.Array, ...]) -> jax.Array:
    """sum_i fn(*(b[i] for b in blocks)), each term compiled as a unit (`_isolated`)."""
    return functools.reduce(operator.add, (_isolated(fn, *args) for args in zip(*blocks, strict=True)))


def weighted_sum(a: jax.Array, alpha: jax.Array, appended: int = 0) -> jax.Array:
    """sum_k alpha_k A^k for per-channel weights alpha (B, K) found otherwise (ScoreCAM, AblationCAM),
    the last `appended` channels summed as a block of their own (see `apply`)."""
    return _sum_of_blocks(_weighted, channel_blocks(a, appended), channel_blocks(alpha, appended))


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


def _isolated(fn: Callable[..., jax.Array], *args: jax.Array) -> jax.Array:
    """fn(*args) compiled as a unit: XLA may not fuse it with what produces its inputs or reads
    its output, so the same expression on the same values gives the same bits in any program."""
    return jax.lax.optimization_barrier(fn(*jax.lax.optimization_barrier(args)))


SQUARINGS = 24  # at most: the error after k squarings is (lambda_2 / lambda_1)**(2**k)
SETTLED = 1e-6  # a squaring that raises trace(p @ p) by no more than this fraction has converged


def top_eigenvector(m: jax.Array) -> jax.Array:
    """(B, n, n) symmetric positive semi-definite -> (B, n) unit eigenvector of the largest eigenvalue
    (0 for a zero matrix), by repeated squaring of the trace-normalised matrix.

    Pure matrix products, no LAPACK call: XLA's CPU runtime (jaxlib 0.10) can hang on a program holding a
    dozen `jnp.linalg.eigh` calls, which an evaluation of several models and targets holds. Squaring converges
    to the projector on the top eigenvector as (lambda_2 / lambda_1)**(2**k); with equal top eigenvalues it
    returns a unit vector of their span (where any principal direction is as good as another).

    Each matrix stops once a squaring no longer raises trace(p @ p) = sum_i w_i**2, w_i the weights of p's
    eigenvalues (summing to 1), which grows to 1 as p becomes a projector on one eigenvector, by more than
    `SETTLED`: a scalar the normalisation computes anyway. A stopped matrix is left as it is while the others
    go on, so its result does not depend on the batch it came in.

    Example:
      >>> v = top_eigenvector(jnp.diag(jnp.array([1.0, 3.0, 2.0]))[None])
      >>> [round(float(e), 6) for e in v[0]]
      [0.0, 1.0, 0.0]
    """
    tiny = jnp.finfo(m.dtype).tiny

    def trace(x):
        return jnp.trace(x, axis1=-2, axis2=-1)

    def unsettled(state):
        i, _, _, settled = state
        return (i < SQUARINGS) & ~settled.all()

    def square(state):
        i, p, purity, settled = state
        x = p @ p
        now = trace(x)  # trace(p @ p), p symmetric with trace 1
        x = x / jnp.maximum(now, tiny)[:, None, None]
        return (i + 1, jnp.where(settled[:, None, None], p, x), jnp.where(settled, purity, now),
                settled | (now - purity <= SETTLED * now))

    start = m / jnp.maximum(trace(m), tiny)[:, None, None]
    zeros = jnp.zeros(m.shape[:1], m.dtype)
    _, p, _, _ = jax.lax.while_loop(unsettled, square, (0, start, zeros, zeros.astype(bool)))
    column = jnp.take_along_axis(p, jnp.argmax(jnp.diagonal(p, axis1=-2, axis2=-1), -1)[:, None, None], axis=-1)[..., 0]
    return column / jnp.maximum(jnp.linalg.norm(column, axis=-1, keepdims=True), tiny)


def principal_projection(m: jax.Array) -> jax.Array:
    """(B, h, w, K) -> (B, h, w): each image's pixels (rows) projected on their first principal
    direction, after centring each channel over the pixels (pytorch-grad-cam's get_2d_projection).

    The direction is the top eigenvector of the K x K covariance, or, where the pixels are fewer
    than the channels (VGG-16: 196 pixels, 512 channels), the projection X v_1 = sqrt(lambda_1) u_1
    comes from the (h w) x (h w) Gram matrix. The sign of a principal direction is arbitrary; it
    is chosen so that the map correlates positively with the channel sum of `m` (pytorch-grad-cam
    takes whatever sign its SVD returns).
    """
    b, h, w, k = m.shape
    x = m.reshape(b, h * w, k)
    centred = x - x.mean(axis=1, keepdims=True)
    if k <= h * w:
        proj = jnp.einsum("bpk,bk->bp", centred, top_eigenvector(jnp.einsum("bpk,bpl->bkl", centred, centred)))
    else:
        gram = jnp.einsum("bpk,bqk->bpq", centred, centred)
        u = top_eigenvector(gram)
        proj = jnp.sqrt(jnp.maximum(jnp.einsum("bp,bpq,bq->b", u, gram, u), 0))[:, None] * u
    sign = jnp.where((proj * x.sum(-1)).sum(-1) < 0, -1.0, 1.0)
    return (sign[:, None] * proj).reshape(b, h, w)


def eigen_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """EigenCAM: the first principal component of A (gradient-free: `grads` is not read)."""
    return principal_projection(a)


def eigen_grad_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """EigenGradCAM: the first principal component of gradient times activation."""
    return principal_projection(a * grads)


# The weightings that are not a sum of per-channel terms (a principal direction mixes channels).
NOT_ADDITIVE = (eigen_cam, eigen_grad_cam)


def apply(weighting: Weighting, a: jax.Array, grads: tuple[jax.Array, ...]) -> jax.Array:
    """`weighting(a, dS/dA)` with dS/dA given as blocks of channels (`core.Backward`),
    each (B, h, w, K_i), summed block by block.

    A weighting that is a sum over channels gives the same result in exact arithmetic; in floating
    point the original's channels are then weighed by the very expression, on the very gradient of
    the original's own head, that explains the original. A manipulation whose appended channel is
    exactly 0 and leaves dS/dA^{1..K} unchanged (T4 on clean images) thus gives the original's map
    bit for bit, at any batch size. The principal-component weightings mix channels and take A whole.
    """
    if weighting in NOT_ADDITIVE or len(grads) == 1:
        return _isolated(weighting, a, jnp.concatenate(grads, axis=-1))
    bounds = (0, *itertools.accumulate(g.shape[-1] for g in grads))
    return _sum_of_blocks(weighting, tuple(a[..., i:j] for i, j in itertools.pairwise(bounds)), grads)


WEIGHTINGS: dict[str, Weighting] = {
    "gradcam": grad_cam,
    "gradcam++": grad_cam_pp,
    "xgradcam": xgrad_cam,
    "hirescam": hires_cam,
    "layercam": layer_cam,
    "eigengradcam": eigen_grad_cam,
    "eigencam": eigen_cam,
}
