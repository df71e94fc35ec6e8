"""The smiley (T2's target, T4's sticker) and seeded, batched sticker placement."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The authors' 7x7 smiley file (SPEC.md): white face (1), black eyes at columns 2 and 4, nose at
# column 3, mouth below (0). The paper's figures show this drawing.
SMILEY_7 = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 0, 1, 0, 1, 1],
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 1, 1, 1],
        [1, 0, 1, 1, 1, 0, 1],
        [1, 1, 0, 0, 0, 1, 1],
        [1, 1, 1, 1, 1, 1, 1],
    ],
    np.float32,
)


def smiley(size: int = 14) -> np.ndarray:
    """(size, size) binary smiley in {0, 1}, each 7x7 cell repeated; size a multiple of 7."""
    if size % 7:
        raise ValueError(f"smiley size must be a multiple of 7, got {size}")
    return np.kron(SMILEY_7, np.ones((size // 7, size // 7), np.float32))


def smiley_target(size: int = 14) -> np.ndarray:
    """T2's target I_T as the authors made it: the 7x7 smiley as uint8 (0/255) resized bilinearly
    to (size, size) and rounded to uint8 (64..255 at 14x14), then min-max normalised to [0, 1]."""
    with jax.ensure_compile_time_eval():  # a constant, also when called inside jit
        resized = np.asarray(jax.image.resize(jnp.asarray(SMILEY_7 * 255.0), (size, size), method="bilinear"))
    pixels = np.clip(np.rint(resized), 0, 255)
    return ((pixels - pixels.min()) / (pixels.max() - pixels.min())).astype(np.float32)


def sticker_pixels(mask: np.ndarray) -> np.ndarray:
    """(s, s) binary mask -> (s, s, 3) uint8 RGB sticker, white where 1, black where 0."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"sticker mask must be square (s, s), got {mask.shape}")
    return np.repeat((mask > 0.5)[..., None] * np.uint8(255), 3, axis=-1).astype(np.uint8)


def smiley_for(input_size: int) -> np.ndarray:
    """The smiley as (s, s, 3) uint8 pixels sized to an input: 14 pixels at 224 and above, 7 below.

    Example:
      >>> smiley_for(224).shape, smiley_for(64).shape
      ((14, 14, 3), (7, 7, 3))
    """
    return sticker_pixels(smiley(14 if input_size >= 224 else 7))


def sticker_corners(key: jax.Array, batch: int, image_size: int, sticker_size: int, count: int = 3) -> jax.Array:
    """(batch, count, 2) top-left (row, col) corners, uniform in [s, H - s) on both axes.

    At 224 with 14-pixel stickers that is [14, 210), SPEC.md's range.
    """
    low, high = sticker_size, image_size - sticker_size
    if high <= low:
        raise ValueError(f"a {sticker_size}-pixel sticker does not fit a {image_size}-pixel image with margins")
    return jax.random.randint(key, (batch, count, 2), low, high)


def paste_stickers(pixels: jax.Array, sticker: jax.Array, corners: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Paste `sticker` over each image at each corner, in pixel space.

    Args:
      pixels: (B, H, W, 3) uint8 images.
      sticker: (s, s, 3) uint8.
      corners: (B, n, 2) int top-left corners; later stickers cover earlier ones.

    Returns:
      (stickered pixels (B, H, W, 3) uint8, masks (B, H, W) bool of covered pixels).
    """
    if sticker.shape[0] > pixels.shape[1] or sticker.shape[1] > pixels.shape[2]:
        raise ValueError(f"sticker {sticker.shape[:2]} is larger than the images {pixels.shape[1:3]}")
    sticker = jnp.asarray(sticker, pixels.dtype)
    ones = jnp.ones(sticker.shape[:2], bool)

    def one(image, image_corners):
        mask = jnp.zeros(image.shape[:2], bool)
        for r, c in image_corners:
            image = jax.lax.dynamic_update_slice(image, sticker, (r, c, 0))
            mask = jax.lax.dynamic_update_slice(mask, ones, (r, c))
        return image, mask

    return jax.vmap(one)(pixels, corners)


def paste_by_index(pixels: np.ndarray, indices: np.ndarray, seed: int, sticker: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Three stickers on each uint8 image (B, H, W, 3), placed by (seed, the image's global index) alone,
    so any split of the data over processes or batches places them identically.

    Returns (stickered pixels (B, H, W, 3) uint8, masks (B, H, W) bool of covered pixels).
    """
    size = pixels.shape[1]
    key = jax.random.key(seed)
    corners = jax.vmap(lambda i: sticker_corners(jax.random.fold_in(key, i), 1, size, sticker.shape[0])[0])(
        jnp.asarray(indices)
    )
    pasted, masks = paste_stickers(jnp.asarray(pixels), jnp.asarray(sticker), corners)
    return np.asarray(pasted), np.asarray(masks)
