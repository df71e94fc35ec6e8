"""Weight edits: the paper's T1/T2 as a stock network with filters appended to the layer A comes from.

The edit appends filters to the last conv and wires their pooled maps into the head's first dense
layer, whose bias shifts to cancel them. `AppendedFilters` computes that widened network from the
stock one without copying it (VGG-16's fc1 is 411 MB): the new filters and their dense rows are
parameters of their own, read through the structure every architecture exposes (`trunk`,
`last_activation`, `last_conv_window`, `dense_input`, `first_dense`, `first_dense_layer`,
`after_first_dense`). VGG's conv5_3 and fc1 (N_Z = 49 pooled cells at 224); ResNet's last block
and fc after the global mean (N_Z = 1). `Model.stock()` merges the filters into the stock
architecture where it can widen (a VGG), as a weight file holds it.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.manipulations.combinators import BASE, Wrapper, base_of, wrap
from cam_jax.model import Model
from cam_jax.models.conv import Conv
from cam_jax.models.dense import Dense

STRUCTURE = ("trunk", "last_activation", "last_conv_window", "dense_input", "first_dense", "first_dense_layer",
             "after_first_dense")


def dtype_of(model: Model) -> np.dtype:
    """The dtype of the model's parameters (constants are checked against it)."""
    return np.dtype(jax.tree.leaves(model.params)[0].dtype)


# Half the float spacing of the paper's T1 bias shift (490,000 in float32): the most a weight edit's
# rounding may move the first dense layer's outputs (SPEC: ~0.017 on ImageNet logits).
MAX_SHIFT_SPACING = 2.0**-4


def check_constant(name: str, value: float, dtype: np.dtype, exact: bool = False, positive: bool = True) -> None:
    """Raise if `value` is NaN, infinite, not positive (with `positive`), overflows `dtype` or, with
    `exact`, is not representable in it."""
    value = float(value)
    if np.isnan(value) or np.isinf(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be positive, got {value:g}")
    with np.errstate(over="ignore"):  # overflow is what this function reports
        stored = float(np.asarray(value, dtype))
    if not np.isfinite(stored):
        raise ValueError(f"{name} = {value:g} overflows {dtype.name} (max {float(np.finfo(dtype).max):g})")
    if exact and stored != value:
        raise ValueError(
            f"{name} = {value:g} is not representable in {dtype.name} (it rounds to {stored:g}), "
            "so the bias shift would not cancel"
        )


def check_shift(name: str, shift: float, dtype: np.dtype) -> None:
    """Raise if a bias shift stored in `dtype` rounds by more than the paper's does (MAX_SHIFT_SPACING
    spacing): the first dense layer's sum would lose the original's activations (float32 past 2**20,
    or bfloat16 for the paper's own constants)."""
    spacing = float(np.spacing(np.abs(np.asarray(shift, dtype))))
    if spacing > MAX_SHIFT_SPACING:
        raise ValueError(
            f"{name} = {shift:g} is stored in {np.dtype(dtype).name} with spacing {spacing:g}: its rounding (up to "
            f"{spacing / 2:g}) would move the first dense layer's outputs by more than the paper's constants do "
            f"({MAX_SHIFT_SPACING / 2:g}); use smaller constants, float32 parameters or exact=True")


class AppendedFilters(Wrapper):
    """The stock network with `count` more filters in the layer A comes from: A = [A_o, act(conv(h))], h
    the last conv's input, and the first dense layer reading their pooled maps through rows of its own.

    Parameters: "filters" (kernel (*last_conv_window, count), bias (count,)) and "rows" (kernel
    (cells * count, units), rows in (row, column, filter) order of the pooled maps).
    """

    count: int

    @property
    def appended(self) -> int:
        return getattr(self.base, "appended", 0) + self.count

    def setup(self):
        kh, kw, _ = self.base.last_conv_window
        self.filters = Conv(self.count, (kh, kw), padding=kh // 2)
        self.rows = Dense(self.base.first_dense[1], use_bias=False)

    def features(self, x: jax.Array) -> jax.Array:
        a, h = self.base.trunk(x)
        # Each block activated on its own, so that A[..., :K] is the original's A as one expression and
        # XLA can share it between models.
        return jnp.concatenate([a, self.base.last_activation(self.filters(h))], axis=-1)

    def encode(self, x: jax.Array) -> tuple[jax.Array, None]:
        return self.features(x), None  # a stock VGG or ResNet: no context

    def head(self, a: jax.Array, context: None = None) -> jax.Array:
        k = a.shape[-1] - self.count
        rows = self.rows(self.base.dense_input(a[..., k:]))
        return self.base.after_first_dense(self.base.first_dense_layer(self.base.dense_input(a[..., :k])) + rows)

    def line(self, channels: int) -> str:
        first = channels - self.count
        return (f"{type(self.base).__name__}: A[..., {first}:{channels}] from {self.count} filter(s) appended to "
                "its last conv")

    def stock(self, params: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
        """The widened stock network, where the base can widen its last conv (a VGG); else the wrapper."""
        widened = getattr(self.base, "widened", None)
        if widened is None:
            return super().stock(params)
        return widened(params[BASE], params["filters"], params["rows"]["kernel"])


def editable(model: Model) -> bool:
    """Whether the weight edits apply: a plain VGG or ResNet (they expose `STRUCTURE`), or one they edited."""
    return isinstance(model.module, AppendedFilters) or all(hasattr(model.module, name) for name in STRUCTURE)


def _stock_base(model: Model, what: str) -> tuple[Model, dict | None, dict | None]:
    """(the stock model an edit applies to, its appended filters and rows so far, or None)."""
    if isinstance(model.module, AppendedFilters):
        return base_of(model), model.params["filters"], model.params["rows"]
    if not editable(model):
        raise ValueError(
            f"{what} edits the weights of a plain VGG or ResNet, but this model is {type(model.module).__name__}; "
            "apply weight-editing manipulations first and branch combinators after"
        )
    return model, None, None


def _cells(module: Any) -> int:
    """How many pooled cells of one channel of A the first dense layer reads (N_Z for a constant map)."""
    a = jax.ShapeDtypeStruct((1, module.cam_size, module.cam_size, 1), jnp.float32)
    return int(jax.eval_shape(lambda a: module.apply({}, a, method="dense_input"), a).shape[-1])


def pooled_sum(model: Model, value: np.ndarray) -> float:
    """Sum of what the head's first dense layer reads of an appended (h, w) map: S_Z.

    For a constant map c that is c N_Z (N_Z = 49 pooled cells in VGG-16 at 224, 1
    after ResNet's global mean).
    """
    base, _, _ = _stock_base(model, "pooled_sum")
    with jax.ensure_compile_time_eval():  # a constant, also when called inside jit
        pooled = base.module.apply({}, jnp.asarray(value, jnp.float32)[None, ..., None], method="dense_input")
        return float(np.asarray(pooled).sum())


def append_filter(model: Model, *, bias: float, fc_weight: float, fc_bias_shift: float) -> Model:
    """Weight edit (T1/T2): a (K+1)th filter in the layer A comes from, wired into the first dense layer.

    The filter's kernel is zero and its bias `bias`; its pooled map enters every unit of the first
    dense layer with weight `fc_weight`, whose biases drop by `fc_bias_shift`. The result is the
    stock network with K+1 filters (`AppendedFilters`): every original array except that layer's
    bias is shared, not copied.

    Args:
      model: a plain VGG or ResNet `Model` (it may already carry appended filters).
      bias: the new filter's bias (c_A for T1, 0 for T2).
      fc_weight: W_n, every entry (c_W).
      fc_bias_shift: subtracted from b_o (c_A c_W N_Z for T1, c_W S_Z for T2).
    """
    base, filters, rows = _stock_base(model, "append_filter")
    dtype = dtype_of(model)
    for name, value in (("bias", bias), ("fc_weight", fc_weight), ("fc_bias_shift", fc_bias_shift)):
        check_constant(name, value, dtype, positive=False)
    window = base.module.last_conv_window
    name, units = base.module.first_dense
    cells, n = _cells(base.module), 0 if filters is None else filters["bias"].shape[0]
    filters = filters or {"kernel": jnp.zeros((*window, 0), dtype), "bias": jnp.zeros((0,), dtype)}
    dense = (rows or {"kernel": jnp.zeros((0, units), dtype)})["kernel"]
    dense = jnp.concatenate([dense.reshape(cells, n, units), jnp.full((cells, 1, units), fc_weight, dtype)], axis=1)
    first = base.params[name]
    shifted = base.replace(params={**base.params, name: {**first, "bias": first["bias"] - jnp.asarray(fc_bias_shift,
                                                                                                     dtype)}})
    own = {"filters": {"kernel": jnp.concatenate([filters["kernel"], jnp.zeros((*window, 1), dtype)], -1),
                       "bias": jnp.append(filters["bias"], jnp.asarray(bias, dtype))},
           "rows": {"kernel": dense.reshape(cells * (n + 1), units)}}
    return wrap(shifted, AppendedFilters(base.module, n + 1), own)
