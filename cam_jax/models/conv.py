"""`conv_general_dilated`: `lax.conv_general_dilated` whose input gradient XLA's CPU backend runs fast in loops.

jax differentiates a convolution with respect to its input by a convolution that relabels the
kernel's input and output dimensions (`01io` read as `01oi`) instead of transposing it. At the top
level of a program XLA's CPU backend transposes the kernel back into the layout its fast convolution
needs; inside a while loop (`lax.map`, which SmoothGrad and Integrated Gradients use to bound
memory) it does not, and the convolution falls back to a generic loop, many times slower. Here the
tangent with respect to the input is written as the same convolution of a kernel transposed in
memory and labelled to match, so its transpose reads the kernel in the canonical layout wherever it
runs.

The value and both derivatives (forward and reverse mode, to any order) are those
of `lax.conv_general_dilated`, to the bit for unit strides; a strided convolution's
input gradient sums in another order (1e-7 relative). Only the program XLA is
handed differs. VGG and ResNet build their layers with `Conv` (`nn.Conv` using it); a user's
flax module can too.

Example:
  >>> import jax, jax.numpy as jnp
  >>> x, k = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 4))
  >>> dn = ("NHWC", "HWIO", "NHWC")
  >>> mine = lambda x: conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn).sum()
  >>> theirs = lambda x: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn).sum()
  >>> bool((jax.grad(mine)(x) == jax.grad(theirs)(x)).all())
  True
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cam_jax.models.tangents import bilinear_tangent


class _Conv(NamedTuple):
    """Every argument of `lax.conv_general_dilated` but the two arrays, hashable (a static argument)."""

    window_strides: tuple[int, ...]
    padding: str | tuple[tuple[int, int], ...]
    lhs_dilation: tuple[int, ...] | None
    rhs_dilation: tuple[int, ...] | None
    dimension_numbers: lax.ConvDimensionNumbers
    feature_group_count: int
    precision: Any
    preferred_element_type: Any

    def __call__(self, lhs: jax.Array, rhs: jax.Array) -> jax.Array:
        return lax.conv_general_dilated(lhs, rhs, **self._asdict())

    def kernel_transposed(self, rhs: jax.Array) -> tuple[_Conv, jax.Array]:
        """The same convolution with the kernel's in and out axes swapped in memory and in the labels."""
        dn = self.dimension_numbers
        out, into, *spatial = dn.rhs_spec
        labels = lax.ConvDimensionNumbers(dn.lhs_spec, (into, out, *spatial), dn.out_spec)
        return self._replace(dimension_numbers=labels), jnp.swapaxes(rhs, out, into)


def _tuple(v):
    return None if v is None else tuple(v)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision=None, preferred_element_type=None) -> jax.Array:
    """`lax.conv_general_dilated`, same arguments and result; see the module docstring for what differs."""
    if batch_group_count != 1:  # only jax's own weight gradients use it; nothing to gain
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, batch_group_count, precision,
                                        preferred_element_type)
    spec = _Conv(tuple(window_strides), padding if isinstance(padding, str) else tuple(map(tuple, padding)),
                 _tuple(lhs_dilation), _tuple(rhs_dilation),
                 lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers), feature_group_count,
                 precision, preferred_element_type)
    return _conv(spec, lhs, rhs)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _conv(spec: _Conv, lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    return spec(lhs, rhs)


@partial(_conv.defjvp, symbolic_zeros=True)
def _conv_jvp(spec: _Conv, primals, tangents):
    lhs, rhs = primals
    d_lhs, d_rhs = tangents
    out = spec(lhs, rhs)

    def lhs_term(d):
        transposed, kernel = spec.kernel_transposed(rhs)
        return transposed(d, kernel)

    return out, bilinear_tangent(out, d_lhs, lhs_term, d_rhs, lambda d: spec(lhs, d))


# `nn.Conv` computing with `conv_general_dilated`: the same parameters, names and numbers.
Conv = partial(nn.Conv, conv_general_dilated=conv_general_dilated)
