"""The paper's evaluation (Tables 1 and 2) as one jitted step over a batch.

The fused step builds all five models inside `jit` from the same traced
parameters, so their identical conv trunks are one computation: XLA's common
subexpression elimination merges them (`tests/test_evaluate.py` counts the
convolutions in the compiled step). Per batch that is one trunk pass on the
clean and one on the stickered images, each model's cheap extra channel, and a
head forward/backward per model. `unfused_step` runs the models one by one.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax import manipulate, metrics, stickers
from cam_jax.gradcam import Explanation, cam_from_features
from cam_jax.model import Model

MODELS = ("original", "T1", "T2", "T3", "T4")
ROWS = tuple((m, "clean") for m in MODELS) + (("original", "sticker"), ("T4", "sticker"))
METRICS = ("correct", "dy_inf", "l1", "pointing", "mass", "collapsed")

# (model name, "clean" | "sticker") -> (explanation, A_n's last channel)
Explain = Callable[[str, str], tuple[Explanation, jax.Array]]


class Settings(NamedTuple):
    """Manipulation options (the paper's constants otherwise) for an evaluation."""

    exact: bool = False  # bit-exact T1/T2 (`manipulate.constant_flat(exact=True)`)
    t3_seed: int = 0
    preprocess: str = "torchvision"
    sticker_size: int = 14  # pixels; the smiley is drawn in 7x7 cells, so a multiple of 7


def manipulated_models(model: Model, settings: Settings = Settings()) -> dict[str, Model]:
    """The original and T1-T4 with the paper's constants."""
    return {
        "original": model,
        "T1": manipulate.constant_flat(model, exact=settings.exact),
        "T2": manipulate.constant_image(model, exact=settings.exact),
        "T3": manipulate.semi_random(model, seed=settings.t3_seed),
        "T4": manipulate.sticker_backdoor(model, sticker=sticker(settings), preprocess=settings.preprocess),
    }


def sticker(settings: Settings) -> np.ndarray:
    """(s, s, 3) uint8: the smiley sticker pasted on the images and detected by T4."""
    return stickers.sticker_pixels(stickers.smiley(settings.sticker_size))


def explain(model: Model, x: jax.Array) -> tuple[Explanation, jax.Array]:
    """GradCAM of `model` on x and the map its last channel holds (a manipulation's target)."""
    a = model.features(x)
    return cam_from_features(model.head, a), a[..., -1]


def evaluate(explain_fn: Explain, labels: jax.Array,
             masks: jax.Array | None) -> dict[tuple[str, str], dict[str, jax.Array]]:
    """Per-image metrics (B,) for every row of ROWS; NaN where a figure does not apply.

    Targets (SPEC.md): T1-T3 and T4 on stickers, the map written into A^{K+1}
    (ones, the smiley, F(x)); T4 on clean images, the original's own GradCAM.
    Localisation uses the object masks on both clean and sticker images.
    """
    nan = jnp.full(labels.shape, jnp.nan)

    def row(expl, reference, target):
        return {
            "correct": metrics.correct(expl.logits, labels).astype(jnp.float32),
            "dy_inf": nan if reference is None else metrics.dy_inf(reference.logits, expl.logits),
            "l1": nan if target is None else metrics.l1(expl.cam, target),
            "pointing": nan if masks is None else metrics.pointing_game(expl.cam, masks).astype(jnp.float32),
            "mass": nan if masks is None else metrics.mass_in_mask(expl.cam, masks),
            "collapsed": (expl.cam.max(axis=(-2, -1)) == 0).astype(jnp.float32),
        }

    original, _ = explain_fn("original", "clean")
    out = {("original", "clean"): row(original, None, None)}
    for name in MODELS[1:]:
        expl, injected = explain_fn(name, "clean")
        out[(name, "clean")] = row(expl, original, original.cam if name == "T4" else injected)
    original_s, _ = explain_fn("original", "sticker")
    expl, injected = explain_fn("T4", "sticker")
    out[("original", "sticker")] = row(original_s, None, None)
    out[("T4", "sticker")] = row(expl, original_s, injected)
    if masks is not None:  # what a map that knows nothing scores: a random point, uniform mass
        out[("chance", "clean")] = {"pointing": metrics.pointing_chance(masks), "mass": masks.mean(axis=(-2, -1))}
    return out


def fused_step(settings: Settings = Settings()):
    """jit((model, clean, sticker, labels, masks) -> per-image metrics), trunks shared."""

    def step(model, clean, sticker, labels, masks):
        models, inputs = manipulated_models(model, settings), {"clean": clean, "sticker": sticker}
        return evaluate(lambda name, data: explain(models[name], inputs[data]), labels, masks)

    return jax.jit(step)


def unfused_step(settings: Settings = Settings()):
    """The same metrics with each model jitted and run on its own: 7 trunk passes a batch."""
    jitted = jax.jit(explain)

    def step(model, clean, sticker, labels, masks):
        models, inputs = manipulated_models(model, settings), {"clean": clean, "sticker": sticker}
        return evaluate(lambda name, data: jitted(models[name], inputs[data]), labels, masks)

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
