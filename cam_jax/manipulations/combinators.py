"""Branch combinators: small modules that wrap a model's module and add one path.

Each wraps `base` (any module with `features`/`head`) and keeps that interface,
so GradCAM explains the result unchanged and wrappers nest. The parameters of
a wrapper are `{"base": <base params>, <branch name>: <branch params>}`; the
base's own parameter tree is reused as it is, never copied or modified.

References:
  paper.md section 3 and Figure 2 (the branches of T2-T4).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from cam_jax.model import Model


class Wrapper(nn.Module):
    """Base class: delegates the shape attributes of the wrapped module."""

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

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


class AppendChannel(Wrapper):
    """A_n = [A_o, branch(x)]: a (K+1)th channel that does not reach the base head.

    Equivalent to the paper's zero filter with W_n = 0, but the original conv
    and first FC layer keep their shapes, so their results are bit-identical.

    Attributes:
      branch: x (B, H, W, 3) -> (B, h, w) map.
    """

    branch: nn.Module

    @property
    def appended(self) -> int:
        return getattr(self.base, "appended", 0) + 1

    def features(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([self.base.features(x), self.branch(x)[..., None]], axis=-1)

    def head(self, a: jax.Array) -> jax.Array:
        return self.base.head(a[..., :-1])


class AddToChannel(Wrapper):
    """A_n^{K+1} = A_o^{K+1} + branch(x): adds a map to the last channel (T2).

    Attributes:
      branch: x (B, H, W, 3) -> (B, h, w) map.
    """

    branch: nn.Module

    def features(self, x: jax.Array) -> jax.Array:
        a = self.base.features(x)
        return a.at[..., -1].add(self.branch(x).astype(a.dtype))

    def head(self, a: jax.Array) -> jax.Array:
        return self.base.head(a)


class LogitBranch(Wrapper):
    """y_n = y_o + 1 g(A^{K+1}): a scalar of the last channel added to every logit.

    Attributes:
      g: (B, h, w) -> (B,) scalar per image.
    """

    g: nn.Module

    def features(self, x: jax.Array) -> jax.Array:
        return self.base.features(x)

    def head(self, a: jax.Array) -> jax.Array:
        return self.base.head(a) + self.g(a[..., -1])[:, None]


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


def logit_branch(model: Model):
    """(base `Model`, branch x -> (B, h, w), g (B, h, w) -> (B,)) when `model.module` is
    LogitBranch(AppendChannel(base, branch), g) (T3, T4, the exact T1/T2); else None.

    Such a model's A is [A_base, branch(x)] and its logits y_base + g(branch(x)): an explanation can
    take the base's head and backward as they are and add the branch's.
    """
    module, params = model.module, model.params
    if not (isinstance(module, LogitBranch) and isinstance(module.base, AppendChannel)):
        return None
    inner = params["base"]

    def branch(x):
        return module.base.branch.apply({"params": inner["branch"]}, x)

    def g(v):
        return module.g.apply({"params": params["g"]}, v)

    # Wrapping nests every collection under "base" (`paper._wrap`), once per combinator.
    collections = {key: value["base"]["base"] for key, value in model.collections.items()}
    return model.replace(module=module.base.base, params=inner["base"], collections=collections), branch, g


def branch_of(model: Model, original: Model):
    """(branch, g) of `logit_branch` when its base is `original` itself (the same module and the same
    params object): an evaluation can reuse the original's forward and head; else None."""
    parts = logit_branch(model)
    if parts is None or parts[0].module != original.module or parts[0].params is not original.params:
        return None
    return parts[1:]
