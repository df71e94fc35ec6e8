"""Faithfulness: does removing what a map credits change the model's score as the map says? Per image.

Every metric takes the model, (B, H, W, 3) normalised images, (B, H, W) maps at the images' resolution,
the (B,) classes explained and a key, and runs its perturbed images through the model in chunks of
`batch_images`. A pixel is removed whole (all three colours, `perturbing`); the baselines are
`perturbing.BASELINES`. Definitions follow Quantus 0.6 (faithfulness/) unless a docstring says
otherwise, on the map as given (Quantus first scales maps by their maximum, which no metric here
depends on); `docs/METRICS.md` lists where cam_jax differs and why.

References:
  Bach et al. 2015 (pixel flipping); Samek et al. 2017 (region perturbation); Montavon et al. 2018
  (selectivity); Petsiuk et al., "RISE" (BMVC 2018, deletion and insertion); Rong et al., "A consistent
  and efficient evaluation strategy for attribution methods" (ICML 2022, ROAD); Bhatt et al. 2020
  (faithfulness correlation); Nguyen & Martinez 2020 (monotonicity correlation); Yeh et al. 2019
  (infidelity).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cam_jax.cams.targets import Target, logit, softmax
from cam_jax.metrics import perturbing
from cam_jax.metrics.statistics import pearson, spearman
from cam_jax.model import Model


def step_counts(pixels: int, steps: int, first: int = 1) -> jax.Array:
    """(steps - first + 1,) pixels removed after steps first..steps: floor(t pixels / steps), so every step
    removes floor or ceil of pixels / steps (exactly that when it divides) and the last step reaches all."""
    return jnp.arange(first, steps + 1) * pixels // steps


def _removal_curve(model, images, maps, classes, target, steps, baseline, batch_images, first, insert=False):
    rank = perturbing.pixel_ranks(maps)
    counts = step_counts(maps.shape[1] * maps.shape[2], steps, first)
    fill = perturbing.baseline(images, baseline)
    start, finish = (fill, images) if insert else (images, fill)
    return perturbing.removal_scores(model, start, finish, rank, counts, classes, target, batch_images)


def pixel_flipping(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
                   steps: int = 16, baseline: str = "black", target: Target = softmax,
                   batch_images: int = 64) -> jax.Array:
    """(B, steps) the score after each step of removing the most relevant pixels, cumulatively, H W / steps
    a step (`step_counts`; Quantus's PixelFlipping with features_in_step = 3 H W / steps; no unperturbed
    point). A faithful map makes it fall fast."""
    return _removal_curve(model, images, maps, classes, target, steps, baseline, batch_images, first=1)


def deletion(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
             steps: int = 16, baseline: str = "zero", target: Target = softmax, batch_images: int = 64) -> jax.Array:
    """(B, steps + 1) RISE's deletion curve: the score with 0, 1, ..., steps steps of the most relevant
    pixels replaced by the baseline (RISE: `zero`, 224 pixels a step). Lower area = more faithful."""
    return _removal_curve(model, images, maps, classes, target, steps, baseline, batch_images, first=0)


def insertion(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
              steps: int = 16, baseline: str = "blur", target: Target = softmax, batch_images: int = 64) -> jax.Array:
    """(B, steps + 1) RISE's insertion curve: the score of the baseline image (RISE: `blur`) with 0, 1, ...,
    steps steps of the most relevant pixels put back. Higher area = more faithful."""
    return _removal_curve(model, images, maps, classes, target, steps, baseline, batch_images, first=0, insert=True)


def area(curve: jax.Array) -> jax.Array:
    """(B,) RISE's area under a (B, n) curve on [0, 1]: the trapezoid rule, spacing 1 / (n - 1); a curve of
    one point is its value."""
    if curve.shape[-1] == 1:
        return curve[..., 0]
    return (curve.sum(-1) - (curve[..., 0] + curve[..., -1]) / 2) / (curve.shape[-1] - 1)


def _patch_rank(maps: jax.Array, patch: int, order: str, key: jax.Array) -> jax.Array:
    """(B, H, W) each pixel's patch's place in the order: "morf" (most relevant first), "lerf", "random"."""
    sums = perturbing.patch_sums(maps, patch)
    b, h, w = sums.shape
    flat = sums.reshape(b, -1)
    if order == "random":
        flat = jax.random.uniform(key, flat.shape)
    elif order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf', 'lerf' or 'random', got {order!r}")
    rank = perturbing.ranks(flat, descending=order != "lerf")
    return perturbing.to_pixels(rank.reshape(b, h, w), patch)


def region_perturbation(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
                        patch: int = 28, regions: int = 64, order: str = "morf", baseline: str = "black",
                        target: Target = softmax, batch_images: int = 64) -> jax.Array:
    """(B, min(regions, patches)) y(x) - y after removing 1, 2, ... patch x patch squares of a fixed grid
    in the order of their summed relevance (Quantus's RegionPerturbation; its default patch is 8).
    "random" orders the patches by `key`."""
    rank = _patch_rank(maps, patch, order, key)
    count = min(regions, (maps.shape[1] // patch) * (maps.shape[2] // patch))
    y0 = perturbing.score(model, images, classes, target)
    fill = perturbing.baseline(images, baseline)
    scores = perturbing.removal_scores(model, images, fill, rank, jnp.arange(1, count + 1), classes, target,
                                       batch_images)
    return y0[:, None] - scores


def selectivity(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
                patch: int = 28, baseline: str = "black", target: Target = softmax,
                batch_images: int = 64) -> jax.Array:
    """(B, patches) the score after removing every patch x patch square of a fixed grid, most relevant
    first, cumulatively (Quantus's Selectivity; its default patch is 8). A faithful map makes it fall fast."""
    rank = _patch_rank(maps, patch, "morf", key)
    count = (maps.shape[1] // patch) * (maps.shape[2] // patch)
    fill = perturbing.baseline(images, baseline)
    return perturbing.removal_scores(model, images, fill, rank, jnp.arange(1, count + 1), classes, target,
                                     batch_images)


def faithfulness_correlation(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array,
                             key: jax.Array, *, runs: int = 100, subset: int = 224, baseline: str = "black",
                             target: Target = logit, batch_images: int = 64) -> jax.Array:
    """(B,) Pearson correlation, over `runs` random subsets of `subset` pixels, between the map's sum over
    the subset and the score's drop when the subset is removed (Quantus's FaithfulnessCorrelation on
    pixels; its subsets are `subset` colour values). Run r removes, in each image, the `subset` pixels
    with the smallest values of `jax.random.uniform(jax.random.fold_in(key, r), (B, H W))`."""
    b, h, w = maps.shape
    y0 = perturbing.score(model, images, classes, target)
    fill = perturbing.baseline(images, baseline)

    def chosen(r):  # the `subset` smallest draws: a top-k, not a sort of every pixel
        _, picked = jax.lax.top_k(-jax.random.uniform(jax.random.fold_in(key, r), (b, h * w)), subset)
        return jnp.zeros((b, h * w), bool).at[jnp.arange(b)[:, None], picked].set(True).reshape(b, h, w)

    def make(idx):
        gone = jax.vmap(chosen, out_axes=1)(idx)[..., None]  # (B, n, H, W, 1)
        return jnp.where(gone, fill[:, None], images[:, None])

    drops = y0[:, None] - perturbing.variant_scores(model, make, runs, classes, target, batch_images)
    sums = jax.lax.map(lambda r: (maps * chosen(r)).sum((1, 2)), jnp.arange(runs)).T  # (B, runs)
    return pearson(sums, drops)


def monotonicity_correlation(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array,
                             key: jax.Array, *, steps: int = 16, samples: int = 10, eps: float = 1e-5,
                             target: Target = softmax, batch_images: int = 64) -> jax.Array:
    """(B,) Spearman correlation, over `steps` groups of pixels (least relevant first, H W / steps each,
    `step_counts`), between a group's map sum and the score's mean squared change when that group alone is set to
    a uniform value, `samples` times, over y(x)^2 (Quantus's MonotonicityCorrelation: its baseline
    "uniform" draws one value in [0, 1) per image and draw). Draw s of group g is
    `jax.random.uniform(key, (steps, samples, B))[g, s]`."""
    b, h, w = maps.shape
    rank = perturbing.pixel_ranks(maps, descending=False)
    bounds = step_counts(h * w, steps, first=0)
    values = jax.random.uniform(key, (steps, samples, b))
    y0 = perturbing.score(model, images, classes, target)

    def make(idx):
        group, draw = idx // samples, idx % samples
        inside = (rank[:, None] >= bounds[group][None, :, None, None]) & (rank[:, None] < bounds[group + 1][
            None, :, None, None])
        fill = values[group, draw].T[:, :, None, None, None]  # (B, n, 1, 1, 1)
        return jnp.where(inside[..., None], fill, images[:, None])

    y = perturbing.variant_scores(model, make, steps * samples, classes, target, batch_images)
    change = ((y.reshape(b, steps, samples) - y0[:, None, None]) ** 2).mean(-1)
    weight = jnp.where(jnp.abs(y0) >= eps, 1 / jnp.abs(y0), 1.0) ** 2
    sums = jax.vmap(lambda g: jnp.where((rank >= bounds[g]) & (rank < bounds[g + 1]), maps, 0).sum((1, 2)))(
        jnp.arange(steps)).T
    return spearman(sums, change * weight[:, None])


def infidelity(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
               patch: int = 28, baseline: str = "black", target: Target = logit, batch_images: int = 64) -> jax.Array:
    """(B,) mean over t of (y(x) - y(x_t) - sum(map * (x - x_t) summed over colours))^2, x_t the image with
    its first t patch x patch squares removed in raster order (Quantus 0.6's Infidelity: deterministic,
    every sample alike, its default patch 4; Yeh et al. perturb with random noise instead)."""
    b, h, w = maps.shape
    grid = jnp.arange((h // patch) * (w // patch)).reshape(1, h // patch, w // patch)
    rank = jnp.broadcast_to(perturbing.to_pixels(grid, patch), maps.shape)
    count = grid.size
    counts = jnp.arange(1, count + 1)
    fill = perturbing.baseline(images, baseline)
    y0 = perturbing.score(model, images, classes, target)
    y = perturbing.removal_scores(model, images, fill, rank, counts, classes, target, batch_images)
    # Removing the first t squares changes the image by (x - fill) inside them: its map-weighted sum is
    # a cumulative sum over squares in raster order.
    per_square = perturbing.patch_sums(maps * (images - jnp.broadcast_to(fill, images.shape)).sum(-1), patch)
    predicted = jnp.cumsum(per_square.reshape(b, -1), axis=-1)
    return ((y0[:, None] - y - predicted) ** 2).mean(-1)


ROAD_PERCENTAGES = tuple(range(1, 100, 2))  # Quantus's


def road(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
         percentages: tuple[int, ...] = ROAD_PERCENTAGES, order: str = "morf", noise: float = 0.01,
         batch_images: int = 64) -> jax.Array:
    """(B, len(percentages)) 1.0 where the model still predicts the class after the floor(H W p / 100)
    most ("morf") or least ("lerf") relevant pixels are removed by noisy linear imputation
    (`perturbing.impute` plus N(0, noise) on the removed pixels), else 0.0; each percentage from the
    original image (ROAD, Rong et al. 2022). The mean over images is Quantus 0.6's ROAD where its code
    runs (it fails on three-colour images: docs/METRICS.md). Percentage i's noise is
    `jax.random.normal(jax.random.fold_in(key, i), (B, H, W, 3))`."""
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    b, h, w = maps.shape
    rank = perturbing.pixel_ranks(maps, descending=order == "morf")
    counts = jnp.asarray([h * w * p // 100 for p in percentages])

    def make(idx):
        removed = rank[:, None] < counts[idx][None, :, None, None]  # (B, n, H, W)
        filled = jax.vmap(jax.vmap(perturbing.impute), in_axes=(None, 1), out_axes=1)(images, removed)
        jitter = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), images.shape), out_axes=1)(idx)
        return jnp.where(removed[..., None], filled + noise * jitter, images[:, None])

    correct = lambda logits, c: (logits.argmax(-1) == c).astype(jnp.float32)  # noqa: E731
    return perturbing.variant_scores(model, make, len(percentages), classes, correct, batch_images)
