"""Convert torchvision and Keras VGG weight files to the Flax parameter pytree.

torchvision: conv weights OIHW -> HWIO, linear weights [out, in] -> [in, out],
and `classifier.0`'s input columns permuted from NCHW to NHWC flatten order
once here, so the model runs NHWC throughout (SPEC.md). Keras h5 files are
already HWIO and NHWC-flattened but expect Caffe preprocessing (BGR, mean
subtracted, no scaling), which the returned metadata records.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterator, Mapping

import numpy as np

from cam_jax import checkpoint
from cam_jax.checkpoint import check_params, sha256
from cam_jax.model import Model
from cam_jax.vgg import STAGES, VGG

# Conv layer count -> torchvision depth name.
ARCH_BY_CONVS = {sum(len(s) for s in stages): arch for arch, stages in STAGES.items()}
CAM_STRIDE = 32  # five 2x2 pools


def torchvision_keys(arch: str) -> Iterator[tuple[str, str]]:
    """(our layer name, torchvision prefix) for every layer of `arch`, in order."""
    index = 0
    for s, stage in enumerate(STAGES[arch]):
        for i in range(len(stage)):
            yield f"conv{s + 1}_{i + 1}", f"features.{index}"
            index += 2  # conv, ReLU
        index += 1  # MaxPool
    for j, index in enumerate((0, 3, 6)):
        yield f"fc{j + 1}", f"classifier.{index}"


def keras_names(arch: str) -> Iterator[tuple[str, str]]:
    """(our layer name, Keras layer name) for every layer of `arch`, in order."""
    for s, stage in enumerate(STAGES[arch]):
        for i in range(len(stage)):
            yield f"conv{s + 1}_{i + 1}", f"block{s + 1}_conv{i + 1}"
    yield from (("fc1", "fc1"), ("fc2", "fc2"), ("fc3", "predictions"))


def _module_from_shapes(arch: str, conv_out: list[int], fc_shapes: list[tuple[int, int]]) -> VGG:
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


def _infer_arch(n_convs: int, arch: str | None, source: str) -> str:
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


def from_torchvision_state_dict(
    state: Mapping[str, Any], arch: str | None = None, source: str = "state_dict"
) -> Model:
    """torchvision VGG state_dict (arrays or tensors) -> `Model`; arch inferred when None.

    Raises:
      ValueError: naming the first missing, extra or mis-shaped key.
    """
    state = {k.removeprefix("module."): np.asarray(v, np.float32) for k, v in state.items()}
    n_convs = sum(1 for k in state if k.startswith("features.") and k.endswith(".weight"))
    arch = _infer_arch(n_convs, arch, source)
    names = list(torchvision_keys(arch))
    expected = {f"{prefix}.{leaf}" for _, prefix in names for leaf in ("weight", "bias")}
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
    module = _module_from_shapes(arch, [w.shape[0] for w in convs], [w.shape[::-1] for w in fcs])
    channels, side = module.stages[-1][-1], module.input_size // CAM_STRIDE
    params = {}
    for name, prefix in names:
        w, b = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
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


def load_torchvision(path: str | os.PathLike, arch: str | None = None) -> tuple[Model, dict[str, Any]]:
    """Read a torchvision `.pth` with `weights_only=True` (no code runs) and convert it."""
    import torch  # optional dependency: pip install cam_jax[torch]

    path = os.fspath(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises many types for corrupt or truncated files
        raise ValueError(f"could not read {path} as a torch state_dict: {err}") from err
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict")
    model = from_torchvision_state_dict({k: v.numpy() for k, v in state.items()}, arch, path)
    meta = {"arch": _arch_name(model.module), "preprocess": "torchvision", "source": os.path.basename(path)}
    return model, {**meta, "source_sha256": sha256(path)}


def load_keras(path: str | os.PathLike, arch: str | None = None) -> tuple[Model, dict[str, Any]]:
    """Read a Keras VGG h5 (weights-only or full-model file) and convert it."""
    import h5py  # optional dependency: pip install cam_jax[keras]

    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"could not read {path} as an HDF5 file: {err}") from err
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        n_convs = sum(1 for k in root.keys() if k.startswith("block") and "_conv" in k)
        arch = _infer_arch(n_convs, arch, path)
        params = {}
        for name, layer in keras_names(arch):
            if layer not in root:
                raise ValueError(f"{path}: layer {layer} is missing for {arch}")
            params[name] = _keras_layer(root[layer], f"{path}:{layer}")
    convs = [params[n]["kernel"] for n, _ in keras_names(arch) if n.startswith("conv")]
    fcs = [params[n]["kernel"].shape for n, _ in keras_names(arch) if n.startswith("fc")]
    module = _module_from_shapes(arch, [k.shape[-1] for k in convs], fcs)
    check_params(params, module, path)
    meta = {"arch": arch, "preprocess": "caffe", "source": os.path.basename(path), "source_sha256": sha256(path)}
    return Model(module, params), meta


def _keras_layer(group: Any, source: str) -> dict[str, np.ndarray]:
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
    if len(names) != 2:
        raise ValueError(f"{source}: expected 2 weights (kernel, bias), found {names}")
    kernel, bias = (np.asarray(group[n], np.float32) for n in names)
    if kernel.ndim < bias.ndim:
        kernel, bias = bias, kernel
    return {"kernel": kernel, "bias": bias}


def _arch_name(module: VGG) -> str:
    return ARCH_BY_CONVS[sum(len(s) for s in module.stages)]


def load_weights(path: str | os.PathLike, arch: str | None = None) -> tuple[Model, dict[str, Any]]:
    """Load any supported file by extension: cam_jax `.npz`, torchvision `.pth`/`.pt`, Keras `.h5`.

    Raises:
      FileNotFoundError: no such file.
      ValueError: unreadable, or not the architecture `arch` names.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weight file at {path}")
    if path.endswith((".h5", ".hdf5")):
        return load_keras(path, arch)
    if path.endswith((".pth", ".pt")):
        return load_torchvision(path, arch)
    model, meta = checkpoint.load(path)
    if arch is not None and meta.get("arch") != arch:
        raise ValueError(f"{path} holds {meta.get('arch')}, not {arch}")
    return model, meta
