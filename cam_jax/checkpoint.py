"""Save and load a converted VGG as a flat `.npz` that executes nothing when read.

Format: one array per parameter under its `a/b` path (`conv5_3/kernel`), plus
`__meta__`, a JSON string with the architecture, the preprocessing the weights
expect and the SHA-256 of the file they came from. Chosen over msgpack or
safetensors because numpy alone reads it (no extra dependency) and
`allow_pickle=False` guarantees no code runs on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from cam_jax.model import Model
from cam_jax.vgg import VGG, param_shapes

FORMAT = "cam_jax-vgg/1"
META_KEY = "__meta__"


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def module_config(module: VGG) -> dict[str, Any]:
    """The JSON-able fields that rebuild `module`."""
    return {
        "stages": [list(s) for s in module.stages],
        "hidden": module.hidden,
        "num_classes": module.num_classes,
        "input_size": module.input_size,
        "appended": module.appended,
    }


def check_params(params: Any, module: VGG, source: str) -> None:
    """Raise a `ValueError` naming the first parameter missing, extra or of the wrong shape."""
    want = traverse_util.flatten_dict(param_shapes(module), sep="/")
    have = traverse_util.flatten_dict(params, sep="/")
    for key in sorted(want):
        if key not in have:
            raise ValueError(f"{source}: parameter {key} is missing")
        if tuple(have[key].shape) != tuple(want[key].shape):
            raise ValueError(
                f"{source}: parameter {key} has shape {tuple(have[key].shape)}, "
                f"the architecture expects {tuple(want[key].shape)}"
            )
    extra = sorted(set(have) - set(want))
    if extra:
        raise ValueError(f"{source}: unexpected parameters {extra[:5]} for this architecture")


def save(path: str | os.PathLike, model: Model, **meta: Any) -> None:
    """Write `model` (a plain VGG) and `meta` (e.g. arch, preprocess, source_sha256) to `path`."""
    if not isinstance(model.module, VGG):
        raise TypeError("only a plain VGG can be saved; manipulations are rebuilt from it by code")
    flat = traverse_util.flatten_dict(jax.device_get(model.params), sep="/")
    header = {"format": FORMAT, **module_config(model.module), **meta}
    arrays = {k: np.asarray(v, np.float32) for k, v in flat.items()}
    with open(path, "wb") as f:
        np.savez(f, **arrays, **{META_KEY: np.array(json.dumps(header))})


def load(path: str | os.PathLike) -> tuple[Model, dict[str, Any]]:
    """Read a file written by `save`; returns the model and its metadata.

    Raises:
      FileNotFoundError: no such file.
      ValueError: not a cam_jax weight file, truncated, or parameters that do
        not fit the architecture it records (the message names the key).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weight file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a readable cam_jax .npz weight file ({err})") from err
    if META_KEY not in arrays:
        raise ValueError(f"{path} has no {META_KEY} entry: not written by cam_jax.checkpoint.save")
    meta = json.loads(str(arrays.pop(META_KEY)))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    module = VGG(
        stages=tuple(tuple(s) for s in meta["stages"]),
        hidden=meta["hidden"],
        num_classes=meta["num_classes"],
        input_size=meta["input_size"],
        appended=meta.get("appended", 0),  # files from before T1/T2 models could be saved lack it
    )
    params = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in arrays.items()})
    check_params(params, module, path)
    return Model(module, jax.tree.map(jax.numpy.asarray, params)), meta
