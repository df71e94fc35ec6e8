"""Batch norm folded into the convolution before it: used after training and at conversion.

In evaluation mode BN(conv(x)) = conv'(x) with W' = W g / sqrt(var + eps) and
b' = (b - mean) g / sqrt(var + eps) + beta, so the architectures cam_jax
explains are plain convolutions whatever they were trained with.
"""

from __future__ import annotations

from typing import Any

from flax import traverse_util

BN_EPS = 1e-5  # torchvision's and flax's BatchNorm default


def fold(kernel: Any, bias: Any, scale: Any, beta: Any, mean: Any, var: Any, eps: float = BN_EPS) -> tuple[Any, Any]:
    """(kernel (..., C), bias (C,)) of a conv followed by batch norm -> the one equivalent conv.

    Works on numpy and jax arrays alike (float64 numpy at conversion keeps the fold exact).

    Example:
      >>> import numpy as np
      >>> k, b = fold(np.ones((1, 1, 1, 2)), np.zeros(2), np.array([2.0, 1.0]), np.zeros(2),
      ...             np.array([1.0, 0.0]), np.array([3.0, 0.0]), eps=1.0)
      >>> k.ravel().tolist(), b.tolist()
      ([1.0, 1.0], [-1.0, 0.0])
    """
    factor = scale / (var + eps) ** 0.5
    return kernel * factor, (bias - mean) * factor + beta


def fold_batch_norm(module: Any, variables: dict) -> tuple[Any, dict]:
    """A `batch_norm=True` module and its {"params", "batch_stats"} -> the plain module and its params.

    The module lists its (conv path, norm path) pairs in `norm_pairs()`; every
    norm's parameters and statistics are absorbed into its conv and dropped.
    """
    if not getattr(module, "batch_norm", False):
        raise ValueError("module has no batch norm to fold")
    params = traverse_util.flatten_dict(variables["params"])
    stats = traverse_util.flatten_dict(variables["batch_stats"])
    for conv, norm in module.norm_pairs():
        kernel, bias = fold(params[(*conv, "kernel")], params[(*conv, "bias")], params.pop((*norm, "scale")),
                            params.pop((*norm, "bias")), stats[(*norm, "mean")], stats[(*norm, "var")])
        params[(*conv, "kernel")], params[(*conv, "bias")] = kernel, bias
    return module.clone(batch_norm=False), traverse_util.unflatten_dict(params)
