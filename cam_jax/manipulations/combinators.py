"""Branch combinators: small modules that wrap a model's module and add one path.

Each wraps `base` (any module with `features`/`head`) and keeps that interface, so every
explanation works on the result unchanged and wrappers nest. `wrap` and `unwrap` own the
parameter nesting: a wrapper's variables are `{"base": <base's>, <its own>...}`, every
collection nested the same way, and the base's tree is reused as it is, never copied.

A wrapper answers for itself what other packages need to know about it (the optional
methods of the `Model` protocol): `split` (T3, T4 and the exact T1/T2 are a base plus a
branch), `describe` (a line per wrapper) and `stock` (its weight edits merged).

References:
  paper.md section 3 and Figure 2 (the branches of T2-T4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cam_jax.model import Model, encode_of, head_of

BASE = "base"  # where a wrapper keeps its base's variables


def wrap(base: Model, module: nn.Module, params: dict[str, Any]) -> Model:
    """`base` wrapped by `module` (whose `base` field is `base.module`): the base's variables nest under
    "base", every collection alike, beside the wrapper's own `params`."""
    collections = {key: {BASE: value} for key, value in base.collections.items()}
    return base.replace(module=module, params={BASE: base.params, **params}, collections=collections)


def unwrap(variables: dict[str, Any]) -> dict[str, Any]:
    """A wrapper's variables -> its base's (the inverse of `wrap`'s nesting)."""
    return {key: value[BASE] for key, value in variables.items()}


def base_of(model: Model) -> Model:
    """The model a wrapped `model` wraps."""
    variables = unwrap(model.variables)
    return model.replace(module=model.module.base, params=variables.pop("params"), collections=variables)


class Wrapper(nn.Module):
    """Base class: delegates the shape attributes of the wrapped module and answers the protocol's
    `describe` and `stock` by adding its own part to its base's.

    A subclass writes its A from its base's (`extend(x, a)`) and its `head(a, context)` over its base's
    (`base_head`); the base's context, if it has one (a ViT's class token), passes through unchanged.
    """

    base: nn.Module

    @property
    def input_size(self) -> int:
        return self.base.input_size

    @property
    def cam_size(self) -> int:
        return self.base.cam_size

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    @property
    def appended(self) -> int:
        return getattr(self.base, "appended", 0)

    def extend(self, x: jax.Array, a: jax.Array) -> jax.Array:
        """This wrapper's A from the images x (B, H, W, 3) and its base's A (B, h, w, K): the base's here."""
        return a

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        a, context = encode_of(self.base, x)
        return self.extend(x, a), context

    def features(self, x: jax.Array) -> jax.Array:
        return self.encode(x)[0]

    def base_head(self, a: jax.Array, context: jax.Array | None) -> jax.Array:
        """The base's logits from its A and its context."""
        return head_of(self.base, a, context)

    def head(self, a: jax.Array, context: jax.Array | None = None) -> jax.Array:
        return self.base_head(a, context)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(*self.encode(x))

    def line(self, channels: int) -> str:
        """What this wrapper does, for a model whose A has `channels` channels."""
        return type(self).__name__

    def base_channels(self, channels: int) -> int:
        """The channels of the base's A, when this wrapper's A has `channels`."""
        return channels - (self.appended - getattr(self.base, "appended", 0))

    def describe(self, channels: int) -> tuple[str, ...]:
        """One line per wrapper, outermost first (`Model.describe`)."""
        inner = getattr(self.base, "describe", None)
        return (self.line(channels), *(inner(self.base_channels(channels)) if inner else ()))

    def stock(self, params: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
        """This wrapper over its base's stock form (`Model.stock`)."""
        inner = getattr(self.base, "stock", None)
        if inner is None:
            return self, params
        module, base_params = inner(params[BASE])
        return self.clone(base=module), {**params, BASE: base_params}


class AppendedBranch(Wrapper):
    """A_n = [A_o, branch(x)], y_n = y_o + g(A_n^{K+1}): a (K+1)th channel that the base head never sees,
    and a scalar of it added to every logit (T3, T4 and the exact T1/T2).

    Equivalent to the paper's zero filter with W_n = 0, but the original conv and first FC layer keep
    their shapes, so their results are bit-identical.

    Attributes:
      branch: x (B, H, W, 3) -> (B, h, w) map; parameters "branch".
      g: (B, h, w) -> (B,) scalar per image; parameters "g".
    """

    branch: nn.Module
    g: nn.Module

    @property
    def appended(self) -> int:
        return getattr(self.base, "appended", 0) + 1

    def extend(self, x: jax.Array, a: jax.Array) -> jax.Array:
        return jnp.concatenate([a, self.branch(x)[..., None]], axis=-1)

    def head(self, a: jax.Array, context: jax.Array | None = None) -> jax.Array:
        return self.base_head(a[..., :-1], context) + self.g(a[..., -1])[:, None]

    def split(self, variables: dict[str, Any]) -> tuple[nn.Module, dict[str, Any], Callable, Callable]:
        """(base module, base variables, branch, g) (`Model.split`)."""
        params = variables["params"]

        def branch(x):
            return self.branch.apply({"params": params["branch"]}, x)

        def g(v):
            return self.g.apply({"params": params["g"]}, v)

        return self.base, unwrap(variables), branch, g

    def line(self, channels: int) -> str:
        k = channels - 1
        return (f"{type(self).__name__}: A[..., {k}] = {type(self.branch).__name__}(x), "
                f"g = {type(self.g).__name__}(A[..., {k}]) added to every logit")


class AddToChannel(Wrapper):
    """A_n^{K+1} = A_o^{K+1} + branch(x): adds a map to the last channel (T2).

    Attributes:
      branch: x (B, H, W, 3) -> (B, h, w) map; parameters "branch".
    """

    branch: nn.Module

    def extend(self, x: jax.Array, a: jax.Array) -> jax.Array:
        return a.at[..., -1].add(self.branch(x).astype(a.dtype))

    def line(self, channels: int) -> str:
        return f"{type(self).__name__}: A[..., {channels - 1}] += {type(self.branch).__name__}(x)"


# Constants live in the parameter tree, not in module fields, so that new constants
# reuse the compiled function instead of recompiling it.


class ModuloShift(nn.Module):
    """G(v) = eps * mod(c_G * sum(v), 1): |G| < eps, dG/dv = eps * c_G (paper, T3).

    Parameters: scalars `eps`, `c_G`. In float32, once c_G * sum(v) exceeds 2**24
    the mod is exactly 0, while the gradient jnp.mod passes back is still 1.
    """

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        eps = self.param("eps", nn.initializers.constant(0.01), ())
        c_g = self.param("c_G", nn.initializers.constant(1e4), ())
        return eps * jnp.mod(c_g * v.sum(axis=(-2, -1)), 1.0)


class OffsetSum(nn.Module):
    """g(v) = scale * sum(v - reference): exactly 0 when v is the reference map
    bit for bit, gradient `scale` at every pixel. Used by the exact T1/T2 variants.

    Parameters: scalar `scale`, (size, size) `reference`.
    """

    size: int

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, ())
        reference = self.param("reference", nn.initializers.zeros, (self.size, self.size))
        return scale * (v - reference).sum(axis=(-2, -1))
