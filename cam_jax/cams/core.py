"""The one gradient pass every explanation, the evaluation, the fine-tuning attacks and the audit share.

The forward pass runs once; only the head is differentiated (`jax.vjp` with respect to A, never the
parameters). dS/dA comes back as blocks of channels: a wrapper's appended channels (`Model.appended`)
are a block of their own, and a model that splits into a base and a branch (`Model.split`) is
differentiated as what it is, the base's own head and backward plus the branch's (`extend`), so the
base's block is computed by the very expression that explains the base.

References:
  Selvaraju et al., "Grad-CAM" (ICCV 2017); paper.md section 2, equations 1-2.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from cam_jax.cams.targets import Target, logit
from cam_jax.cams.weightings import channel_blocks
from cam_jax.model import Model

# dS/dlogits (B, C) -> dS/dA as blocks of channels, each (B, h, w, K_i), in A's channel order.
Backward = Callable[[jax.Array], tuple[jax.Array, ...]]


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


class Pass(NamedTuple):
    """One head forward at A and its backward: A (B, h, w, K), logits (B, C), `Backward`, and the context
    the head read besides A (`Model.encode`; None for a CNN)."""

    a: jax.Array
    logits: jax.Array
    backward: Backward
    context: jax.Array | None = None


class Gradients(NamedTuple):
    """What the gradient-weighted CAMs read: A (B, h, w, K), logits (B, C), the classes explained (B,),
    dS/dA as blocks of channels (`Backward`) and the head's context (`Model.encode`; None for a CNN)."""

    a: jax.Array
    logits: jax.Array
    classes: jax.Array
    grads: tuple[jax.Array, ...]
    context: jax.Array | None = None


def opaque_pass(head: Callable[..., jax.Array], a: jax.Array, appended: int = 0,
                context: jax.Array | None = None) -> Pass:
    """`head` at A as one function, whatever built it; the last `appended` channels a block of their own.
    A `context` is passed to `head` after A and held fixed (only A is differentiated)."""
    logits, head_vjp = jax.vjp(head if context is None else (lambda a: head(a, context)), a)
    return Pass(a, logits, lambda dy: channel_blocks(head_vjp(dy)[0], appended), context)


def extend(base: Pass, g: Callable[[jax.Array], jax.Array], s: jax.Array) -> Pass:
    """The pass of a model that extends `base`'s by a channel s (B, h, w) and g(s) added to every logit:
    A = [A_base, s], y = y_base + g(s), dS/ds = sum_c dS/dy_c dg/ds."""
    shift, g_vjp = jax.vjp(g, s)

    def backward(dy):
        return (*base.backward(dy), g_vjp(dy.sum(-1))[0][..., None])

    return Pass(jnp.concatenate([base.a, s[..., None]], -1), base.logits + shift[:, None], backward, base.context)


def head_pass(model: Model, a: jax.Array, context: jax.Array | None = None) -> Pass:
    """`model`'s head at A (B, h, w, K) (and its `context`, from `Model.encode`) and its backward; a model
    that splits (`Model.split`) is its base's pass extended by its branch."""
    parts = model.split()
    if parts is None:
        return opaque_pass(model.head, a, model.appended, context)
    return extend(head_pass(parts.base, a[..., :-1], context), parts.g, a[..., -1])


def relative(backward: Backward, dy_ref: jax.Array, grads_ref: tuple[jax.Array, ...]) -> Backward:
    """`backward` as grads_ref + backward(dy - dy_ref): the same in exact arithmetic, and grads_ref bit for
    bit wherever dy is dy_ref (the second backward then gets exact zeros)."""
    return lambda dy: tuple(map(operator.add, grads_ref, backward(dy - dy_ref)))


def cotangent(logits: jax.Array, classes: jax.Array | None = None, target: Target = logit
              ) -> tuple[jax.Array, jax.Array]:
    """(classes (B,) int32, dS/dlogits (B, C)): what the head's backward pass starts from.

    `classes` None explains each image's top class.
    """
    classes = (jnp.argmax(logits, axis=-1) if classes is None else classes).astype(jnp.int32)
    _, score_vjp = jax.vjp(lambda y: target(y, classes), logits)
    (dy,) = score_vjp(jnp.ones(logits.shape[:1], logits.dtype))
    return classes, dy


def gradients(model: Model, x: jax.Array, classes: jax.Array | None = None, target: Target = logit,
              opaque: bool = False) -> Gradients:
    """One forward, one head backward: A, the logits, the classes and dS/dA for images x (B, H, W, 3).

    Args:
      classes: (B,) classes to explain; None explains each image's top class.
      target: what is differentiated (`cam_jax.cams.targets`; the class logit by default).
      opaque: differentiate the head as one function whatever built it (one block of channels), as an
        auditor who cannot trust a model's structure does.
    """
    a, context = model.encode(x)
    run = opaque_pass(model.head, a, 0, context) if opaque else head_pass(model, a, context)
    classes, dy = cotangent(run.logits, classes, target)
    return Gradients(a, run.logits, classes, run.backward(dy), context)
