"""Data: preprocessing, the generated shapes with masks, ImageNet through tfds, class names."""

from cam_jax.data import imagenet as imagenet
from cam_jax.data import images as images
from cam_jax.data import labels as labels
from cam_jax.data import shapes as shapes
from cam_jax.data.batch import Batch as Batch
from cam_jax.data.batch import Loader as Loader

__all__ = [
    "Batch",
    "Loader",
    "imagenet",
    "images",
    "labels",
    "shapes",
]
