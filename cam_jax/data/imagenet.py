"""ILSVRC2012 validation through tensorflow-datasets, prepared once from the hand-downloaded tar.

Yields `Batch`es of uint8 pixels at the model's input size and int32 labels
(no masks), for the images `indices` asked for.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np
from PIL import Image

from cam_jax.data import images
from cam_jax.data.batch import Batch, Loader

VAL_TAR = "ILSVRC2012_img_val.tar"
IMAGENET_VAL_SIZE = 50_000

def prepare_imagenet(data_dir: str | os.PathLike):
    """tfds builder for imagenet2012, prepared (once) from `data_dir`/ILSVRC2012_img_val.tar.

    The prepared copy (array_record, random access) goes to `data_dir`/tfds, whole or not at all.
    Preparing needs TensorFlow (`pip install cam_jax[imagenet]`); reading does not.

    Raises:
      FileNotFoundError: `data_dir` has no ILSVRC2012_img_val.tar and nothing prepared.
      ValueError: the tar could not be prepared (nothing is left behind).
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
        # Prepared beside, then moved into place: a failure midway leaves no half-made tfds/ behind.
        staging = tempfile.mkdtemp(prefix=".tfds-", dir=data_dir)
        try:
            staged = tfds.builder("imagenet2012", data_dir=staging, file_format="array_record")
            try:
                staged.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data_dir))
            except Exception as err:  # tfds and TensorFlow raise many types for a bad tar
                raise ValueError(f"could not prepare imagenet2012 from {os.path.join(data_dir, VAL_TAR)}: "
                                 f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
            if os.path.exists(tfds_dir):  # an unprepared leftover (an older tfds version, or by hand)
                shutil.rmtree(tfds_dir)
            os.rename(staging, tfds_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        builder = tfds.builder("imagenet2012", data_dir=tfds_dir, file_format="array_record")
    return builder


def loader(data_dir: str | os.PathLike, size: int = 224) -> tuple[Loader, int]:
    """ILSVRC2012 validation, resized (shorter side 256/224 * size) and centre-cropped; no masks.

    Returns:
      (loader, number of validation images available).
    """
    source = prepare_imagenet(data_dir).as_data_source(split="validation")

    def load(indices: Sequence[int]) -> Batch:
        records = [source[int(i)] for i in indices]
        pixels = np.stack([images.resize_crop(Image.fromarray(r["image"]), size, size * 256 // 224) for r in records])
        return Batch(pixels, np.array([r["label"] for r in records], np.int32), None)

    return load, len(source)
