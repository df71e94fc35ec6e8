"""GradCAM as a pure, jitted, batched function of a model and images.

The forward pass runs once; only the head is differentiated (`jax.vjp` with
respect to A, never the parameters). CAM variants are weightings of (A, dy/dA),
so GradCAM++, XGradCAM or LayerCAM are a few lines each.

References:
  Selvaraju et al., "Grad-CAM" (ICCV 2017); paper.md section 2, equations 1-2.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from cam_jax.model import Model, check_images

# (A, dy^c/dA), both (B, h, w, K) -> map before the final ReLU, (B, h, w).
Weighting = Callable[[jax.Array, jax.Array], jax.Array]


def grad_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """GradCAM: alpha_k = mean over pixels of dy/dA^k; map = sum_k alpha_k A^k."""
    alpha = grads.mean(axis=(1, 2))
    return jnp.einsum("bhwk,bk->bhw", a, alpha)


def hires_cam(a: jax.Array, grads: jax.Array) -> jax.Array:
    """HiResCAM: element-wise gradient times activation, summed over channels."""
    return (a * grads).sum(axis=-1)


class Explanation(NamedTuple):
    """What `gradcam` returns for a batch of B images.

    Attributes:
      logits: (B, num_classes) scores before softmax.
      classes: (B,) int32, the class each map explains.
      cam: (B, h, w) raw map I^c >= 0, not normalised (see `normalize`).
    """

    logits: jax.Array
    classes: jax.Array
    cam: jax.Array


def cam_from_features(
    head: Callable[[jax.Array], jax.Array],
    a: jax.Array,
    classes: jax.Array | None = None,
    weighting: Weighting = grad_cam,
) -> Explanation:
    """Explain from a precomputed A: one head forward and one head backward.

    Args:
      head: A -> logits.
      a: (B, h, w, K) last conv map.
      classes: (B,) classes to explain; None explains each image's top class.
      weighting: how (A, dy/dA) become a map.
    """
    logits, head_vjp = jax.vjp(head, a)
    if classes is None:
        classes = jnp.argmax(logits, axis=-1)
    classes = classes.astype(jnp.int32)
    (grads,) = head_vjp(jax.nn.one_hot(classes, logits.shape[-1], dtype=logits.dtype))
    return Explanation(logits, classes, jax.nn.relu(weighting(a, grads)))


@functools.partial(jax.jit, static_argnames="weighting")
def _gradcam(model: Model, images: jax.Array, classes, weighting: Weighting) -> Explanation:
    return cam_from_features(model.head, model.features(images), classes, weighting)


def gradcam(
    model: Model,
    images: jax.Array,
    classes: jax.Array | None = None,
    *,
    weighting: Weighting = grad_cam,
) -> Explanation:
    """GradCAM maps for a batch, checked for bad input, jitted.

    Args:
      model: any `Model` (plain or manipulated).
      images: (B, H, W, 3) float, normalised as in `cam_jax.images`.
      classes: optional (B,) ints; default each image's own argmax.
      weighting: `grad_cam` (default) or another CAM weighting.

    Returns:
      `Explanation` with logits (B, C), classes (B,), raw cam (B, h, w).

    Example:
      >>> expl = gradcam(model, images)
      >>> heat = normalize(expl.cam)   # (B, 14, 14) in [0, 1]
    """
    check_images(images, model.input_size)
    if classes is not None:
        classes = jnp.asarray(classes)
        if classes.shape != (images.shape[0],):
            raise ValueError(f"classes must have shape ({images.shape[0]},) to match the batch, got {classes.shape}")
        if not jnp.issubdtype(classes.dtype, jnp.integer):
            raise TypeError(f"classes must be integers, got {classes.dtype}")
    return _gradcam(model, images, classes, weighting)


def normalize(cam: jax.Array) -> jax.Array:
    """Divide each (h, w) map by its maximum; a map whose maximum is 0 stays 0."""
    peak = cam.max(axis=(-2, -1), keepdims=True)
    return jnp.where(peak > 0, cam / jnp.where(peak > 0, peak, 1), 0)


def upsample(cam: jax.Array, size: int) -> jax.Array:
    """(B, h, w) maps -> (B, size, size), bilinear; for display only, metrics use h x w."""
    return jax.image.resize(cam, (cam.shape[0], size, size), method="bilinear")
