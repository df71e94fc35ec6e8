"""Image preprocessing as torchvision and Keras' Caffe-converted weights expect it."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet RGB, torchvision
STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)  # Keras VGG16


def resize_crop(image: Image.Image, size: int = 224, resize: int = 256) -> np.ndarray:
    """Shorter side to `resize` (bilinear), centre crop `size`; -> (size, size, 3) uint8."""
    image = image.convert("RGB")
    w, h = image.size
    scale = resize / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))


def normalize(pixels: np.ndarray, preprocess: str = "torchvision") -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> float32 model input for the named weight convention.

    Args:
      pixels: uint8 RGB in [0, 255].
      preprocess: "torchvision" (scale to [0, 1], subtract MEAN, divide by STD)
        or "caffe" (Keras VGG16: to BGR, subtract CAFFE_MEAN_BGR, no scaling).
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {pixels.dtype}")
    x = pixels.astype(np.float32)
    if preprocess == "torchvision":
        return (x / 255.0 - MEAN) / STD
    if preprocess == "caffe":
        return x[..., ::-1] - CAFFE_MEAN_BGR
    raise ValueError(f"unknown preprocess {preprocess!r}; use 'torchvision' or 'caffe'")


def denormalize(x: np.ndarray, preprocess: str = "torchvision") -> np.ndarray:
    """Inverse of `normalize`, for display: float model input -> uint8 RGB."""
    x = np.asarray(x, np.float32)
    if preprocess == "torchvision":
        rgb = (x * STD + MEAN) * 255.0
    elif preprocess == "caffe":
        rgb = (x + CAFFE_MEAN_BGR)[..., ::-1]
    else:
        raise ValueError(f"unknown preprocess {preprocess!r}")
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def load(path: str | os.PathLike, size: int = 224, preprocess: str = "torchvision") -> np.ndarray:
    """Read an image file -> (size, size, 3) float32 model input."""
    with Image.open(path) as image:
        return normalize(resize_crop(image, size, size * 256 // 224), preprocess)
