"""Evaluation data: the generated shapes (with masks) or ILSVRC2012 validation through tfds.

A source yields `Batch`es of uint8 pixels at the model's input size, int32
labels and optional object masks, for the images `indices` asked for, so each
process of a multi-host run reads only its own share.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from cam_jax import images, shapes

VAL_TAR = "ILSVRC2012_img_val.tar"
IMAGENET_VAL_SIZE = 50_000

Loader = Callable[[Sequence[int]], shapes.Batch]


def shapes_loader(size: int = 224, seed: int = shapes.TEST_SEED) -> Loader:
    """Generated test images (`cam_jax.shapes`), masks included."""
    return lambda indices: shapes.batch(seed, indices, size)


def prepare_imagenet(data_dir: str | os.PathLike):
    """tfds builder for imagenet2012, prepared (once) from `data_dir`/ILSVRC2012_img_val.tar.

    The prepared copy (array_record, random access) goes to `data_dir`/tfds.
    Preparing needs TensorFlow (`pip install cam_jax[imagenet]`); reading does not.

    Raises:
      FileNotFoundError: `data_dir` has no ILSVRC2012_img_val.tar and nothing prepared.
    """
    data_dir = os.fspath(data_dir)
    tfds_dir = os.path.join(data_dir, "tfds")
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ImportError("ImageNet needs tensorflow-datasets: pip install -e '.[imagenet]'") from err
    builder = tfds.builder("imagenet2012", data_dir=tfds_dir, file_format="array_record")
    if not builder.is_prepared():
        if not os.path.exists(os.path.join(data_dir, VAL_TAR)):
            raise FileNotFoundError(
                f"{data_dir} holds no {VAL_TAR} (the ILSVRC2012 validation tar, downloaded by hand) "
                "and no prepared copy under tfds/"
            )
        config = tfds.download.DownloadConfig(manual_dir=data_dir)
        builder.download_and_prepare(download_config=config)
    return builder


def imagenet_loader(data_dir: str | os.PathLike, size: int = 224) -> tuple[Loader, int]:
    """ILSVRC2012 validation, resized (shorter side 256/224 * size) and centre-cropped; no masks.

    Returns:
      (loader, number of validation images available).
    """
    source = prepare_imagenet(data_dir).as_data_source(split="validation")

    def load(indices: Sequence[int]) -> shapes.Batch:
        records = [source[int(i)] for i in indices]
        pixels = np.stack([images.resize_crop(Image.fromarray(r["image"]), size, size * 256 // 224) for r in records])
        return shapes.Batch(pixels, np.array([r["label"] for r in records], np.int32), None)

    return load, len(source)


def write_fake_val_tar(path: str | os.PathLike, count: int, seed: int = 0) -> None:
    """A tar laid out like ILSVRC2012_img_val.tar with `count` generated JPEGs (for tests)."""
    import io
    import tarfile

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
