"""Image preprocessing as torchvision and Keras' Caffe-converted weights expect it."""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet RGB, torchvision
STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)  # Keras VGG16


def resize_crop(image: Image.Image, size: int = 224, resize: int = 256) -> np.ndarray:
    """Shorter side to `resize` (bilinear), centre crop `size`; -> (size, size, 3) uint8.

    Only the cropped region is resampled (PIL's `box`, in source pixels, at the scale the full
    resize would have), so a 1 x 20000 image costs a (size, size) result, not a 256 x 5,120,000 one.
    """
    image = to_rgb(image)
    w, h = image.size
    scale = resize / min(w, h)
    full_w, full_h = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (full_w - size) // 2, (full_h - size) // 2
    sx, sy = full_w / w, full_h / h
    box = (left / sx, top / sy, (left + size) / sx, (top + size) / sy)
    return np.asarray(image.resize((size, size), Image.BILINEAR, box=box))


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, scaling what PIL's convert("RGB") would clip: 16-bit images by 65535 / 255, float
    images whose values lie in [0, 1] by 255 (other float ranges are refused, being ambiguous)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"a {image.mode} image with values outside 0..65535 is not a 16-bit image")
        return Image.fromarray(np.rint(values / 257).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ValueError("a floating-point image must hold finite values in [0, 1] (got "
                             f"{np.nanmin(values):.3g}..{np.nanmax(values):.3g}); save it as 8-bit")
        return Image.fromarray(np.rint(values * 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


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
    """Read an image file -> (size, size, 3) float32 model input.

    Raises:
      ValueError: not an image, a decompression bomb (more pixels than PIL's MAX_IMAGE_PIXELS), or
        a high-bit-depth image whose values cannot be scaled to 8 bits (`to_rgb`).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return normalize(resize_crop(image, size, size * 256 // 224), preprocess)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"{path}: refused as a decompression bomb ({err})") from err
    except UnidentifiedImageError as err:
        raise ValueError(f"{path} is not an image PIL can read") from err
