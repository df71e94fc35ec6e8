"""Load any supported weight file by its extension."""

from __future__ import annotations

import os
from typing import Any

from cam_jax.convert import checkpoint
from cam_jax.convert.keras import load_keras
from cam_jax.convert.torchvision import load_torchvision
from cam_jax.model import Model


def load_weights(path: str | os.PathLike, arch: str | None = None) -> tuple[Model, dict[str, Any]]:
    """Load any supported file by extension: cam_jax `.npz`, torchvision `.pth`/`.pt`, Keras `.h5`.

    Raises:
      FileNotFoundError: no such file.
      ValueError: unreadable, not the architecture `arch` names, or a parameter holds NaN or inf.

    Example:
      >>> model, meta = load_weights(default_weights())
      >>> meta["arch"], model.num_classes, model.cam_size
      ('vgg16', 4, 14)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weight file at {path}")
    if path.endswith((".h5", ".hdf5")):
        model, meta = load_keras(path, arch)
    elif path.endswith((".pth", ".pt")):
        model, meta = load_torchvision(path, arch)
    else:
        model, meta = checkpoint.load(path)
        if arch is not None and meta.get("arch") != arch:
            raise ValueError(f"{path} holds {meta.get('arch')}, not {arch}")
    checkpoint.check_finite(model.params, path)
    return model, meta


def default_weights() -> str:
    """Path of the bundled default model: the checkout's `weights/default.npz`, which an installed
    package carries as `cam_jax.weights` (pyproject.toml maps the folder there)."""
    from importlib import resources

    try:
        return os.fspath(resources.files("cam_jax.weights").joinpath("default.npz"))
    except ModuleNotFoundError:  # run from a checkout: the folder beside the package
        return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "weights", "default.npz")
