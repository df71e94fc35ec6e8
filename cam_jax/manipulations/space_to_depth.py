"""Stride-1 convolutions with few channels, computed as a space-to-depth convolution.

T3's random CNN (3 -> 6 -> 1 channels, 6x6 kernels) and T4's sticker detector
(3 -> 1 channel, 14x14 kernel) run at the full 224x224 resolution. With so few
channels XLA's CPU convolution cannot use its matrix kernels well. Folding
b x b blocks of pixels into channels turns the same convolution into one with
b*b*C inputs, b*b*F outputs and a ceil-sized kernel. Every output is the same
sum of the same products, only in another order.

The block is b = 2 by default: larger blocks run faster but accumulate longer
chains, whose rounding grows (docs/BENCHMARKS.md).

Derivation (one axis, stride 1): out[b i + r] = sum_t x[b i + r + t] K[t]. With
X[j, q] = x[b j + q], that is sum_{m, q} X[i + m, q] K[b m + q - r], a
convolution over block index i with taps m = 0 .. M-1, M = (k + b - 2) // b + 1,
input channel q and output channel r; taps outside 0 <= b m + q - r < k are zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Padding = int | str | Sequence[tuple[int, int]]


def _pads(padding: Padding, kernel_shape: Sequence[int]) -> list[tuple[int, int]]:
    if padding == "SAME":
        return [((k - 1) // 2, k // 2) for k in kernel_shape]
    if padding == "VALID":
        return [(0, 0)] * len(kernel_shape)
    if isinstance(padding, int):
        return [(padding, padding)] * len(kernel_shape)
    return [tuple(p) for p in padding]


def _taps(k: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, b, b) indices b m + q - r into a length-k kernel axis, and where they fall inside it."""
    m = (k + b - 2) // b + 1
    idx = b * np.arange(m)[:, None, None] + np.arange(b)[None, :, None] - np.arange(b)[None, None, :]
    return np.clip(idx, 0, k - 1), (idx >= 0) & (idx < k)


def conv_space_to_depth(x: jax.Array, kernel: jax.Array, bias: jax.Array, padding: Padding = 0,
                        block: int = 2) -> jax.Array:
    """Stride-1 2-D cross-correlation, as `lax.conv_general_dilated` computes it.

    Args:
      x: (B, H, W, C) input.
      kernel: (kh, kw, C, F) HWIO.
      bias: (F,).
      padding: int, "SAME", "VALID" or ((lo, hi), (lo, hi)), as in `flax.linen.Conv`.
      block: b, the side of the pixel blocks folded into channels.

    Returns:
      (B, H', W', F) with H' = H + lo + hi - kh + 1 (and likewise W').
    """
    batch, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    b = block
    (top, bottom), (left, right) = _pads(padding, (kh, kw))
    out_h, out_w = h + top + bottom - kh + 1, w + left + right - kw + 1
    (idx_h, in_h), (idx_w, in_w) = _taps(kh, b), _taps(kw, b)
    # Blocks covering every output plus the kernel's reach; pad the input to exactly that.
    nh, nw = -(-out_h // b), -(-out_w // b)
    rows, cols = (nh + len(idx_h) - 1) * b, (nw + len(idx_w) - 1) * b
    x = jnp.pad(x, ((0, 0), (top, rows - h - top), (left, cols - w - left), (0, 0)))
    x = x.reshape(batch, rows // b, b, cols // b, b, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(batch, rows // b, cols // b, b * b * c)
    # K'[m, n, (q, p, c), (r, s, f)] = K[b m + q - r, b n + p - s, c, f], zero outside the kernel.
    k = kernel[idx_h][:, :, :, idx_w]  # (M, q, r, N, p, s, C, F)
    inside = in_h[:, :, :, None, None, None] & in_w[None, None, None]
    k = jnp.where(inside[..., None, None], k, 0).transpose(0, 3, 1, 4, 6, 2, 5, 7)
    k = k.reshape(len(idx_h), len(idx_w), b * b * c, b * b * f)
    y = lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = y.reshape(batch, nh, nw, b, b, f).transpose(0, 1, 3, 2, 4, 5).reshape(batch, nh * b, nw * b, f)
    return y[:, :out_h, :out_w] + bias


class SpaceToDepthConv(nn.Module):
    """`flax.linen.Conv` (stride 1) with the same parameters, computed by `conv_space_to_depth`.

    Attributes:
      features: output channels F.
      kernel_size: (kh, kw).
      padding: as in `flax.linen.Conv`.
      kernel_init, bias_init: as in `flax.linen.Conv`.
    """

    features: int
    kernel_size: tuple[int, int]
    padding: Padding = 0
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        return conv_space_to_depth(x, kernel, bias, self.padding)
