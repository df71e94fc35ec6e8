"""Save and load a model of any registered architecture as a flat `.npz` that executes nothing when read.

Format `cam_jax/2`: one array per parameter under its `a/b` path
(`conv5_3/kernel`, `layer4_2/conv3/kernel`), plus `__meta__`, a JSON string
with the architecture family and the module's fields (resolved through
`cam_jax.models.registry`), the arch name, the preprocessing the weights expect
and the SHA-256 of the file they came from. Files of the earlier VGG-only
format `cam_jax-vgg/1` still load. Chosen over msgpack or safetensors because
numpy alone reads it (no extra dependency) and `allow_pickle=False` guarantees
no code runs on load.
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

from cam_jax.atomic import atomic_path
from cam_jax.model import Model
from cam_jax.models import registry
from cam_jax.models.init import param_shapes
from cam_jax.models.vgg import VGG

FORMAT = "cam_jax/2"
LEGACY_VGG = "cam_jax-vgg/1"  # VGG fields at the top level of the header
META_KEY = "__meta__"


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_params(params: Any, module: Any, source: str) -> None:
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


def check_finite(params: Any, source: str) -> None:
    """Raise a ValueError naming the first parameter that holds NaN or inf (its scores would be NaN)."""
    for key, value in traverse_util.flatten_dict(jax.device_get(params), sep="/").items():
        bad = ~np.isfinite(np.asarray(value))
        if bad.any():
            raise ValueError(f"{source}: parameter {key} holds {int(bad.sum())} NaN or inf value(s)")


def save(path: str | os.PathLike, model: Model, **meta: Any) -> None:
    """Write `model` (a plain registered architecture), its preprocessing and `meta` (e.g. source_sha256) to `path`.

    Written to a temporary file beside `path` and moved into place, so a failure
    never leaves a half-written file. `arch` defaults to the module's arch name. A model whose
    manipulation a stock architecture can hold (`Model.stock`: the paper's T1/T2) is saved as that.
    """
    model = model.stock()
    if meta.setdefault("preprocess", model.preprocess) != model.preprocess:
        raise ValueError(f"meta says preprocess {meta['preprocess']!r} but the model expects {model.preprocess!r}")
    family = registry.family_of(model.module)
    flat = traverse_util.flatten_dict(jax.device_get(model.params), sep="/")
    header = {"format": FORMAT, "family": family, "config": registry.config(model.module),
              "arch": meta.pop("arch", None) or registry.arch_name(model.module), **meta}
    arrays = {k: np.asarray(v, np.float32) for k, v in flat.items()}
    with atomic_path(path) as staging, open(staging, "wb") as f:
        np.savez(f, **arrays, **{META_KEY: np.array(json.dumps(header))})


def _field(meta: dict[str, Any], name: str, kind: type, source: str) -> Any:
    if name not in meta:
        raise ValueError(f"{source}: the header has no {name!r} field")
    if not isinstance(meta[name], kind):
        raise ValueError(f"{source}: the header's {name!r} must be a {kind.__name__}, got {meta[name]!r}")
    return meta[name]


def module_from_header(meta: Any, source: str) -> Any:
    """The module a header describes, in the current or the legacy VGG format; a `ValueError` naming the
    field that is missing, of the wrong type or out of range (the architecture checks its own fields)."""
    if not isinstance(meta, dict):
        raise ValueError(f"{source}: the header must be a JSON object, got {type(meta).__name__}")
    try:
        if meta.get("format") == FORMAT:
            fields = _field(meta, "config", dict, source)
            return registry.from_config(_field(meta, "family", str, source), fields)
        if meta.get("format") == LEGACY_VGG:
            stages = _field(meta, "stages", list, source)
            return VGG(stages=tuple(tuple(s) if isinstance(s, list) else s for s in stages),
                       **{k: _field(meta, k, int, source) for k in ("hidden", "num_classes", "input_size")})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}" if not str(err).startswith(source) else str(err)) from err
    raise ValueError(f"{source}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")


MAX_BYTES = 8 << 30  # what the arrays of a weight file may decompress to (VGG-16 in float32: 0.55 GB)
MAX_RATIO = 100  # a compressed entry may not grow more than this (np.savez stores arrays uncompressed)


def check_archive(path: str) -> None:
    """Refuse a file that is not a zip archive (an .npz is one) and a decompression bomb, from the
    sizes the archive declares, before anything is decompressed."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not an .npz weight file (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path} is not a readable .npz weight file ({err})") from err
    total = sum(e.file_size for e in entries)
    if total > MAX_BYTES:
        raise ValueError(f"{path} declares {total:,} bytes of arrays, more than the {MAX_BYTES:,} allowed")
    for e in entries:
        if e.file_size > MAX_RATIO * e.compress_size + (1 << 20):
            raise ValueError(f"{path}: {e.filename} decompresses from {e.compress_size:,} to {e.file_size:,} bytes "
                             "(a decompression bomb?), refused")


def _merge_appended(module: Any, params: dict, appended: Any, path: str) -> tuple[Any, dict]:
    """A file of the format before the paper's T1/T2 edit moved out of the architectures: a VGG with
    `appended` filters kept apart (`<last conv>_appended`, `fc1_appended`), read as the stock VGG with
    them merged into its last conv and fc1 (the same function)."""
    if not isinstance(module, VGG) or isinstance(appended, bool) or not isinstance(appended, int) or appended < 0:
        raise ValueError(f"{path}: 'appended' {appended!r} on {type(module).__name__}: only VGG files held "
                         "appended filters")
    names = (f"{module.last_conv}_appended", "fc1_appended")
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"{path}: the header says {appended} appended filters but {missing[0]} is missing")
    conv, rows = params.pop(names[0]), params.pop(names[1])
    try:
        return module.widened(params, conv, rows["kernel"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: appended filters that do not fit {module.last_conv} and fc1 ({err})") from err


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
    check_archive(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a readable cam_jax .npz weight file ({err})") from err
    if META_KEY not in arrays:
        raise ValueError(f"{path} has no {META_KEY} entry: not written by cam_jax.checkpoint.save")
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: its header is not JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the header must be a JSON object, got {type(meta).__name__}")
    fields = meta.get("config") if meta.get("format") == FORMAT else meta
    appended = fields.pop("appended", 0) if isinstance(fields, dict) else 0
    module = module_from_header(meta, path)
    params = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in arrays.items()})
    if appended:
        module, params = _merge_appended(module, params, appended, path)
    check_params(params, module, path)
    params = jax.tree.map(jax.numpy.asarray, params)
    return Model(module, params, preprocess=meta.get("preprocess", "torchvision")), meta
