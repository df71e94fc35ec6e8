"""What the perturbation metrics share: pixel orders, patches, baselines and chunked scoring.

A "feature" is a pixel with its three colour values (Quantus 0.6 broadcasts a one-channel map to the
image and ranks colour values one by one, so its steps may split a pixel; cam_jax removes whole pixels).
Ranks are stable: tied pixels go in raster order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from cam_jax.cams.perturbation import variant_scores
from cam_jax.cams.targets import Target
from cam_jax.model import Model

# The value a removed pixel takes, from the image (B, H, W, 3) normalised:
#   black: the image's minimum over all its values (Quantus's "black"); mean: the image's mean colour;
#   blur: the image under a Gaussian blur, 11 taps, sigma 5 (RISE's insertion substrate); zero: 0, the
#   data set's mean colour for torchvision's normalisation (RISE's deletion substrate).
BASELINES = ("black", "mean", "blur", "zero")
BLUR_TAPS, BLUR_SIGMA = 11, 5.0


def blur(images: jax.Array, taps: int = BLUR_TAPS, sigma: float = BLUR_SIGMA) -> jax.Array:
    """(B, H, W, 3) images under RISE's blur: a `taps` x `taps` kernel made by
    `scipy.ndimage.gaussian_filter` (sigma `sigma`, its reflecting edges) of a centred impulse, applied
    to each colour with zero padding (RISE's `gkern` and `blur`)."""
    impulse = np.zeros((taps, taps))
    impulse[taps // 2, taps // 2] = 1
    k = scipy.ndimage.gaussian_filter(impulse, sigma)
    kernel = jnp.asarray(k[:, :, None, None] * np.eye(3)[None, None], images.dtype)  # (taps, taps, 3, 3)
    return jax.lax.conv_general_dilated(images, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def baseline(images: jax.Array, name: str) -> jax.Array:
    """The baseline `name` (`BASELINES`) of (B, H, W, 3) images, broadcastable to them."""
    if name == "black":
        return images.min(axis=(1, 2, 3), keepdims=True)
    if name == "mean":
        return images.mean(axis=(1, 2), keepdims=True)
    if name == "blur":
        return blur(images)
    if name == "zero":
        return jnp.zeros((1, 1, 1, 1), images.dtype)
    raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")


def ranks(relevance: jax.Array, descending: bool = True) -> jax.Array:
    """(B, N) each feature's place (0 first) in the order of `relevance` (B, N), most relevant first
    (`descending`) or least; ties in index order."""
    order = jnp.argsort(-relevance if descending else relevance, axis=-1, stable=True)
    return jnp.argsort(order, axis=-1, stable=True)


def patch_sums(maps: jax.Array, patch: int) -> jax.Array:
    """(B, H / patch, W / patch) sums of (B, H, W) maps over a grid of patch x patch squares."""
    b, h, w = maps.shape
    if h % patch or w % patch:
        raise ValueError(f"patch {patch} must divide the maps' sides ({h}, {w})")
    return maps.reshape(b, h // patch, patch, w // patch, patch).sum(axis=(2, 4))


def to_pixels(per_patch: jax.Array, patch: int) -> jax.Array:
    """(B, h, w) values per patch -> (B, h patch, w patch), each pixel its patch's value."""
    return jnp.repeat(jnp.repeat(per_patch, patch, axis=1), patch, axis=2)


def removal_scores(model: Model, start: jax.Array, finish: jax.Array, rank: jax.Array, counts: jax.Array,
                   classes: jax.Array, target: Target, batch_images: int) -> jax.Array:
    """(B, n): `target` scores when the pixels of rank < counts[t] take `finish`'s values and the rest
    `start`'s, for t < n.

    Args:
      start, finish: (B, H, W, 3), or broadcastable to it; rank: (B, H, W) int; counts: (n,) int.
      batch_images: images per forward pass.
    """
    shape = jnp.broadcast_shapes(start.shape, finish.shape)

    def make(idx):
        gone = rank[:, None, :, :, None] < counts[idx][None, :, None, None, None]
        return jnp.broadcast_to(jnp.where(gone, finish[:, None], start[:, None]), (shape[0], idx.shape[0], *shape[1:]))

    return variant_scores(model, make, counts.shape[0], classes, target, batch_images)


def pixel_ranks(maps: jax.Array, descending: bool = True) -> jax.Array:
    """(B, H, W) each pixel's place in the order of (B, H, W) maps (`ranks`)."""
    return ranks(maps.reshape(maps.shape[0], -1), descending).reshape(maps.shape)


def score(model: Model, images: jax.Array, classes: jax.Array, target: Target) -> jax.Array:
    """(B,) `target` of the unperturbed images for `classes`."""
    return target(model(images), classes)


# Noisy linear imputation (Rong et al. 2022, ROAD): each removed pixel becomes the weighted mean of its
# 8 neighbours (1/6 beside, 1/12 diagonal), known neighbours fixed, removed ones solved for together.
_NEIGHBOURS = tuple((dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def _shift(v: jax.Array, dy: int, dx: int) -> jax.Array:
    """(H, W, ...) v moved so that out[i, j] = v[i + dy, j + dx], 0 outside the image."""
    h, w = v.shape[:2]
    padded = jnp.pad(v, ((1, 1), (1, 1)) + ((0, 0),) * (v.ndim - 2))
    return padded[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]


def smooth_fill(image: jax.Array, known: jax.Array, levels: int = 6) -> jax.Array:
    """(H, W, 3) a smooth guess of `image` where `known` (H, W, 1) is 0: push-pull over a pyramid of halved
    sizes, each level's known values averaged and the gaps filled from the level above. The start of
    `impute`'s iterations, which it brings to the exact solution in far fewer steps than from a flat guess."""
    values, weights = [image * known], [known]
    for _ in range(levels):
        h, w = values[-1].shape[:2]
        if min(h, w) < 4:
            break
        size = ((h + 1) // 2, (w + 1) // 2)
        values.append(jax.image.resize(values[-1], (*size, values[-1].shape[2]), "linear"))
        weights.append(jax.image.resize(weights[-1], (*size, 1), "linear"))
    fill = values[-1].sum((0, 1)) / jnp.maximum(weights[-1].sum(), 1e-12) * jnp.ones_like(values[-1])
    for v, w in zip(values[::-1], weights[::-1], strict=True):
        up = jax.image.resize(fill, v.shape, "linear")
        fill = jnp.where(w > 1e-6, v / jnp.maximum(w, 1e-6), up)
    return fill


def impute(image: jax.Array, removed: jax.Array, tol: float = 1e-6, max_iterations: int = 2000) -> jax.Array:
    """(H, W, 3) `image` with its `removed` (H, W) bool pixels replaced by the solution of
    weight_i v_i - sum_{removed j ~ i} w_ij v_j = sum_{known k ~ i} w_ik x_k, weight_i the sum of pixel i's
    neighbours' weights inside the image (Quantus's `noisy_linear_imputation` without its noise, which
    solves the same system with a sparse direct solver). Solved by conjugate gradients: the system is
    symmetric and positive definite wherever every removed region touches a known pixel."""
    known = (~removed)[..., None].astype(image.dtype)
    inside = jnp.ones(image.shape[:2] + (1,), image.dtype)
    weight = sum(w * _shift(inside, dy, dx) for dy, dx, w in _NEIGHBOURS)
    gone = 1 - known

    def neighbours(v):
        return sum(w * _shift(v, dy, dx) for dy, dx, w in _NEIGHBOURS)

    def operator(v):  # known pixels are an identity block, so the operator stays symmetric
        return jnp.where(known > 0, v, weight * v - neighbours(v * gone))

    rhs = jnp.where(known > 0, image, neighbours(image * known))
    start = jnp.where(known > 0, image, smooth_fill(image, known))
    solution, _ = jax.scipy.sparse.linalg.cg(operator, rhs, x0=start, tol=tol, maxiter=max_iterations)
    return jnp.where(known > 0, image, solution)
