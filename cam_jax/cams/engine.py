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
from cam_jax.cams.weightings import Weighting, apply, channel_blocks, grad_cam
from cam_jax.manipulations.combinators import logit_branch
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


# dS/dlogits (B, C) -> dS/dA as blocks of channels, each (B, h, w, K_i), in A's channel order.
Backward = Callable[[jax.Array], tuple[jax.Array, ...]]


def backward_of(head: Callable[[jax.Array], jax.Array], a: jax.Array, appended: int = 0
                ) -> tuple[jax.Array, Backward]:
    """(logits (B, C), the head's backward): one head forward; the last `appended` channels of A
    (a manipulation's) come back as a block of their own."""
    logits, head_vjp = jax.vjp(head, a)
    return logits, lambda dy: channel_blocks(head_vjp(dy)[0], appended)


def head_backward(model: Model, a: jax.Array) -> tuple[jax.Array, Backward]:
    """(logits (B, C), backward) of `model`'s head at A (B, h, w, K).

    A model that extends a base by an appended channel and a logit branch (T3, T4, the exact T1/T2;
    `combinators.logit_branch`) is differentiated as what it is: the base's own head and backward,
    plus the branch's. The base's block of dS/dA is then computed by the very expression that
    explains the base, not sliced out of a larger program XLA may simplify differently.
    """
    parts = logit_branch(model)
    if parts is None:
        return backward_of(model.head, a, model.appended)
    base, _, g = parts
    logits, base_backward = head_backward(base, a[..., :-1])
    shift, g_vjp = jax.vjp(g, a[..., -1])

    def backward(dy):  # every logit moves by g: dS/dA^{K+1} = sum_c dS/dy_c dg/dA^{K+1}
        return (*base_backward(dy), g_vjp(dy.sum(-1))[0][..., None])

    return logits + shift[:, None], backward


def score_cotangent(logits: jax.Array, classes: jax.Array | None = None, target: Target = logit,
                    contrast: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(classes (B,) int32, dS/dlogits (B, C)): what the head's backward pass starts from.

    `classes` None explains each image's top class.
    """
    classes = (jnp.argmax(logits, axis=-1) if classes is None else classes).astype(jnp.int32)
    _, score_vjp = jax.vjp(lambda y: target(y, classes, contrast), logits)
    (dy,) = score_vjp(jnp.ones(logits.shape[:1], logits.dtype))
    return classes, dy


def cams_from_backward(
    logits: jax.Array,
    backward: Backward,
    a: jax.Array,
    weightings: dict[str, Weighting],
    classes: jax.Array | None = None,
    target: Target = logit,
    contrast: jax.Array | None = None,
) -> dict[str, Explanation]:
    """Several weightings from one head backward: {name: Explanation}.

    Args:
      logits, backward: from `head_backward` or `backward_of`.
      a: (B, h, w, K) last conv map.
      weightings: {name: how (A, dS/dA) become a map}.
      classes: (B,) classes to explain; None explains each image's top class.
      target: what is differentiated (`cam_jax.cams.targets`; the class logit by default).
      contrast: (B,) second classes, for the "contrast" target.
    """
    classes, dy = score_cotangent(logits, classes, target, contrast)
    grads = backward(dy)
    return {name: Explanation(logits, classes, jax.nn.relu(apply(w, a, grads))) for name, w in weightings.items()}


def cams_from_features(
    head: Callable[[jax.Array], jax.Array],
    a: jax.Array,
    weightings: dict[str, Weighting],
    classes: jax.Array | None = None,
    target: Target = logit,
    contrast: jax.Array | None = None,
    appended: int = 0,
) -> dict[str, Explanation]:
    """Several weightings from a precomputed A, one head forward and one head backward (see
    `cams_from_backward`); `appended`: channels a manipulation appended to A, a block of their own."""
    return cams_from_backward(*backward_of(head, a, appended), a, weightings, classes, target, contrast)


def cam_from_features(
    head: Callable[[jax.Array], jax.Array],
    a: jax.Array,
    classes: jax.Array | None = None,
    weighting: Weighting = grad_cam,
    target: Target = logit,
    contrast: jax.Array | None = None,
    appended: int = 0,
) -> Explanation:
    """One weighting from a precomputed A (`cams_from_features`); head: A (B, h, w, K) -> logits."""
    return cams_from_features(head, a, {"map": weighting}, classes, target, contrast, appended)["map"]


@functools.partial(jax.jit, static_argnames="weighting")
def _gradcam(model: Model, images: jax.Array, classes, weighting: Weighting) -> Explanation:
    a = model.features(images)
    return cams_from_backward(*head_backward(model, a), a, {"map": weighting}, classes)["map"]


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
