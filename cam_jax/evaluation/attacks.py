"""Measure an attack by fine-tuning against its original: accuracy, fooling success, localisation,
and how far every CAM method's map moved (the transfer of a GradCAM attack to the other methods)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams.methods import explain_many
from cam_jax.evaluation import metrics
from cam_jax.evaluation.step import MATRIX_METHODS
from cam_jax.manipulations.finetune import gradcam_view
from cam_jax.manipulations.fooling import Batch, Fooling, Views
from cam_jax.model import Model

FOOLED = 0.1  # a method is fooled when its map moved by more than this per pixel (as the matrix's)


@functools.partial(jax.jit, static_argnames="fooling")
def _gradcam_figures(original: Model, model: Model, batch: Batch, masks: jax.Array, fooling: Fooling
                     ) -> dict[str, jax.Array]:
    cam = gradcam_view(model)(batch.x, batch.labels)
    return {"accuracy": model(batch.x).argmax(-1) == batch.labels,
            "fooled": fooling.fooled(Views(gradcam_view(model), gradcam_view(original)), batch),
            "mass_in_mask": metrics.mass_in_mask(cam, masks), "pointing_game": metrics.pointing_game(cam, masks),
            "all_zero": cam.max(axis=(-2, -1)) <= 0}


def _per_image(original: Model, attacked: Model, fooling: Fooling, batch: Batch, masks: jax.Array,
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
            h, w = ours[method].cam.shape[-2:]
            out[f"moved_{data}_{method}"] = np.asarray(metrics.l1(ours[method].cam, theirs[method].cam)) / (h * w)
    return out


def assess(original: Model, attacked: Model, fooling: Fooling, batches: Iterable[tuple[Batch, np.ndarray]],
           methods: tuple[str, ...] = MATRIX_METHODS) -> dict:
    """Means over the images of `batches` ((Batch, object masks (B, H, W)) pairs), GradCAM explaining
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
