"""VGG's layouts in torchvision state_dicts and Keras h5 files, converted to the Flax parameter pytree.

torchvision: conv weights OIHW -> HWIO, linear weights [out, in] -> [in, out],
and `classifier.0`'s input columns permuted from NCHW to NHWC flatten order
once here, so the model runs NHWC throughout (SPEC.md). Keras h5 files
(`cam_jax.convert.keras`) are already HWIO and NHWC-flattened.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from cam_jax.convert.checkpoint import check_params
from cam_jax.model import Model
from cam_jax.models.batch_norm import BN_EPS, fold
from cam_jax.models.vgg import STAGES, VGG

# Conv layer count -> torchvision depth name.
ARCH_BY_CONVS = {sum(len(s) for s in stages): arch for arch, stages in STAGES.items()}
CAM_STRIDE = 32  # five 2x2 pools


def torchvision_keys(arch: str, batch_norm: bool = False) -> Iterator[tuple[str, str]]:
    """(our layer name, torchvision prefix) for every layer of `arch` (`vgg*_bn` when batch_norm:
    each conv's BatchNorm2d is at the next index), in order."""
    index = 0
    for s, stage in enumerate(STAGES[arch]):
        for i in range(len(stage)):
            yield f"conv{s + 1}_{i + 1}", f"features.{index}"
            index += 3 if batch_norm else 2  # conv, (BatchNorm2d,) ReLU
        index += 1  # MaxPool
    for j, index in enumerate((0, 3, 6)):
        yield f"fc{j + 1}", f"classifier.{index}"


def keras_names(arch: str) -> Iterator[tuple[str, str]]:
    """(our layer name, Keras layer name) for every layer of `arch`, in order."""
    for s, stage in enumerate(STAGES[arch]):
        for i in range(len(stage)):
            yield f"conv{s + 1}_{i + 1}", f"block{s + 1}_conv{i + 1}"
    yield from (("fc1", "fc1"), ("fc2", "fc2"), ("fc3", "predictions"))


def module_from_shapes(arch: str, conv_out: list[int], fc_shapes: list[tuple[int, int]]) -> VGG:
    """Rebuild the VGG config from [out] of each conv and (in, out) of each FC layer."""
    widths = iter(conv_out)
    stages = tuple(tuple(next(widths) for _ in stage) for stage in STAGES[arch])
    cells = fc_shapes[0][0] / stages[-1][-1]
    side = math.isqrt(round(cells))
    if side * side != cells:
        raise ValueError(
            f"fc1 takes {fc_shapes[0][0]} inputs, not a square map of {stages[-1][-1]} channels; "
            "is this file for this architecture?"
        )
    return VGG(stages=stages, hidden=fc_shapes[0][1], num_classes=fc_shapes[2][1], input_size=side * CAM_STRIDE)


def infer_arch(n_convs: int, arch: str | None, source: str) -> str:
    found = ARCH_BY_CONVS.get(n_convs)
    if arch is None:
        if found is None:
            raise ValueError(f"{source} has {n_convs} conv layers, which matches no VGG depth")
        return found
    if arch not in STAGES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(STAGES)}")
    expected = sum(len(s) for s in STAGES[arch])
    if n_convs != expected:
        hint = f" (it looks like {found})" if found else ""
        raise ValueError(f"{source} has {n_convs} conv layers but {arch} has {expected}{hint}")
    return arch


BATCH_NORM_LEAVES = ("weight", "bias", "running_mean", "running_var")


def _after(prefix: str) -> str:
    """"features.3" -> "features.4": where a vgg*_bn keeps a conv's BatchNorm2d."""
    head, index = prefix.rsplit(".", 1)
    return f"{head}.{int(index) + 1}"


def _fold(w: np.ndarray, b: np.ndarray, norm: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A conv (OIHW weight w, bias b) followed by eval-mode batch norm, as one conv (`batch_norm.fold`
    with the output channels last)."""
    kernel, bias = fold(np.moveaxis(w, 0, -1), b, norm["weight"], norm["bias"], norm["running_mean"],
                        norm["running_var"], BN_EPS)
    return np.moveaxis(kernel, -1, 0), bias


def from_state_dict(
    state: Mapping[str, Any], arch: str | None = None, source: str = "state_dict"
) -> Model:
    """torchvision VGG state_dict (numpy arrays) -> `Model`; arch inferred when None. A batch-norm VGG
    (`vgg16_bn`, found by its running statistics) has each BatchNorm2d folded into its conv.

    Raises:
      ValueError: naming the first missing, extra or mis-shaped key.
    """
    state = {k: np.asarray(v, np.float32) for k, v in state.items()}
    n_convs = sum(1 for k, v in state.items() if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4)
    arch = infer_arch(n_convs, arch, source)
    batch_norm = any(k.startswith("features.") and k.endswith(".running_mean") for k in state)
    names = list(torchvision_keys(arch, batch_norm))
    expected = {f"{prefix}.{leaf}" for _, prefix in names for leaf in ("weight", "bias")}
    if batch_norm:  # vgg*_bn: folded into the convs below, so the model is the plain VGG the paper edits
        norms = {p: _after(p) for n, p in names if n.startswith("conv")}
        expected |= {f"{norms[p]}.{leaf}" for p in norms for leaf in BATCH_NORM_LEAVES}
        state = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    missing = [k for _, p in names for k in (f"{p}.weight", f"{p}.bias") if k not in state]
    if missing:
        raise ValueError(f"{source}: key {missing[0]} is missing for {arch}")
    extra = sorted(set(state) - expected)
    if extra:
        raise ValueError(f"{source}: unexpected key {extra[0]} for {arch}")
    convs = [state[f"{p}.weight"] for n, p in names if n.startswith("conv")]
    if any(w.ndim != 4 for w in convs):
        raise ValueError(f"{source}: conv weights must be 4-D OIHW")
    fcs = [state[f"{p}.weight"] for n, p in names if n.startswith("fc")]
    module = module_from_shapes(arch, [w.shape[0] for w in convs], [w.shape[::-1] for w in fcs])
    channels, side = module.stages[-1][-1], module.input_size // CAM_STRIDE
    params = {}
    for name, prefix in names:
        w, b = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        if name.startswith("conv") and batch_norm:
            w, b = _fold(w, b, {leaf: state[f"{norms[prefix]}.{leaf}"] for leaf in BATCH_NORM_LEAVES})
        if name.startswith("conv"):
            kernel = w.transpose(2, 3, 1, 0)
        elif name == "fc1":
            # Columns are (C, h, w)-ordered in torch; the model flattens (h, w, C).
            kernel = w.reshape(w.shape[0], channels, side, side).transpose(0, 2, 3, 1).reshape(w.shape[0], -1).T
        else:
            kernel = w.T
        params[name] = {"kernel": np.ascontiguousarray(kernel), "bias": b}
    check_params(params, module, source)
    return Model(module, params)
