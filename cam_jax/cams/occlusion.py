"""Occlusion: a forward-only attribution, how much the score drops when a window of the image is covered.

No gradient is read, so a manipulation that lies through dS/dA or dS/dx (T1-T4 add channels whose
gradient is large and whose effect on the scores is nil) has nothing to act on: occlusion sees only
what the function does. Its price is one forward per window position. The definition is captum's
`Occlusion` with a window over all three colour channels: each pixel gets the mean, over the window
positions that cover it, of S(x) - S(x with the window set to the baseline).

References:
  Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks" (ECCV 2014).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams.core import Explanation
from cam_jax.cams.perturbation import variant_scores
from cam_jax.cams.targets import Target, logit
from cam_jax.model import Model


def windows(size: int, window: int, stride: int) -> np.ndarray:
    """(n, size) bool: which of `size` pixels each of the n = ceil((size - window) / stride) + 1 window
    positions along one axis covers (captum's positions: the last window may stick out, and is cropped).

    Example:
      >>> windows(5, 2, 2).astype(int)
      array([[1, 1, 0, 0, 0],
             [0, 0, 1, 1, 0],
             [0, 0, 0, 0, 1]])
    """
    starts = np.arange(-(-(size - window) // stride) + 1) * stride
    pixels = np.arange(size)
    return (pixels[None] >= starts[:, None]) & (pixels[None] < starts[:, None] + window)


def occlusion(model: Model, x: jax.Array, classes: jax.Array | None = None, target: Target = logit,
              window: int | None = None, stride: int | None = None, baseline: jax.Array | None = None,
              batch_images: int = 32) -> Explanation:
    """Occlusion maps of images x (B, H, W, 3) at their resolution.

    Args:
      window: side of the square window in pixels (default H / cam_size: one cell of A, 16 for VGG at 224).
      stride: between window positions (default `window`: the windows tile the image).
      baseline: what a covered pixel becomes, broadcastable to x (default 0: the mean colour after the
        torchvision normalisation).
      batch_images: occluded images per forward pass (the memory bound).

    Returns:
      `Explanation` whose attribution (B, H, W, 3) holds the pixel's value in each colour channel (the window
      spans all three, as captum's (3, window, window)); `cam` is their sum. Pixels no window covers (a
      stride above the window) get 0.
    """
    size = x.shape[1]
    window = size // model.cam_size if window is None else window
    stride = window if stride is None else stride
    rows = windows(size, window, stride)  # (n, H), the same along both axes of a square image
    n = rows.shape[0]
    logits = model(x)
    classes = jnp.argmax(logits, -1).astype(jnp.int32) if classes is None else classes
    fill = jnp.broadcast_to(jnp.zeros((), x.dtype) if baseline is None else jnp.asarray(baseline, x.dtype), x.shape)
    r, c = jnp.asarray(rows), jnp.asarray(rows)

    def occluded(idx):
        covered = r[idx // n][:, :, None] & c[idx % n][:, None, :]  # (m, H, W)
        return jnp.where(covered[None, :, :, :, None], fill[:, None], x[:, None])

    drops = target(logits, classes)[:, None] - variant_scores(model, occluded, n * n, classes, target, batch_images)
    rows_f = jnp.asarray(rows, x.dtype)
    total = jnp.einsum("bij,iy,jx->byx", drops.reshape(-1, n, n), rows_f, rows_f)
    counts = jnp.einsum("iy,jx->yx", rows_f, rows_f)
    value = jnp.where(counts > 0, total / jnp.where(counts > 0, counts, 1), 0)
    attribution = jnp.broadcast_to(value[..., None], x.shape)
    return Explanation(logits, classes, attribution.sum(axis=-1), attribution)
