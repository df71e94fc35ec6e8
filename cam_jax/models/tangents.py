"""The tangent of a bilinear product under a `custom_jvp` with symbolic zeros (`models.conv`, `models.dense`)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def bilinear_tangent(out: jax.Array, d_lhs, lhs_term: Callable[[jax.Array], jax.Array], d_rhs,
                     rhs_term: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """lhs_term(d_lhs) + rhs_term(d_rhs), the tangent of a product bilinear in (lhs, rhs) whose value is `out`.

    A tangent that is a symbolic zero (an operand not differentiated, such as the weights when a CAM
    differentiates the input) costs nothing: its term is never built.

    Example:
      >>> from jax.custom_derivatives import SymbolicZero
      >>> x, w = jnp.ones((2, 3)), jnp.ones((3, 4))
      >>> t = bilinear_tangent(x @ w, x, lambda d: d @ w, SymbolicZero(jax.typeof(w)), None)
      >>> t.shape, float(t[0, 0])
      ((2, 4), 3.0)
    """
    terms = [term(d) for d, term in ((d_lhs, lhs_term), (d_rhs, rhs_term))
             if not isinstance(d, jax.custom_derivatives.SymbolicZero)]
    return sum(terms[1:], terms[0]) if terms else jnp.zeros_like(out)
