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

from cam_jax.cams.targets import Target, logit
from cam_jax.cams.weightings import Weighting, apply, grad_cam
from cam_jax.model import Model, check_classes, check_images


class Explanation(NamedTuple):
    """What an explanation method returns for a batch of B images.

    Attributes:
      logits: (B, num_classes) scores before softmax.
      classes: (B,) int32, the class each map explains.
      cam: (B, h, w) raw map, not normalised (see `normalize`): >= 0 for the CAM
        methods (at A's resolution), the attribution summed over colour channels for
        the input-space methods (at the image's).
      attribution: (B, H, W, 3) input-space attribution, or None for CAM methods.
      delta: (B,) Integrated Gradients' completeness residual sum(attribution) -
        (S(x) - S(baseline)) (captum's convergence delta), else None.
    """

    logits: jax.Array
    classes: jax.Array
    cam: jax.Array
    attribution: jax.Array | None = None
    delta: jax.Array | None = None


def gradients_at_features(
    head: Callable[[jax.Array], jax.Array],
    a: jax.Array,
    classes: jax.Array | None = None,
    target: Target = logit,
    contrast: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One head forward and one head backward: (logits (B, C), classes (B,), dS/dA (B, h, w, K)).

    S is `target` of each image's logits for its class (default: its top class).
    """
    logits, head_vjp = jax.vjp(head, a)
    classes, dy = score_cotangent(logits, classes, target, contrast)
    (grads,) = head_vjp(dy)
    return logits, classes, grads


def score_cotangent(logits: jax.Array, classes: jax.Array | None = None, target: Target = logit,
                    contrast: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(classes (B,) int32, dS/dlogits (B, C)): what the head's backward pass starts from.

    `classes` None explains each image's top class.
    """
    classes = (jnp.argmax(logits, axis=-1) if classes is None else classes).astype(jnp.int32)
    _, score_vjp = jax.vjp(lambda y: target(y, classes, contrast), logits)
    (dy,) = score_vjp(jnp.ones(logits.shape[:1], logits.dtype))
    return classes, dy


def cam_from_features(
    head: Callable[[jax.Array], jax.Array],
    a: jax.Array,
    classes: jax.Array | None = None,
    weighting: Weighting = grad_cam,
    target: Target = logit,
    contrast: jax.Array | None = None,
    appended: int = 0,
) -> Explanation:
    """Explain from a precomputed A: one head forward and one head backward.

    Args:
      head: A -> logits.
      a: (B, h, w, K) last conv map.
      classes: (B,) classes to explain; None explains each image's top class.
      weighting: how (A, dS/dA) become a map.
      target: what is differentiated (`cam_jax.cams.targets`; the class logit by default).
      contrast: (B,) second classes, for the "contrast" target.
      appended: channels a manipulation appended to A (`Model.appended`), weighed as a block
        of their own (`weightings.apply`).
    """
    logits, classes, grads = gradients_at_features(head, a, classes, target, contrast)
    return Explanation(logits, classes, jax.nn.relu(apply(weighting, a, grads, appended)))


def cams_from_features(
    head: Callable[[jax.Array], jax.Array],
    a: jax.Array,
    weightings: dict[str, Weighting],
    classes: jax.Array | None = None,
    target: Target = logit,
    contrast: jax.Array | None = None,
    appended: int = 0,
) -> dict[str, Explanation]:
    """Several weightings from one head forward and one head backward: {name: Explanation}."""
    logits, classes, grads = gradients_at_features(head, a, classes, target, contrast)
    return {name: Explanation(logits, classes, jax.nn.relu(apply(w, a, grads, appended)))
            for name, w in weightings.items()}


@functools.partial(jax.jit, static_argnames="weighting")
def _gradcam(model: Model, images: jax.Array, classes, weighting: Weighting) -> Explanation:
    return cam_from_features(model.head, model.features(images), classes, weighting, appended=model.appended)


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
    return _gradcam(model, images, check_classes(classes, images.shape[0], model.num_classes), weighting)
