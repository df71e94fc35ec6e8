"""Manipulations written by an attacker who has read the audit (`cam_jax.audit`): each keeps every score
(to float rounding), moves GradCAM, and passes the six checks on magnitudes, outliers, class invariance
and finite differences. Each is a pure `Model -> Model` with its constants as keywords.

Most append channels to A, computed from the model's own A or from the image, and add to every logit
c a term w_c z(extra channels) that is zero on every input (`HiddenTerm`). The weights w_c differ by
class (no channel is class-invariant), z is smooth (finite differences agree with autograd), and no
appended channel is constant across images:

- `paired_noise`: p = n(x) + P, q = n(x), z = sum(p - q - P); the map is w_c P. Caught by the
  intervention check (p - q is a direction the data never moves).
- `fixed_sum`: r = T3's random map normalised to sum h w, z = sum(r) - h w. Caught: resampling r from
  another image keeps its sum, so the score never follows its mass.
- `correlated_pair`: p = s(x) P, q = s(x) mean(P), z = mean(p) - mean(q). Each channel alone moves the
  score; caught by the "sums" directions (p - q's sum is the same on every image).
- `curved_pair`: q = s(x)^2 instead: no linear relation between the sums. Walks past the audit.
- `shielded_sum`: `fixed_sum` plus a term that is zero with zero gradient on the data and large along
  any intervention that leaves it. Walks past.
- `spike`: `paired_noise` with a one-pixel pattern: little mass, but the map's maximum. Walks past.
- `position_scale`: A scaled per position and the head undoing it; no appended channel, the function
  bit for bit the same, GradCAM not invariant to it. Walks past.
- `still_padding`: channels the head ignores whose sums barely move, to set the intervention check's
  bound; the audit refuses such image sets.
- `common_logit`: one vector added to every row of a VGG's last layer. No prediction and no probability
  changes, and every class's GradCAM takes that vector's map. Walks past the checks above (none reads
  the softmax's invariance); reference mode, which reads the logits less their mean, catches it.
- `spread_term`: no channel appended, a weight edit of a VGG's fc1, so a version of the model that
  reference mode (`audit.REFERENCE_CHECKS`) compares with the original. Walks past its deletion and shift
  checks (below); its locality check catches it: the function changed within images, hardly between them.
- `class_temperature`: fc3's rows scaled by class, on top of `spread_term`: the function now changes
  between images too, and the three reference checks pass it, for 3 points of the default's accuracy.
`ADAPTIVE` holds the ones with a size to draw, for `scripts/audit_eval.py`'s adaptive family.
`tests/test_audit.py` keeps each as caught, missed or refused.

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

from cam_jax.data import images, shapes, stickers
from cam_jax.manipulations import branches, combinators, paper
from cam_jax.manipulations.weight_edit import check_constant, dtype_of
from cam_jax.model import Model
from cam_jax.models.vgg import VGG

SPREAD_AMPLITUDE = 100.0  # correlated_pair's amplitude in the audit's evaluation
CLASS_SPREAD = 0.5  # w_c = scale * (1 + CLASS_SPREAD u_c), u_c uniform in [-1, 1]: positive, class-dependent


class HiddenTerm(combinators.Wrapper):
    """A_n = [A_o, extra(x, A_o)], y_n = y_o + w (B, 1) * z(extra): channels the base head never sees and
    a per-class multiple of a scalar of them added to the logits. Declares no appended channels: to a
    CAM (and to the audit) the extra channels are channels like any other, as in a weight file.

    Attributes:
      extra: (x (B, H, W, 3), A_o (B, h, w, K)) -> (B, h, w, 2); parameters "extra".
      z: (B, h, w, 2) -> (B,); parameters "z".
    """

    extra: nn.Module
    z: nn.Module
    channels: int = 2

    def setup(self) -> None:
        self.w = self.param("w", nn.initializers.ones, (self.num_classes,))

    def extend(self, x: jax.Array, a: jax.Array) -> jax.Array:
        return jnp.concatenate([a, self.extra(x, a).astype(a.dtype)], axis=-1)

    def head(self, a: jax.Array, context: jax.Array | None = None) -> jax.Array:
        return self.base_head(a[..., :-self.channels], context) + self.z(a[..., -self.channels:])[:, None] * self.w

    def line(self, channels: int) -> str:
        first = channels - self.channels
        return (f"{type(self).__name__}: A[..., {first}:] = {type(self.extra).__name__}(x, A), "
                f"w_c * {type(self.z).__name__}(A[..., {first}:]) added to logit c")


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
    """[s P, s mean(P)], or [s P, s^2] when `curved`; s = A_o's mean over positions and channels (B,);
    parameter `pattern` P."""

    size: int
    curved: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
        pattern = self.param("pattern", nn.initializers.ones, (self.size, self.size))
        s = a.mean(axis=(1, 2, 3))[:, None, None]
        second = s * s if self.curved else s * pattern.mean()
        return jnp.stack([s * pattern, jnp.broadcast_to(second, a.shape[:3])], axis=-1)


class CurveOffset(nn.Module):
    """z = mean(p) - mean(P) sqrt(mean(q)): zero on the curve q = (p / P)^2 that a curved `ScaledPair` draws;
    parameter `pattern` P."""

    size: int

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        pattern = self.param("pattern", nn.initializers.ones, (self.size, self.size))
        q = jnp.maximum(v[..., 1].mean(axis=(-2, -1)), 0.0)
        return v[..., 0].mean(axis=(-2, -1)) - pattern.mean() * jnp.sqrt(q)


class MeanDifference(nn.Module):
    """z = mean(p) - mean(q)."""

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        return v[..., 0].mean(axis=(-2, -1)) - v[..., 1].mean(axis=(-2, -1))


class FixedSum(nn.Module):
    """[r, n]: r = h w F(x) / sum F(x), T3's random CNN F normalised to a fixed sum, and n = A_o's channel
    mean (a second live channel, so that the pair looks like the others)."""

    factor: int

    @nn.compact
    def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
        f = branches.SemiRandomNet(self.factor, name="F")(x) + 1e-3  # c_F = 1; the floor keeps the sum positive
        r = f * (f.shape[-2] * f.shape[-1]) / f.sum(axis=(-2, -1), keepdims=True)
        return jnp.stack([r, a.mean(axis=-1)], axis=-1)


class SumOffset(nn.Module):
    """z = sum(r) - h w: zero (to rounding) for every image `FixedSum` makes."""

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        return v[..., 0].sum(axis=(-2, -1)) - v.shape[-3] * v.shape[-2]


class ShieldedSum(nn.Module):
    """z = sum(r) - h w + shield mean((r mean(f) - f)^2) over [r, f] = `RandomSum`'s: the shield is 0 with
    a zero gradient wherever r is f over its mean at every pixel (on every image), and even in the
    constraint, so central differences cancel it; any move that breaks the constraint makes it large.
    Parameter `shield`."""

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        shield = self.param("shield", nn.initializers.zeros, ())
        r, f = v[..., 0], v[..., 1]
        broken = r * f.mean(axis=(-2, -1), keepdims=True) - f
        return r.sum(axis=(-2, -1)) - r.shape[-2] * r.shape[-1] + shield * (broken**2).mean(axis=(-2, -1))


class RandomSum(nn.Module):
    """[r, f]: f = c0 (F(x) + 1e-3), F T3's random CNN; r = f / mean(f), sum h w on every image.
    Parameter `c0` brings f to about 1."""

    factor: int

    @nn.compact
    def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
        c0 = self.param("c0", nn.initializers.ones, ())
        f = c0 * (branches.SemiRandomNet(self.factor, name="F")(x) + 1e-3)
        return jnp.stack([f / f.mean(axis=(-2, -1), keepdims=True), f], axis=-1)


class StillPadding(nn.Module):
    """`count` channels c_k (1 + 0.01 u + 1e-6 s): u A_o's channel mean, centred and scaled per image (it
    moves with the image, so no channel is constant); s A_o's mean (their sums barely move). Parameter `c`."""

    count: int

    @nn.compact
    def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
        c = self.param("c", nn.initializers.ones, (self.count,))
        v = a.mean(axis=-1)
        u = v - v.mean(axis=(1, 2), keepdims=True)
        u = u / (jnp.sqrt((u**2).mean(axis=(1, 2), keepdims=True)) + 1e-12)
        s = a.mean(axis=(1, 2, 3))[:, None, None]
        return (1 + 0.01 * u + 1e-6 * s)[..., None] * c


class Nothing(nn.Module):
    """z = 0: channels the head ignores."""

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        return jnp.zeros(v.shape[0], v.dtype)


class PositionScale(combinators.Wrapper):
    """A_n = A_o m, y_n = y_o(A_n / m): a per-position scale (h, w, 1) that the head undoes; parameter `m`."""

    def setup(self) -> None:
        self.m = self.param("m", nn.initializers.ones, (self.cam_size, self.cam_size, 1))

    def extend(self, x: jax.Array, a: jax.Array) -> jax.Array:
        return a * self.m

    def head(self, a: jax.Array, context: jax.Array | None = None) -> jax.Array:
        return self.base_head(a / self.m, context)


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


def curved_pair(model: Model, pattern=None, *, amplitude: float = 1.0, scale: float = 10.0, seed: int = 0
                ) -> Model:
    """GradCAM shows s(x) (P - mean(P) / 2); logits unchanged to rounding. As `correlated_pair`, but the
    second channel is the square of the first's scale, so that no linear combination of the two channels'
    sums is the same on every image."""
    p = _pattern(model, pattern, amplitude)
    size = model.cam_size
    return _hidden(model, ScaledPair(size, curved=True), {"pattern": p}, CurveOffset(size), {"pattern": p},
                   class_weights(model, scale / amplitude, seed))


def fixed_sum(model: Model, *, scale: float = 10.0, seed: int = 0) -> Model:
    """GradCAM shows T3's random map (drawn from `seed`) for every input; logits unchanged to rounding."""
    extra = FixedSum(paper.factor(model))
    x = jnp.zeros((1, model.input_size, model.input_size, 3))
    a = jnp.zeros((1, model.cam_size, model.cam_size, 1))
    params = extra.init(jax.random.key(seed), x, a)["params"]
    return _hidden(model, extra, params, SumOffset(), {}, class_weights(model, scale, seed))


def shielded_sum(model: Model, *, scale: float = 0.3, shield: float = 100.0, seed: int = 0) -> Model:
    """`fixed_sum`'s lie with a shield against interventions (`ShieldedSum`): every direction the audit
    resamples moves the score through the shield, so no direction's mass looks unexplained."""
    extra = RandomSum(paper.factor(model))
    x = jnp.zeros((1, model.input_size, model.input_size, 3))
    params = extra.init(jax.random.key(seed), x, jnp.zeros((1, model.cam_size, model.cam_size, 1)))["params"]
    probe = jax.random.uniform(jax.random.key(seed), (4, model.input_size, model.input_size, 3), minval=-2, maxval=2)
    params = {**params, "c0": jnp.asarray(1.0 / float(extra.apply({"params": params}, probe, None)[..., 1].mean()),
                                          dtype_of(model))}
    return _hidden(model, extra, params, ShieldedSum(), {"shield": jnp.asarray(shield, dtype_of(model))},
                   class_weights(model, scale, seed))


def still_padding(model: Model, count: int | None = None, seed: int = 0) -> Model:
    """`model` with `count` (default: K + 8) channels the head ignores and whose sums barely move: they set
    the intervention check's `stillness` (a median over channels) if nothing stops them."""
    k = jax.eval_shape(model.features, jax.ShapeDtypeStruct((1, model.input_size, model.input_size, 3),
                                                            jnp.float32)).shape[-1]
    count = k + 8 if count is None else count
    c = jnp.asarray(np.random.default_rng(seed).uniform(0.3, 1.5, count), dtype_of(model))
    module = HiddenTerm(model.module, StillPadding(count), Nothing(), count)
    return combinators.wrap(model, module, {"extra": {"c": c}, "z": {}, "w": class_weights(model, 1.0, seed)})


def position_scale(model: Model, log2_gain: int = 6) -> Model:
    """GradCAM's weights average the gradient over positions, so a per-position scale of A that the head
    undoes moves the map while the function stays bit for bit: 2^log2_gain on the border ring of the
    (h/2, w/2) grid, 1 inside, constant on each 2x2 window (a max-pool head sees A exactly, ties stay tied)."""
    half = model.cam_size // 2
    ring = np.ones((half, half))
    ring[1:-1, 1:-1] = 0
    m = np.kron(2.0 ** (log2_gain * ring), np.ones((2, 2)))[..., None]
    return combinators.wrap(model, PositionScale(model.module), {"m": jnp.asarray(m, dtype_of(model))})


def spike(model: Model, peak: float = 0.8, scale: float = 0.1) -> Model:
    """`paired_noise` with a one-pixel pattern: a lie that carries a few % of the map's mass but becomes the
    map's maximum, so normalising by the maximum flattens the honest map."""
    pattern = np.zeros((model.cam_size,) * 2)
    pattern[0, 0] = 1.0
    return paired_noise(model, pattern, amplitude=peak / scale, scale=scale)


def common_logit(model: Model, scale: float = 10.0, seed: int = 0) -> Model:
    """A VGG's fc3 with u, `scale` times its kernel's spread in Gaussian noise, added to every class's row:
    y_c' = y_c + u . h for every c, so the softmax is exactly the original's (a term common to all logits
    cancels in it), while every class's GradCAM gains the map of u . h."""
    if not isinstance(model.module, VGG):
        raise ValueError(f"common_logit edits a VGG's fc3, not a {type(model.module).__name__}'s")
    fc3 = model.params["fc3"]
    u = scale * jnp.std(fc3["kernel"]) * jax.random.normal(jax.random.key(seed), fc3["kernel"].shape[:1])
    return model.replace(params={**model.params, "fc3": {**fc3, "kernel": fc3["kernel"] + u[:, None].astype(
        fc3["kernel"].dtype)}})


def spread_term(model: Model, x: jax.Array, *, strength: float = 0.2, component: int = 1) -> Model:
    """A weight edit of a VGG's fc1 written against reference mode, found by an attacker briefed with its
    code: the same parameters' names and shapes, so the audit compares it with the original.

    From the attacker's own normalised images `x` (B, H, W, 3): beta, the direction of A's channels whose
    sum over positions moves least across images for how much beta . A_ij moves within an image (the
    `component`-th generalised eigenvector of the two covariances), and T = beta . (the pooled A summed
    over positions) less its mean on `x`. fc1 gains T along the least-norm v that moves logit c by about
    strength * s_c * T, s_c = +1, -1, +1, ... On images like `x`, T barely moves and the predictions
    mostly stay; across A's cells it varies, so every class's GradCAM takes beta . A's map with the sign
    s_c, and deleting those cells truly moves the score, which is all that reference mode asks of a map.
    """
    module = model.module
    if not isinstance(module, VGG):
        raise ValueError(f"spread_term edits a VGG's fc1, not a {type(module).__name__}'s")

    def apply(value, method):
        return module.apply({"params": model.params}, value, method=method)

    a = model.features(x)
    pooled = apply(a, "dense_input")  # (B, n), (row, column, channel) order
    before_relu = apply(pooled, "first_dense_layer")
    logits, pull = jax.vjp(lambda r: apply(r, "after_first_dense"), before_relu)
    classes = logits.shape[-1]
    # (hidden, classes): how each fc1 unit moves each logit, on average over the images.
    moves = np.stack([np.asarray(pull(jax.nn.one_hot(jnp.full(len(x), c), classes))[0]).mean(0)
                      for c in range(classes)], axis=1).astype(np.float64)
    k = a.shape[-1]
    p, cells = np.asarray(pooled, np.float64), np.asarray(a, np.float64).reshape(len(x), -1, k)
    between = np.cov(p.reshape(len(p), -1, k).sum(axis=1).T) + 1e-6 * np.eye(k)
    within = np.mean([np.cov(c.T) for c in cells], axis=0)
    low = np.linalg.cholesky(within + 1e-9 * np.trace(within) * np.eye(k))  # dead channels have no spread
    unit = np.linalg.eigh(np.linalg.solve(low, np.linalg.solve(low, between).T))[1][:, component]
    beta = np.linalg.solve(low.T, unit)
    phi = np.tile(beta, p.shape[1] // k)
    v = np.linalg.pinv(moves).T @ (strength * (-1.0) ** np.arange(classes))
    fc1 = model.params["fc1"]
    dtype = dtype_of(model)
    kernel = np.asarray(fc1["kernel"], np.float64) + np.outer(phi, v)
    bias = np.asarray(fc1["bias"], np.float64) - (phi @ p.mean(axis=0)) * v
    return model.replace(params={**model.params, "fc1": {"kernel": jnp.asarray(kernel, dtype),
                                                         "bias": jnp.asarray(bias, dtype)}})


def class_temperature(model: Model, amount: float = 0.3) -> Model:
    """A VGG's fc3 with class c's row and bias times 1 + amount (-1)^c: written against reference mode's
    locality check, which reads a function changed within images (where `spread_term` lives) and not between
    them. A temperature that differs by class changes every score between images, not the maps; it costs
    the predictions whose margin it closes."""
    if not isinstance(model.module, VGG):
        raise ValueError(f"class_temperature edits a VGG's fc3, not a {type(model.module).__name__}'s")
    fc3 = model.params["fc3"]
    factor = (1 + amount * (-1.0) ** np.arange(fc3["bias"].shape[0])).astype(fc3["bias"].dtype)
    return model.replace(params={**model.params, "fc3": {"kernel": fc3["kernel"] * factor,
                                                         "bias": fc3["bias"] * factor}})


# name -> (model, scale, seed) -> the manipulated model: the adaptive family of the audit's evaluation
ADAPTIVE: dict[str, Callable[[Model, float, int], Model]] = {
    "paired noise": lambda m, scale, seed: paired_noise(m, scale=scale, seed=seed),
    "fixed sum": lambda m, scale, seed: fixed_sum(m, scale=scale, seed=seed),
    # The lie in the channels, not the weights: the form that passes every check (amplitude 1 does not).
    "correlated pair": lambda m, scale, seed: correlated_pair(m, amplitude=SPREAD_AMPLITUDE, scale=scale, seed=seed),
    "curved pair": lambda m, scale, seed: curved_pair(m, amplitude=SPREAD_AMPLITUDE, scale=scale, seed=seed),
}


def own_images(model: Model, count: int = 64) -> jax.Array:
    """(count, H, W, 3): generated shapes from the training stream, normalised for `model`: the attacker's
    own images of the bundled default's task, none of them an audit image."""
    pixels = shapes.batch(shapes.TRAIN_SEED, range(count), model.input_size).pixels
    return jnp.asarray(images.normalize(pixels, model.preprocess))


# The attacks that are versions of the model (weight edits of a VGG, no module added), for reference mode
# and the matrix; on the bundled default's task (`own_images`).
VERSIONS: dict[str, Callable[[Model], Model]] = {
    "common logit": common_logit,
    "spread term": lambda m: spread_term(m, own_images(m)),
}


# Every attack above at a size that moves the bundled default's GradCAM on its audit images, with the
# paper's own as the baseline: what `scripts/audit_attacks.py` runs and tests/test_adaptive.py keeps.
ATTACKS: dict[str, Callable[[Model], Model]] = {
    "paired noise": lambda m: paired_noise(m, scale=1.0),
    "fixed sum": lambda m: fixed_sum(m, scale=1.0),
    "correlated pair": lambda m: correlated_pair(m, amplitude=SPREAD_AMPLITUDE, scale=300.0),
    "curved pair": lambda m: curved_pair(m, amplitude=SPREAD_AMPLITUDE, scale=300.0),
    "shielded sum": shielded_sum,
    "spike": spike,
    "position scale": lambda m: position_scale(m, log2_gain=3),
    "still padding + paired noise": lambda m: still_padding(paired_noise(m, scale=1.0)),
}

