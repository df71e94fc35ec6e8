"""Bad or unusual inputs are refused with a clear message or read correctly, never silently wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from cam_jax.data import images


def expected(value: int) -> np.ndarray:
    """The model input of a (224, 224) image whose every pixel is grey `value`."""
    return images.normalize(np.full((224, 224, 3), value, np.uint8))


def test_a_thin_image_is_resampled_only_where_it_is_cropped(tmp_path):
    """1 x 20000 pixels (60 KB): before, the shorter side went to 256 first, a 256 x 5,120,000 image
    (3.9 GB). The crop's source region is 0.875 pixels wide around x = 10,000, inside a run of 100s."""
    row = ((np.arange(20000) + 50) // 100).astype(np.uint8)[None, :].repeat(3, 0).T[None]  # (1, 20000, 3)
    path = tmp_path / "thin.png"
    Image.fromarray(row).save(path)
    np.testing.assert_array_equal(images.load(path), expected(100))


@given(st.integers(0, 65535))
def test_16_bit_grey_is_scaled_not_clipped(value):
    image = Image.fromarray(np.full((240, 240), value, np.uint16))
    assert image.mode.startswith("I;16")
    np.testing.assert_array_equal(np.asarray(images.resize_crop(image)), np.full((224, 224, 3), round(value / 257)))


def test_float_images_in_unit_range_are_scaled_others_refused(tmp_path):
    path = tmp_path / "half.tiff"
    Image.fromarray(np.full((240, 240), 0.5, np.float32)).save(path)
    np.testing.assert_array_equal(images.load(path), expected(128))
    Image.fromarray(np.full((240, 240), 3.0, np.float32)).save(path)
    with pytest.raises(ValueError, match="finite values in"):
        images.load(path)


def test_decompression_bombs_and_non_images_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300 // 3)  # a 90,000-pixel "bomb" at this limit
    with pytest.raises(ValueError, match="decompression bomb"):
        images.load(path)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        images.load(text)
