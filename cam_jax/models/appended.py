"""Where a weight edit appends filters to the layer that computes A (the paper's T1/T2).

Each architecture that supports the edit has a field `appended` (how many
filters were appended) and a property `append_layout` naming the parameters:
the new filters of the layer A comes from, their weights into the first dense
layer of the head, and that layer's bias, which the edit shifts. The new
filters are parameters of their own, so the original arrays are shared, not
copied (VGG-16's fc1 is 411 MB).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax


class AppendLayout(NamedTuple):
    """The parameters of appended filters in one architecture.

    Attributes:
      conv: name of the appended filters' conv; kernel (*window, n), bias (n,).
      window: (kh, kw, C_in) of the layer that computes A.
      dense: name of their first-dense weights; kernel (side * side * n, width),
        rows in (row, column, filter) order of the pooled map.
      dense_bias: the first dense layer, whose bias the edit shifts.
      width: units of that dense layer.
      pool: what the head does to A before its first dense layer,
        (B, h, w, C) -> (B, side, side, C): VGG's 2x2 max-pool, ResNet's global mean.
    """

    conv: str
    window: tuple[int, int, int]
    dense: str
    dense_bias: str
    width: int
    pool: Callable[[jax.Array], jax.Array]
