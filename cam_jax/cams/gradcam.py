"""The explanation engine: GradCAM as a pure, jitted, batched function of a model and images.

The forward pass runs once; only the head is differentiated (`jax.vjp` with
respect to A, never the parameters). CAM variants are weightings of (A, dy/dA)
(`cam_jax.cams.weightings`), so GradCAM++, XGradCAM or LayerCAM are a few lines each.

References:
  Selvaraju et al., "Grad-CAM" (ICCV 2017); paper.md section 2, equations 1-2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from cam_jax.cams.weightings import Weighting, grad_cam
from cam_jax.model import Model, check_images


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
      >>> from cam_jax.cams.maps import normalize
      >>> expl = gradcam(model, images)          # the bundled default, generated images
      >>> heat = normalize(expl.cam)             # (B, 14, 14) in [0, 1]
      >>> heat.shape, float(heat.max())
      ((2, 14, 14), 1.0)
    """
    check_images(images, model.input_size)
    if classes is not None:
        classes = jnp.asarray(classes)
        if classes.shape != (images.shape[0],):
            raise ValueError(f"classes must have shape ({images.shape[0]},) to match the batch, got {classes.shape}")
        if not jnp.issubdtype(classes.dtype, jnp.integer):
            raise TypeError(f"classes must be integers, got {classes.dtype}")
    return _gradcam(model, images, classes, weighting)
