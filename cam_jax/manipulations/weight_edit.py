"""Weight edits: the paper's T1/T2 as a stock network with appended filters, and the constant checks.

The edit appends a (K+1)th filter to the layer that computes A and wires its
pooled map into the head's first dense layer, whose bias shifts to cancel it.
Where the filters go is the architecture's `append_layout`
(`cam_jax.models.appended`): VGG's conv5_3 and fc1 (N_Z = 49 pooled cells
at 224), ResNet's last block and fc after the global mean (N_Z = 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.model import Model
from cam_jax.models.appended import AppendLayout


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


def require_appendable(model: Model, what: str) -> AppendLayout:
    """The layout of a plain registered architecture that supports appended filters."""
    layout = getattr(type(model.module), "append_layout", None)
    if not isinstance(layout, property):
        raise ValueError(
            f"{what} edits the weights of a plain VGG or ResNet, but this model is {type(model.module).__name__}; "
            "apply weight-editing manipulations first and branch combinators after"
        )
    return model.module.append_layout


def pooled_sum(model: Model, value: np.ndarray) -> float:
    """Sum of what the head's first dense layer reads of an appended (h, w) map: S_Z.

    For a constant map c that is c N_Z (N_Z = 49 pooled cells in VGG-16 at 224, 1
    after ResNet's global mean).
    """
    layout = require_appendable(model, "pooled_sum")
    with jax.ensure_compile_time_eval():  # a constant, also when called inside jit
        return float(np.asarray(layout.pool(jnp.asarray(value, jnp.float32)[None, ..., None])).sum())


def append_filter(model: Model, *, bias: float, fc_weight: float, fc_bias_shift: float) -> Model:
    """Weight edit (T1/T2): a (K+1)th filter in the layer A comes from, wired into the first dense layer.

    The filter's kernel is zero and its bias `bias`; its pooled map enters every
    unit of the first dense layer with weight `fc_weight`, whose biases drop by
    `fc_bias_shift`. The result is the stock network with K+1 filters, stored as
    `appended=n+1`: the new filter and its dense weights are parameters of their
    own and every original array except that layer's bias is shared, not copied.

    Args:
      model: a plain VGG or ResNet `Model` (it may already carry appended filters).
      bias: the new filter's bias (c_A for T1, 0 for T2).
      fc_weight: W_n, every entry (c_W).
      fc_bias_shift: subtracted from b_o (c_A c_W N_Z for T1, c_W S_Z for T2).
    """
    layout = require_appendable(model, "append_filter")
    dtype = dtype_of(model)
    for name, value in (("bias", bias), ("fc_weight", fc_weight), ("fc_bias_shift", fc_bias_shift)):
        check_constant(name, value, dtype, positive=False)
    n, width = model.module.appended, layout.width
    side = int(np.asarray(jax.eval_shape(layout.pool, jax.ShapeDtypeStruct(
        (1, model.cam_size, model.cam_size, 1), jnp.float32)).shape[1]))
    # Filters appended before, or none yet: the new one goes after them.
    conv = model.params.get(layout.conv, {"kernel": jnp.zeros((*layout.window, 0), dtype),
                                          "bias": jnp.zeros((0,), dtype)})
    dense = model.params.get(layout.dense, {"kernel": jnp.zeros((0, width), dtype)})["kernel"]
    dense = jnp.concatenate([dense.reshape(side, side, n, width),
                             jnp.full((side, side, 1, width), fc_weight, dtype)], axis=2)
    first = model.params[layout.dense_bias]
    params = {
        **model.params,
        layout.conv: {"kernel": jnp.concatenate([conv["kernel"], jnp.zeros((*layout.window, 1), dtype)], -1),
                      "bias": jnp.append(conv["bias"], jnp.asarray(bias, dtype))},
        layout.dense_bias: {**first, "bias": first["bias"] - jnp.asarray(fc_bias_shift, dtype)},
        layout.dense: {"kernel": dense.reshape(-1, width)},
    }
    return model.replace(module=model.module.clone(appended=n + 1), params=params)
