"""Measure an attack by fine-tuning against its original: accuracy, fooling success, localisation,
and how far every CAM method's map moved (the transfer of a GradCAM attack to the other methods)."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cam_jax.cams.methods import explain_many
from cam_jax.data import shapes, stickers
from cam_jax.evaluation.config import MATRIX_METHODS
from cam_jax.manipulations import finetune, fooling
from cam_jax.manipulations.finetune import gradcam_view
from cam_jax.manipulations.fooling import AttackBatch, Fooling, Views
from cam_jax.metrics import change, localisation
from cam_jax.metrics.change import FOOLED
from cam_jax.model import Model


@functools.partial(jax.jit, static_argnames="fooling")
def _gradcam_figures(original: Model, model: Model, batch: AttackBatch, masks: jax.Array, fooling: Fooling
                     ) -> dict[str, jax.Array]:
    cam = gradcam_view(model)(batch.x, batch.labels)
    return {"accuracy": model(batch.x).argmax(-1) == batch.labels,
            "fooled": fooling.fooled(Views(gradcam_view(model), gradcam_view(original)), batch),
            "mass_in_mask": localisation.mass_in_mask(cam, masks),
            "pointing_game": localisation.pointing_game(cam, masks), "all_zero": cam.max(axis=(-2, -1)) <= 0}


def _per_image(original: Model, attacked: Model, fooling: Fooling, batch: AttackBatch, masks: jax.Array,
               methods: tuple[str, ...]) -> dict[str, np.ndarray]:
    """(B,) figures of one batch, each before (the original) and after (the attacked model)."""
    out: dict[str, np.ndarray] = {}
    for when, model in (("before", original), ("after", attacked)):
        for name, v in _gradcam_figures(original, model, batch, masks, fooling).items():
            out[f"{name}_{when}"] = np.asarray(v)
    for data, x in (("clean", batch.x), ("sticker", batch.stickered)):
        ours = explain_many(attacked, x, methods, classes=batch.labels)
        theirs = explain_many(original, x, methods, classes=batch.labels)
        for method in methods:
            out[f"moved_{data}_{method}"] = np.asarray(change.moved(ours[method].cam, theirs[method].cam))
    return out


def assess(original: Model, attacked: Model, fooling: Fooling, batches: Iterable[tuple[AttackBatch, np.ndarray]],
           methods: tuple[str, ...] = MATRIX_METHODS) -> dict:
    """Means over the images of `batches` ((AttackBatch, object masks (B, H, W)) pairs), GradCAM explaining
    each image's label:

    {"images", "accuracy", "fooling_success_rate", "mass_in_mask", "pointing_game", "all_zero_maps":
     {"before", "after"},
     "moved": {"clean" | "sticker": {method: mean |normalised map - original's| per pixel}},
     "fooled_methods": {"clean" | "sticker": [methods that moved by more than FOOLED]}}

    "before" of the fooling success rate counts the original against itself: the images its own
    maps already pass the test on.
    """
    parts = [_per_image(original, attacked, fooling, b, jnp.asarray(m), methods) for b, m in batches]
    per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    figures = {name: {when: float(per[f"{key}_{when}"].mean()) for when in ("before", "after")}
               for name, key in (("accuracy", "accuracy"), ("fooling_success_rate", "fooled"),
                                 ("mass_in_mask", "mass_in_mask"), ("pointing_game", "pointing_game"),
                                 ("all_zero_maps", "all_zero"))}
    moved = {data: {m: float(per[f"moved_{data}_{m}"].mean()) for m in methods} for data in ("clean", "sticker")}
    return {"images": int(per["accuracy_before"].shape[0]), **figures, "moved": moved,
            "fooled_methods": {data: [m for m, v in moved[data].items() if v > FOOLED] for data in moved}}


def test_batches(model: Model, count: int, seed: int, sticker: np.ndarray, size: int = 32
                 ) -> Iterator[tuple[AttackBatch, np.ndarray]]:
    """(AttackBatch, object masks) of the first `count` test shapes, stickers placed by (seed, index)."""
    for first in range(0, count, size):
        indices = range(first, min(first + size, count))
        data = shapes.batch(shapes.TEST_SEED, indices, model.input_size)
        yield finetune.batch_of(data.pixels, data.labels, list(indices), seed, sticker, model.cam_size), data.masks


def attack(model: Model, loss: str, *, steps: int = 300, batch_size: int = 16, lr: float = 1e-4, lam: float = 1.0,
           keep: str = "labels", evade: float = 0.0, seed: int = 0, test_images: int = 256,
           methods: tuple[str, ...] = MATRIX_METHODS, progress: bool = True) -> tuple[Model, dict, list[dict]]:
    """Fine-tune `model` on generated shapes against the fooling loss `loss` (`fooling.FOOLINGS`) and
    `assess` the result on `test_images` test shapes: (attacked model, assessment with the settings and
    times, the training log)."""
    sticker = stickers.smiley_for(model.input_size)
    objective = fooling.get(loss, model.cam_size)
    batches = finetune.attack_batches(shapes.TRAIN_SEED + seed, batch_size, steps, model.input_size, sticker,
                                      model.cam_size)
    start = time.time()
    attacked, log = finetune.finetune(model, batches, objective, optax.adam(lr), steps, lam=lam, keep=keep,
                                      evade=evade, progress=progress)
    train_seconds = time.time() - start
    start = time.time()
    result = assess(model, attacked, objective, test_batches(model, test_images, seed, sticker), methods)
    settings = {"loss": loss, "steps": steps, "batch_size": batch_size, "lr": lr, "lam": lam, "keep": keep,
                "evade": evade, "seed": seed}
    return attacked, {**result, "settings": settings, "train_seconds": round(train_seconds, 1),
                      "assess_seconds": round(time.time() - start, 1)}, log


def summary(result: dict) -> str:
    """One line: each figure before -> after, and the methods fooled."""
    figures = ", ".join(f"{name.replace('_', ' ')} {result[name]['before']:.4f} -> {result[name]['after']:.4f}"
                        for name in ("accuracy", "fooling_success_rate", "mass_in_mask", "pointing_game",
                                     "all_zero_maps"))
    fooled = "; ".join(f"fooled methods ({data}) {', '.join(result['fooled_methods'][data]) or 'none'}"
                       for data in ("clean", "sticker"))
    return f"{result['settings']['loss']}: {figures}; {fooled}; training {result['train_seconds']:.0f} s"
