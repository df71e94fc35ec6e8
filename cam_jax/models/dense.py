"""`dot_general` for `nn.Dense`: a dense layer whose input gradient XLA's CPU backend runs at memory speed.

The gradient of y = x W (x (N, in), W (in, out)) with respect to x is ct W^T, an (N, in)
product. For a few rows XLA's CPU backend (jaxlib 0.10, YNNPACK dots) runs that product at
half the speed of the same numbers computed as W ct^T, an (in, N) product transposed
afterwards, which runs at memory speed (docs/BENCHMARKS.md). That backward is nearly all that
GradCAM adds to VGG-16's forward. Here the tangent with respect to x
is written so that its transpose is W ct^T, held apart from the transposition by an
optimisation barrier so that XLA does not fold the two back into ct W^T.

Only for 2 to 64 rows (`ROWS`): one row is a matrix-vector product XLA already runs at
memory speed, and from 96 rows on the other form is no faster. The value, the kernel's
gradient and forward-mode derivatives are those of `lax.dot_general`; the input gradient
sums in another order (1e-6 relative). VGG and ResNet build their dense layers with
`Dense` (`nn.Dense` using it).

Example:
  >>> import jax, jax.numpy as jnp
  >>> x, w = jnp.ones((8, 6)), jnp.arange(24.0).reshape(6, 4)
  >>> dn = (((1,), (0,)), ((), ()))
  >>> mine = jax.grad(lambda x: dot_general(x, w, dn).sum())(x)
  >>> theirs = jax.grad(lambda x: jax.lax.dot_general(x, w, dn).sum())(x)
  >>> bool(jnp.allclose(mine, theirs))
  True
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import flax.linen as nn
import jax
from jax import lax

from cam_jax.models.tangents import bilinear_tangent

ROWS = range(2, 65)  # the rows N for which the input gradient is written W ct^T (docs/BENCHMARKS.md)


def dot_general(lhs: jax.Array, rhs: jax.Array, dimension_numbers, precision=None,
                preferred_element_type=None, **kwargs: Any) -> jax.Array:
    """`lax.dot_general`, same arguments and result; a dense layer's product (lhs (..., in) by rhs
    (in, out)) of 2 to 64 rows gets the input gradient of the module docstring."""
    (lhs_contract, rhs_contract), batch = dimension_numbers
    dense = (tuple(lhs_contract) == (lhs.ndim - 1,) and tuple(rhs_contract) == (0,) and batch == ((), ())
             and rhs.ndim == 2 and not kwargs)
    if not dense or math.prod(lhs.shape[:-1]) not in ROWS:
        return lax.dot_general(lhs, rhs, dimension_numbers, precision, preferred_element_type, **kwargs)
    return _dense(precision, preferred_element_type, lhs, rhs)


def _product(precision, preferred_element_type, x: jax.Array, w: jax.Array) -> jax.Array:
    return lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())), precision, preferred_element_type)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _dense(precision, preferred_element_type, x: jax.Array, w: jax.Array) -> jax.Array:
    return _product(precision, preferred_element_type, x, w)


@partial(_dense.defjvp, symbolic_zeros=True)
def _dense_jvp(precision, preferred_element_type, primals, tangents):
    x, w = primals
    dx, dw = tangents
    out = _product(precision, preferred_element_type, x, w)

    def x_term(d):  # (W^T d^T)^T: its transpose is W ct^T (in, N), then the barrier, then the transposition
        rows = lax.optimization_barrier(d.reshape(-1, d.shape[-1]).T)
        t = lax.dot_general(w.T, rows, (((1,), (0,)), ((), ())), precision, preferred_element_type)
        return t.T.reshape(out.shape)

    return out, bilinear_tangent(out, dx, x_term, dw, partial(_product, precision, preferred_element_type, x))


# `nn.Dense` computing with `dot_general`: the same parameters, names and numbers.
Dense = partial(nn.Dense, dot_general=dot_general)
