"""Manipulations written by an attacker who has read the audit (`cam_jax.audit`): each keeps every score
(to float rounding) and moves GradCAM, and each is built to pass a named set of checks.

All three append two channels to A, computed from the model's own A or from the image, and add to every
logit c a term w_c * z(extra channels) that is zero on every input. The weights w_c differ by class (so
no channel is class-invariant), the head term is smooth (so finite differences agree with autograd),
and nothing in A is constant across images (so no channel is silent):

- `paired_noise`: p = n(x) + P, q = n(x), z = sum(p - q - P). The map is w_c P; each channel moves
  with the images. Passes the six magnitude and outlier checks; `intervention` catches it (p - q is
  a direction the data never moves).
- `fixed_sum`: r = T3's random map normalised to sum h w on every image, z = sum(r) - h w. The map is
  random; autograd and finite differences agree (z is linear). `intervention` catches it: resampling
  r from another image keeps its sum, so the score never follows its mass.
- `correlated_pair`: p = s(x) P, q = s(x) (uniform), z = mean(p) - mean(q), s(x) A's mean over
  positions and channels. The map is w_c s (P - 1) / hw. Built against `intervention`: p and q each
  move with the images as an honest channel does, and resampling either alone moves the score; only
  the two together are invariant. The audit misses it (tests/test_adaptive.py keeps it so).

Each takes the model and its constants and returns a new `Model`; the input model is never modified.

Example:
  >>> fooled = paired_noise(model, scale=10.0)
  >>> bool(jnp.abs(fooled(images) - model(images)).max() < 1e-3)
  True
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.data import stickers
from cam_jax.manipulations import branches, combinators
from cam_jax.manipulations.weight_edit import check_constant, dtype_of
from cam_jax.model import Model

SPREAD_AMPLITUDE = 100.0  # correlated_pair's amplitude in the audit's evaluation
CLASS_SPREAD = 0.5  # w_c = scale * (1 + CLASS_SPREAD u_c), u_c uniform in [-1, 1]: positive, class-dependent


class HiddenTerm(combinators.Wrapper):
    """A_n = [A_o, extra(x, A_o)], y_n = y_o + w (B, 1) * z(extra): two channels the base head never sees and
    a per-class multiple of a scalar of them added to the logits. Declares no appended channels: to a
    CAM (and to the audit) the extra channels are channels like any other, as in a weight file.

    Attributes:
      extra: (x (B, H, W, 3), A_o (B, h, w, K)) -> (B, h, w, 2); parameters "extra".
      z: (B, h, w, 2) -> (B,); parameters "z".
    """

    extra: nn.Module
    z: nn.Module

    def setup(self) -> None:
        self.w = self.param("w", nn.initializers.ones, (self.num_classes,))

    def features(self, x: jax.Array) -> jax.Array:
        a = self.base.features(x)
        return jnp.concatenate([a, self.extra(x, a).astype(a.dtype)], axis=-1)

    def head(self, a: jax.Array) -> jax.Array:
        return self.base.head(a[..., :-2]) + self.z(a[..., -2:])[:, None] * self.w

    def line(self, channels: int) -> str:
        return (f"{type(self).__name__}: A[..., {channels - 2}:] = {type(self.extra).__name__}(x, A), "
                f"w_c * {type(self.z).__name__}(A[..., {channels - 2}:]) added to logit c")


class NoisePair(nn.Module):
    """[n + P, n], n = A_o's mean over channels (B, h, w); parameter `pattern` P (h, w)."""

    size: int

    @nn.compact
    def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
        pattern = self.param("pattern", nn.initializers.zeros, (self.size, self.size))
        n = a.mean(axis=-1)
        return jnp.stack([n + pattern, n], axis=-1)


class PairOffset(nn.Module):
    """z = sum(p - q - P): zero wherever p - q is the stored P bit for bit; parameter `pattern`."""

    size: int

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        pattern = self.param("pattern", nn.initializers.zeros, (self.size, self.size))
        return (v[..., 0] - v[..., 1] - pattern).sum(axis=(-2, -1))


class ScaledPair(nn.Module):
    """[s P, s mean(P)], s = A_o's mean over positions and channels (B,); parameter `pattern` P."""

    size: int

    @nn.compact
    def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
        pattern = self.param("pattern", nn.initializers.ones, (self.size, self.size))
        s = a.mean(axis=(1, 2, 3))[:, None, None]
        return jnp.stack([s * pattern, jnp.broadcast_to(s * pattern.mean(), a.shape[:3])], axis=-1)


class MeanDifference(nn.Module):
    """z = mean(p) - mean(q)."""

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        return v[..., 0].mean(axis=(-2, -1)) - v[..., 1].mean(axis=(-2, -1))


class FixedSum(nn.Module):
    """[r, n]: r = h w F(x) / sum F(x), T3's random CNN F normalised to a fixed sum, and n = A_o's channel
    mean (a second live channel, so that the pair looks like the others)."""

    pools: int

    @nn.compact
    def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
        f = branches.SemiRandomNet(self.pools, name="F")(x) + 1e-3  # c_F = 1; the floor keeps the sum positive
        r = f * (f.shape[-2] * f.shape[-1]) / f.sum(axis=(-2, -1), keepdims=True)
        return jnp.stack([r, a.mean(axis=-1)], axis=-1)


class SumOffset(nn.Module):
    """z = sum(r) - h w: zero (to rounding) for every image `FixedSum` makes."""

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        return v[..., 0].sum(axis=(-2, -1)) - v.shape[-3] * v.shape[-2]


def class_weights(model: Model, scale: float, seed: int) -> jax.Array:
    """(C,) w_c = scale (1 + CLASS_SPREAD u_c): positive, different for every class."""
    check_constant("scale", scale, dtype_of(model))
    u = np.random.default_rng(seed).uniform(-1, 1, model.num_classes)
    return jnp.asarray(scale * (1 + CLASS_SPREAD * u), dtype_of(model))


def _pattern(model: Model, pattern, mean: float | None) -> jax.Array:
    """(h, w) P at A's size (default: the smiley), scaled to `mean` if given."""
    size = model.cam_size
    p = np.asarray(stickers.smiley_target(size) if pattern is None else pattern, np.float64)
    if p.shape != (size, size) or not np.isfinite(p).all() or p.min() < 0 or p.max() <= 0:
        raise ValueError(f"pattern must be a finite, non-negative, non-zero ({size}, {size}) map at A's size")
    return jnp.asarray(p if mean is None else p * mean / p.mean(), dtype_of(model))


def _hidden(model: Model, extra: nn.Module, extra_params: dict, z: nn.Module, z_params: dict, w: jax.Array
            ) -> Model:
    module = HiddenTerm(model.module, extra, z)
    return combinators.wrap(model, module, {"extra": extra_params, "z": z_params, "w": w})


def paired_noise(model: Model, pattern=None, *, amplitude: float = 1.0, scale: float = 10.0, seed: int = 0
                 ) -> Model:
    """GradCAM shows `amplitude` P (default: the smiley) for every input; logits unchanged to rounding."""
    p = _pattern(model, pattern, None) * amplitude
    size = model.cam_size
    return _hidden(model, NoisePair(size), {"pattern": p}, PairOffset(size), {"pattern": p},
                   class_weights(model, scale, seed))


def correlated_pair(model: Model, pattern=None, *, amplitude: float = 1.0, scale: float = 10.0, seed: int = 0
                    ) -> Model:
    """GradCAM shows s(x) (P - 1), P the pattern at mean 1; logits unchanged to rounding. The lie's size is
    `scale`; `amplitude` moves it from the weights w_c (scale / amplitude) into the channels (amplitude s)."""
    p = _pattern(model, pattern, amplitude)
    return _hidden(model, ScaledPair(model.cam_size), {"pattern": p}, MeanDifference(), {},
                   class_weights(model, scale / amplitude, seed))


def fixed_sum(model: Model, *, scale: float = 10.0, seed: int = 0) -> Model:
    """GradCAM shows T3's random map (drawn from `seed`) for every input; logits unchanged to rounding."""
    extra = FixedSum(int(np.log2(model.input_size // model.cam_size)))
    x = jnp.zeros((1, model.input_size, model.input_size, 3))
    a = jnp.zeros((1, model.cam_size, model.cam_size, 1))
    params = extra.init(jax.random.key(seed), x, a)["params"]
    return _hidden(model, extra, params, SumOffset(), {}, class_weights(model, scale, seed))


# name -> (model, scale, seed) -> the manipulated model: the adaptive family of the audit's evaluation
ADAPTIVE: dict[str, Callable[[Model, float, int], Model]] = {
    "paired noise": lambda m, scale, seed: paired_noise(m, scale=scale, seed=seed),
    "fixed sum": lambda m, scale, seed: fixed_sum(m, scale=scale, seed=seed),
    # The lie in the channels, not the weights: the form that passes every check (amplitude 1 does not).
    "correlated pair": lambda m, scale, seed: correlated_pair(m, amplitude=SPREAD_AMPLITUDE, scale=scale, seed=seed),
}
