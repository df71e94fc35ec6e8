"""β-smoothing: a model whose every ReLU keeps its value but takes softplus_β's derivative, sigmoid(β z).

Dombrowski et al. show that manipulated explanations exploit the curvature of ReLU networks and that
replacing the ReLU's derivative by a smooth one (zennit's `BetaSmooth`, β = 10) makes them harder to
move. `beta_smooth` does it for any `Model` without knowing its code: it traces the model's functions
to a jaxpr and evaluates it again with every `max(z, 0)` (what `jax.nn.relu` and `jnp.maximum(z, 0)`
lower to) given the smooth derivative; the values, and so the logits, are the model's bit for bit.
Max-pooling is a reduction, not `max(z, 0)`, and keeps its own derivative.

References:
  Dombrowski et al., "Explanations can be manipulated and geometry is to blame" (NeurIPS 2019).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from cam_jax.model import Model

BETA = 10.0  # zennit's BetaSmooth default


@jax.custom_jvp
def _relu(z: jax.Array, beta: float) -> jax.Array:
    return jnp.maximum(z, 0)


@_relu.defjvp
def _relu_jvp(primals, tangents):
    z, beta = primals
    dz, _ = tangents
    return jnp.maximum(z, 0), dz * jax.nn.sigmoid(beta * z)


def _is_relu(eqn: jcore.JaxprEqn) -> bool:
    """`max(z, 0)` with a literal 0 on either side."""
    if eqn.primitive.name != "max":
        return False
    return any(isinstance(v, jcore.Literal) and np.ndim(v.val) == 0 and v.val == 0 for v in eqn.invars)


def _has_relu(jaxpr: jcore.Jaxpr) -> bool:
    return any(_is_relu(e) or any(_has_relu(j) for j in jcore.jaxprs_in_params(e.params)) for e in jaxpr.eqns)


def _evaluate(jaxpr: jcore.Jaxpr, consts: list, args: list, beta: float) -> list:
    """`jaxpr` applied to `args`, every `max(z, 0)` given the smooth derivative; calls (jit, custom-jvp
    functions such as `jax.nn.relu`) are inlined where they hold a ReLU, the rest bound as they are."""
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        inner = list(jcore.jaxprs_in_params(eqn.params))
        if _is_relu(eqn):
            z = next(x for v, x in zip(eqn.invars, ins, strict=True) if not isinstance(v, jcore.Literal))
            outs = [_relu(jnp.broadcast_to(z, eqn.outvars[0].aval.shape), beta)]
        elif inner and any(_has_relu(j) for j in inner):
            if eqn.primitive.name not in ("jit", "pjit", "custom_jvp_call", "closed_call", "core_call"):
                raise ValueError(f"β-smoothing cannot reach the ReLUs inside a {eqn.primitive.name} "
                                 "(only those in plain code, jit and custom-jvp functions)")
            closed = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
            if isinstance(closed, jcore.ClosedJaxpr):
                outs = _evaluate(closed.jaxpr, list(closed.consts), ins, beta)
            else:
                outs = _evaluate(closed, [], ins, beta)
        else:
            outs = eqn.primitive.bind(*ins, **eqn.primitive.get_bind_params(eqn.params))
            outs = outs if eqn.primitive.multiple_results else [outs]
        for v, x in zip(eqn.outvars, outs, strict=True):
            if not isinstance(v, jcore.DropVar):
                env[v] = x
    return [read(v) for v in jaxpr.outvars]


def smoothed(fn: Callable[..., Any], beta: float = BETA) -> Callable[..., Any]:
    """`fn` (arrays and pytrees of arrays in and out) with every ReLU's derivative sigmoid(β z).

    Example:
      >>> f = smoothed(jax.nn.relu, beta=10.0)
      >>> float(f(jnp.float32(0.5))), float(jax.grad(f)(jnp.float32(0.0)))
      (0.5, 0.5)
    """
    def run(*args):
        flat, tree = jax.tree.flatten(args)
        closed, out_shape = jax.make_jaxpr(lambda *flat: fn(*jax.tree.unflatten(tree, flat)), return_shape=True)(
            *flat)
        outs = _evaluate(closed.jaxpr, list(closed.consts), flat, beta)
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return run


@dataclasses.dataclass(frozen=True)
class Smoothed:
    """A module as `Model` calls it (`apply`, the shape attributes), every ReLU β-smoothed: the values of
    `base`, the derivatives of its softplus_β relative."""

    base: Any
    beta: float

    input_size = property(lambda self: self.base.input_size)
    cam_size = property(lambda self: self.base.cam_size)
    num_classes = property(lambda self: self.base.num_classes)
    appended = property(lambda self: getattr(self.base, "appended", 0))

    def apply(self, variables: dict, *args: Any, method: str | None = None, **kwargs: Any) -> Any:
        return smoothed(lambda v, *a: self.base.apply(v, *a, method=method, **kwargs), self.beta)(variables, *args)

    def describe(self, channels: int) -> tuple[str, ...]:
        inner = getattr(self.base, "describe", None)
        return (f"β-smoothed ReLU derivatives (β = {self.beta:g})", *(inner(channels) if inner else ()))


def beta_smooth(model: Model, beta: float = BETA) -> Model:
    """`model` with every ReLU's derivative replaced by sigmoid(β z): the same logits, smoother gradients.

    Args:
      beta: > 0; larger is closer to the ReLU (the derivative's width is about 1/β in the units of z).

    Example:
      >>> smooth = beta_smooth(model, beta=5.0)
      >>> smooth.module.beta, smooth.input_size == model.input_size
      (5.0, True)
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta < float("inf"):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    return model.replace(module=Smoothed(model.module, float(beta)))
