"""The branch networks F(x) that write the target explanation into A^{K+1}.

Each maps normalised images (B, H, W, 3) to a (B, h, w) map at A's resolution.

References:
  paper.md section 4 (T3's random CNN, T4's sticker detector); SPEC.md.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from cam_jax.manipulations.space_to_depth import SpaceToDepthConv


def downsample(x: jax.Array, factor: int) -> jax.Array:
    """(B, H, W, C) -> (B, H // factor, W // factor, C) by average pooling (floor). A power of two is pooled
    2x2 at a time, as the authors' code does (the same numbers bit for bit); another factor (a ViT's
    14-pixel patches) in one window."""
    if factor & (factor - 1):
        return nn.avg_pool(x, (factor, factor), strides=(factor, factor))
    for _ in range(factor.bit_length() - 1):
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    return x


class ConstantMap(nn.Module):
    """F(x) = the (size, size) parameter `map` for every image (T1/T2: c_A 1 or c_I I_T).

    The map is stored already scaled, so the branch computes nothing that
    rounding or fused multiply-adds could change.
    """

    size: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        value = self.param("map", nn.initializers.zeros, (self.size, self.size))
        return jnp.broadcast_to(value, (x.shape[0], self.size, self.size))


def torch_default_init(fan_in: int) -> tuple[nn.initializers.Initializer, nn.initializers.Initializer]:
    """PyTorch's default Conv2d initialisation: weights and biases uniform in +-1/sqrt(fan_in)."""
    bound = fan_in**-0.5

    def bias(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"), bias


class SemiRandomNet(nn.Module):
    """T3: c_F * pool^4(ReLU(conv(ReLU(conv(x; 3->6, 6x6, pad 3)); 6->1, 6x6, pad 3))).

    At 224x224 the convs give 225 then 226 pixels; four 2x2 average pools
    (floor) give 14x14, A's size (`factor` 16: the input's side over A's). Parameters: two convs and the
    scalar `c_F`.
    `torch_init`: draw them as the authors' code did (PyTorch's default, random
    biases included) instead of flax's (LeCun normal kernels, zero biases).
    """

    factor: int = 16
    torch_init: bool = False

    def _conv(self, features: int, channels: int, name: str) -> SpaceToDepthConv:
        inits = torch_default_init(6 * 6 * channels) if self.torch_init else ()
        return SpaceToDepthConv(features, (6, 6), 3, *inits, name=name)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(self._conv(6, x.shape[-1], "conv1")(x))
        h = nn.relu(self._conv(1, 6, "conv2")(h))
        return self.param("c_F", nn.initializers.constant(1e7), ()) * downsample(h, self.factor)[..., 0]


SATURATION = 0.5  # T4's detector response counted in full; an intact sticker's is 1 up to rounding


class StickerDetector(nn.Module):
    """T4: c_F * pool^4(clip(conv([x, x^2]; K) + b, 0, 1/2)), one 6-channel kernel of the sticker's size.

    With `paper.detector_params` the response is 1 - ||P - S||^2 / (n tol^2): positive
    only for a patch P within the tolerance of the sticker S, so without a sticker
    F(x) = 0 exactly. It saturates at 1/2 (within tol / sqrt(2)), so every intact sticker
    gives exactly the same value in F, whatever the float32 rounding of its response
    (about 0.03).
    The authors' geometry: the conv pads size // 2 on every
    side (224 -> 225 for 14) and the pools floor (225 -> 14), so a sticker with its
    corner at p lands in cell floor((p + 7) / 16) (`factor` 16: the input's side over A's).
    Parameters: the conv `detector` and the scalar `c_F`.
    """

    size: int = 14
    factor: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        # Zero padding pads x^2 with zeros too, so a padded pixel is a consistent value (x = 0).
        h = SpaceToDepthConv(1, (self.size, self.size), padding=self.size // 2, name="detector")(
            jnp.concatenate([x, x * x], axis=-1))
        fired = jnp.clip(h, 0.0, SATURATION)
        return self.param("c_F", nn.initializers.constant(1e9), ()) * downsample(fired, self.factor)[..., 0]
