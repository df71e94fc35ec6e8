"""The evaluation of a suite (the paper's Tables 1 and 2 by default) as one jitted step over a batch.

The fused step builds every model of the suite inside `jit` from the same traced
parameters, so their identical conv trunks are one computation: XLA's common
subexpression elimination merges them (`tests/test_evaluate.py` counts the
convolutions in the compiled step). Per batch that is one trunk pass on the
clean and one on the stickered images, each model's cheap extra channel, and a
head forward/backward per model. `unfused_step` runs the models one by one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams.engine import Explanation, cam_from_features
from cam_jax.cams.weightings import Weighting, grad_cam
from cam_jax.evaluation import metrics
from cam_jax.evaluation.suite import PAPER_SUITE, WEIGHTINGS, Entry, Settings, build
from cam_jax.manipulations import stickers
from cam_jax.model import Model

METRICS = ("correct", "dy_inf", "l1", "pointing", "mass", "collapsed")

# (model name, "clean" | "sticker") -> (explanation, A_n's last channel)
Explain = Callable[[str, str], tuple[Explanation, jax.Array]]


def explain(model: Model, x: jax.Array, weighting: Weighting = grad_cam) -> tuple[Explanation, jax.Array]:
    """GradCAM of `model` on x and the map its last channel holds (a manipulation's target)."""
    a = model.features(x)
    return cam_from_features(model.head, a, weighting=weighting), a[..., -1]


def evaluate(explain_fn: Explain, labels: jax.Array, masks: jax.Array | None,
             suite: tuple[Entry, ...] = PAPER_SUITE) -> dict[tuple[str, str], dict[str, jax.Array]]:
    """Per-image metrics (B,) for every row of `suite.rows(suite)`; NaN where a figure does not apply.

    Each entry's target on each data is the map written into A^{K+1} ("injected":
    ones, the smiley, F(x)) or the original's own explanation ("original": T4 on
    clean images). Localisation uses the object masks on both clean and sticker images.
    """
    nan = jnp.full(labels.shape, jnp.nan)

    def row(expl, reference, target, score_change="max"):
        change = metrics.dy_inf if score_change == "max" else metrics.dy_mean
        return {
            "correct": metrics.correct(expl.logits, labels).astype(jnp.float32),
            "dy_inf": nan if reference is None else change(reference.logits, expl.logits),
            "l1": nan if target is None else metrics.l1(expl.cam, target),
            "pointing": nan if masks is None else metrics.pointing_game(expl.cam, masks).astype(jnp.float32),
            "mass": nan if masks is None else metrics.mass_in_mask(expl.cam, masks),
            "collapsed": (expl.cam.max(axis=(-2, -1)) == 0).astype(jnp.float32),
        }

    out = {}
    for data in ("clean", "sticker"):
        entries = [e for e in suite if data in e.targets]
        if data == "sticker" and not entries:
            continue
        original, _ = explain_fn("original", data)
        out[("original", data)] = row(original, None, None)
        for e in entries:
            expl, injected = explain_fn(e.name, data)
            target = original.cam if e.targets[data] == "original" else injected
            out[(e.name, data)] = row(expl, original, target, e.score_change)
    if masks is not None:  # what a map that knows nothing scores: a random point, uniform mass
        out[("chance", "clean")] = {"pointing": metrics.pointing_chance(masks), "mass": masks.mean(axis=(-2, -1))}
    return out


def fused_step(settings: Settings = Settings(), suite: tuple[Entry, ...] = PAPER_SUITE):
    """jit((model, clean, sticker, labels, masks) -> per-image metrics), trunks shared."""

    weighting = WEIGHTINGS[settings.convention]

    def step(model, clean, sticker, labels, masks):
        models, inputs = build(model, settings, suite), {"clean": clean, "sticker": sticker}
        return evaluate(lambda name, data: explain(models[name], inputs[data], weighting), labels, masks, suite)

    return jax.jit(step)


def unfused_step(settings: Settings = Settings(), suite: tuple[Entry, ...] = PAPER_SUITE):
    """The same metrics with each model jitted and run on its own: one trunk pass per (model, data)."""
    jitted = jax.jit(explain, static_argnames="weighting")
    weighting = WEIGHTINGS[settings.convention]

    def step(model, clean, sticker, labels, masks):
        models, inputs = build(model, settings, suite), {"clean": clean, "sticker": sticker}
        return evaluate(lambda name, data: jitted(models[name], inputs[data], weighting), labels, masks, suite)

    return step


def sticker_images(pixels: np.ndarray, indices: np.ndarray, seed: int, sticker: np.ndarray) -> np.ndarray:
    """Paste 3 stickers on each uint8 image, placed by (seed, the image's global index) alone,
    so any split of the data over processes or batches places them identically."""
    size = pixels.shape[1]
    key = jax.random.key(seed)
    corners = jax.vmap(lambda i: stickers.sticker_corners(jax.random.fold_in(key, i), 1, size, sticker.shape[0])[0])(
        jnp.asarray(indices)
    )
    pasted, _ = stickers.paste_stickers(jnp.asarray(pixels), jnp.asarray(sticker), corners)
    return np.asarray(pasted)
