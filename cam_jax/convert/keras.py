"""Keras VGG h5 files (weights-only or full-model) to the Flax parameter pytree.

Keras kernels are already HWIO and its VGG flattens NHWC, so the arrays carry
over unchanged; the weights expect Caffe preprocessing (BGR, mean subtracted,
no scaling), which the returned metadata records.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cam_jax.convert.checkpoint import check_params, sha256
from cam_jax.convert.vgg import infer_arch, keras_names, module_from_shapes
from cam_jax.model import Model


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
        root = _member(f, "model_weights", path) if "model_weights" in f else f
        n_convs = sum(1 for k in root.keys() if k.startswith("block") and "_conv" in k)
        arch = infer_arch(n_convs, arch, path)
        params = {}
        for name, layer in keras_names(arch):
            if layer not in root:
                raise ValueError(f"{path}: layer {layer} is missing for {arch}")
            params[name] = _keras_layer(_member(root, layer, path), f"{path}:{layer}")
    convs = [params[n]["kernel"] for n, _ in keras_names(arch) if n.startswith("conv")]
    fcs = [params[n]["kernel"].shape for n, _ in keras_names(arch) if n.startswith("fc")]
    module = module_from_shapes(arch, [k.shape[-1] for k in convs], fcs)
    check_params(params, module, path)
    meta = {"arch": arch, "preprocess": "caffe", "source": os.path.basename(path), "source_sha256": sha256(path)}
    return Model(module, params, preprocess=meta["preprocess"]), meta


def _keras_layer(group: Any, source: str) -> dict[str, np.ndarray]:
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
    if len(names) != 2:
        raise ValueError(f"{source}: expected 2 weights (kernel, bias), found {names}")
    kernel, bias = (np.asarray(_member(group, n, source), np.float32) for n in names)
    if kernel.ndim < bias.ndim:
        kernel, bias = bias, kernel
    return {"kernel": kernel, "bias": bias}


def _member(group: Any, path: str, source: str) -> Any:
    """group[path], refusing every way an HDF5 file can make the reader fetch bytes from elsewhere:
    soft and external links (on any component of `path`), datasets stored in external files, and
    virtual datasets (which map other files' datasets)."""
    import h5py

    for part in path.strip("/").split("/"):
        link = group.get(part, getlink=True)
        if link is None:
            raise ValueError(f"{source}: {path} is missing")
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{source}: {path} is reached through a {type(link).__name__}; a weight file must hold "
                             "its own arrays (a link can read another file or place), refused")
        group = group[part]
    if isinstance(group, h5py.Dataset):
        if group.is_virtual:
            raise ValueError(f"{source}: {path} is a virtual dataset (it maps other files' data), refused")
        if group.external:
            raise ValueError(f"{source}: {path} is stored in external file(s) {[e[0] for e in group.external]}, "
                             "refused")
    return group
