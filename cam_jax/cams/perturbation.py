"""Forward-only CAM methods: ScoreCAM and AblationCAM, batched over channels in chunks.

Both weigh A's K channels by how the score changes when the input is masked by
a channel (ScoreCAM: K full forwards per image) or when a channel is ablated
(AblationCAM: K head forwards per image). The K variants of each image are run
as chunks of `batch_images` inputs through `lax.map`, so VGG-16's 512 masked
forwards per image are a few large batches and memory stays bounded by one chunk.
Definitions follow pytorch-grad-cam (score_cam.py, ablation_cam.py, ablation_layer.py).

References:
  Wang et al., "Score-CAM" (CVPR-W 2020); Desai & Ramaswamy, "Ablation-CAM" (WACV 2020).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams.core import Explanation
from cam_jax.cams.targets import Target, logit, over_variants
from cam_jax.cams.weightings import weighted_sum
from cam_jax.model import Model

ABLATION_VALUE = 1e7  # below the minimum, where activations can be negative (pytorch-grad-cam's choice)


def align_corners_matrix(size: int, source: int) -> np.ndarray:
    """(size, source) bilinear interpolation matrix with aligned corners (torch's UpsamplingBilinear2d)."""
    pos = np.arange(size) * ((source - 1) / (size - 1) if size > 1 else 0.0)
    low = np.clip(np.floor(pos).astype(int), 0, source - 1)
    high = np.minimum(low + 1, source - 1)
    frac = pos - low
    m = np.zeros((size, source), np.float32)
    m[np.arange(size), low] += 1 - frac
    m[np.arange(size), high] += frac
    return m


def over_chunks(fn, count: int, chunk: int) -> jax.Array:
    """fn(indices (n,)) -> (B, n, ...) for chunks covering 0..count-1 -> (B, count, ...), one chunk at a
    time (`lax.map`), so memory holds one chunk (at most `chunk` indices); the last chunk repeats index
    count - 1 and is cut off."""
    n = -(-count // chunk)
    chunk = -(-count // n)  # as even as the chunks can be: 17 in chunks of 16 runs 2 x 9, not 2 x 16
    starts = jnp.arange(n) * chunk
    out = jax.lax.map(lambda s: fn(jnp.minimum(s + jnp.arange(chunk), count - 1)), starts)  # (n, B, chunk, ...)
    out = jnp.moveaxis(out, 0, 1)
    return out.reshape(out.shape[0], n * chunk, *out.shape[3:])[:, :count]


def chunk_size(batch: int, batch_images: int) -> int:
    """How many variants of each of `batch` images fit one pass of `batch_images`."""
    return max(1, batch_images // batch)


def variant_scores(model: Model, make, count: int, classes: jax.Array, target: Target = logit,
                   batch_images: int = 32) -> jax.Array:
    """(B, count): `target` of each of `count` variants of every image, for the image's class.

    Args:
      make: variant indices (n,) -> (B, n, H, W, 3) those variants of each image.
      classes: (B,) the class each image's variants are scored for.
      batch_images: images per forward pass (the memory bound): the variants run in chunks.
    """
    b = classes.shape[0]
    chunk = chunk_size(b, batch_images)

    def scores(idx):
        x = make(idx)
        y = model(x.reshape(b * idx.shape[0], *x.shape[2:]))
        return over_variants(target, y.reshape(b, idx.shape[0], -1), classes)

    return over_chunks(scores, count, chunk)


def score_cam(model: Model, x: jax.Array, classes: jax.Array | None = None, target: Target = logit,
              batch_images: int = 32) -> Explanation:
    """ScoreCAM: w = softmax over channels of S(x * mask_k), mask_k = A^k upsampled (aligned corners)
    and min-max normalised (+1e-8), map = ReLU(sum_k w_k A^k).

    Args:
      x: (B, H, W, 3) normalised images.
      batch_images: masked images per forward pass (the memory bound).
    """
    a, context = model.encode(x)
    logits = model.head(a, context)
    classes = jnp.argmax(logits, -1).astype(jnp.int32) if classes is None else classes
    b, h, w, k = a.shape
    size = x.shape[1]
    m = jnp.asarray(align_corners_matrix(size, h))
    up = jnp.einsum("Hh,bhwk,Ww->bkHW", m, a, m)
    lo, hi = up.min(axis=(2, 3), keepdims=True), up.max(axis=(2, 3), keepdims=True)
    masks = (up - lo) / (hi - lo + 1e-8)
    scores = variant_scores(model, lambda idx: x[:, None] * masks[:, idx, :, :, None], k, classes, target,
                            batch_images)
    weights = jax.nn.softmax(scores, axis=-1)
    return Explanation(logits, classes, jax.nn.relu(weighted_sum(a, weights, model.appended)))


def ablated_logits(head, a: jax.Array, batch_images: int = 256, context: jax.Array | None = None) -> jax.Array:
    """(B, K, C): the logits with each channel of A (B, h, w, K) ablated in turn (set to 0, or where A
    has negative values to min(A) - 1e7), K head passes per image in chunks of `batch_images`; each pass
    reads its image's `context` (`Model.encode`) when there is one."""
    b, h, w, k = a.shape
    low = a.min(axis=(1, 2, 3))
    value = jnp.where(low == 0, 0.0, low - ABLATION_VALUE).astype(a.dtype)
    chunk = chunk_size(b, batch_images)

    def logits(idx):
        hit = jax.nn.one_hot(idx, k, dtype=bool)  # (n, K)
        ablated = jnp.where(hit[None, :, None, None, :], value[:, None, None, None, None], a[:, None])
        ablated = ablated.reshape(b * idx.shape[0], h, w, k)
        if context is None:
            return head(ablated).reshape(b, idx.shape[0], -1)
        return head(ablated, jnp.repeat(context, idx.shape[0], axis=0)).reshape(b, idx.shape[0], -1)

    return over_chunks(logits, k, chunk)


def ablation_from_logits(a: jax.Array, logits: jax.Array, ablated: jax.Array, classes: jax.Array,
                         target: Target = logit, appended: int = 0) -> jax.Array:
    """AblationCAM's raw map (B, h, w) from A (B, h, w, K), its logits (B, C) and `ablated_logits` (B, K, C),
    for any target (the ablated passes do not depend on it); `appended` as in `weightings.apply`."""
    s0 = target(logits, classes)
    s_k = over_variants(target, ablated, classes)
    weights = (s0[:, None] - s_k) / jnp.where(s0 == 0, 1.0, s0)[:, None]
    return jax.nn.relu(weighted_sum(a, weights, appended))


def ablation_cam(model: Model, a: jax.Array, context: jax.Array | None, logits: jax.Array, classes: jax.Array,
                 targets: tuple[Target, ...], batch_images: int = 256) -> jax.Array:
    """AblationCAM for several targets, (T, B, h, w): w_k = (S - S_k) / S, S_k the score with A^k set to 0
    (or, where A has negative values, to min(A) - 1e7), map = ReLU(sum_k w_k A^k). Where S = 0 the
    division is by 1. The K ablated head passes per image are run once for every target.

    Args:
      a: (B, h, w, K); context: what the head reads besides A (`Model.encode`), or None; logits: (B, C);
      classes: (T, B), the classes each target explains.
      batch_images: ablated copies of A per head pass (the memory bound).
    """
    ablated = ablated_logits(model.head, a, batch_images, context)
    return jnp.stack([ablation_from_logits(a, logits, ablated, c, t, model.appended)
                      for c, t in zip(classes, targets, strict=True)])
