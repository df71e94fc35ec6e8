"""Files the tests make themselves (weight files, an ImageNet-shaped tar) and the command lines in-process."""

from __future__ import annotations

import importlib
import io
import os
import sys
import tarfile

import numpy as np
from PIL import Image

from cam_jax.model import Model
from cam_jax.models.init import init_params
from cam_jax.models.registry import build_model


def write_fake_val_tar(path: str | os.PathLike, count: int, seed: int = 0) -> None:
    """A tar laid out like ILSVRC2012_img_val.tar with `count` generated JPEGs."""
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w") as tar:
        for i in range(1, count + 1):
            h, w = rng.integers(200, 320, 2)
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
            info = tarfile.TarInfo(f"ILSVRC2012_val_{i:08d}.JPEG")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)


def write_tiny_weights(path: str | os.PathLike, num_classes: int = 4, size: int = 64) -> str:
    """A randomly initialised narrow VGG-16 (seed 1) saved at `path` as eval.py reads it; returns the path.
    With 4 classes it is a model of the generated shapes (its class names recorded)."""
    from cam_jax.convert import checkpoint
    from cam_jax.data import shapes

    module = build_model("vgg16", num_classes=num_classes, input_size=size, width=1 / 16)
    names = {"class_names": list(shapes.CLASSES)} if num_classes == len(shapes.CLASSES) else {}
    checkpoint.save(path, Model(module, init_params(module, 1)), arch="vgg16", preprocess="torchvision", **names)
    return str(path)


def script(name: str):
    """The command line `scripts/<name>.py` of this checkout as a module, to call its `main(argv)` in the
    test's process: a subprocess pays JAX's start and every compile again."""
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)
