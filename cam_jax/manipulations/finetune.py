"""Attacks by fine-tuning the weights alone (Heo et al. 2019): same architecture, new parameters.

The objective is keep + lambda * (fooling + blank): "keep" holds the predictions (cross-entropy on the
labels, or distillation to the original's logits), "fooling" is a loss on the tuned model's GradCAM
(`cam_jax.manipulations.fooling`), "blank" stops the map from going all zero (`objective`). GradCAM
is itself a `jax.vjp` of the head, so the gradient with respect to the parameters is a second
derivative through the explanation, which `jax.grad` takes as it is. Nothing but the parameters
changes: no branch, no appended channel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cam_jax.cams.core import gradients
from cam_jax.cams.maps import normalize
from cam_jax.cams.targets import contrast_mean
from cam_jax.cams.weightings import apply, grad_cam
from cam_jax.data import images, shapes, stickers
from cam_jax.manipulations.fooling import AttackBatch, Fooling, Views
from cam_jax.model import Model

KEEPS = ("labels", "logits")
DELETED = (0.0625, 0.125, 0.25)  # shares of A's cells the audit deletes (audit/deletion.py)


def gradcam_before_relu(model: Model) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """(x (B, H, W, 3), classes (B,)) -> (B, h, w) sum_k alpha_k A^k of `model`, before GradCAM's ReLU."""
    def before(x, classes):
        g = gradients(model, x, classes)
        return apply(grad_cam, g.a, g.grads)

    return before


def gradcam_view(model: Model) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """(x (B, H, W, 3), classes (B,)) -> (B, h, w) max-normalised GradCAM of `model`."""
    before = gradcam_before_relu(model)
    return lambda x, classes: normalize(jax.nn.relu(before(x, classes)))


def deletion_gap(tuned: Model, original: Model, x: jax.Array, classes: jax.Array) -> jax.Array:
    """The audit's reference_deletion check as an attacker trains against it: mean over images and DELETED of
    (drop of s_c = y_c - mean y when the cells the original's GradCAM ranks highest take the next image's A)
    - (the same for the tuned model's own GradCAM), on the tuned model, over the mean |s_c| + 1. The cells are chosen
    without gradient (a ranking); the drops are differentiated through the tuned model.

    Args:
      x: (B, H, W, 3) images; classes: (B,) the class each score is read for.
    """
    a, context = tuned.encode(x)
    b, h, w, _ = a.shape

    def score(values):  # the audit's: the logit less the mean logit
        return contrast_mean(tuned.head(values, context), classes)

    def drop(cam):
        rank = jnp.argsort(jnp.argsort(-cam.reshape(b, h * w), axis=1), axis=1).reshape(b, h, w)
        return jnp.stack([base - score(jnp.where((rank < max(1, round(f * h * w)))[..., None],
                                                 jnp.roll(a, -1, axis=0), a)) for f in DELETED])

    base = score(a)
    own = jax.lax.stop_gradient(gradcam_before_relu(tuned)(x, classes))
    theirs = jax.lax.stop_gradient(gradcam_before_relu(original)(x, classes))
    return (drop(theirs) - drop(own)).mean() / (jnp.abs(base).mean() + 1)


def objective(original: Model, fooling: Fooling, lam: float = 1.0, keep: str = "labels", evade: float = 0.0
              ) -> Callable[[object, AttackBatch], tuple[jax.Array, dict[str, jax.Array]]]:
    """(params, batch) -> (keep + lam * (fooling + blank) + evade * relu(gap), {"keep", "fooling", "blank",
    "gap", "accuracy"}) for a model of `original`'s architecture; the original's maps and logits are
    constants (no gradient). `gap` is `deletion_gap`, what the audit's reference_deletion check reads: an attacker
    who knows the original (it is the reference a user would audit against) can train its map's cells to
    matter as much to the function as the original's do.

    "blank" (0 for a `Fooling` without it) keeps the lie visible: a GradCAM map that is all zero after its
    ReLU satisfies most fooling losses (nothing left on the object, nothing on the original's top pixels)
    but shows nothing, which a user sees at once. It is the mean of
    relu(1 - peak / the original's peak), the peak of the map before the ReLU, whose gradient lives
    also where the map after it is zero.
    """
    if keep not in KEEPS:
        raise ValueError(f"unknown keep {keep!r}; choose one of {KEEPS}")
    for name, value in (("lambda", lam), ("evade", evade)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value}")
    frozen = gradcam_view(original)
    frozen_before = gradcam_before_relu(original)

    def loss(params, batch: AttackBatch):
        tuned = original.replace(params=params)
        logits = tuned(batch.x)
        if keep == "labels":
            kept = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels).mean()
        else:
            reference = jax.nn.softmax(jax.lax.stop_gradient(original(batch.x)))
            kept = optax.softmax_cross_entropy(logits, reference).mean()
        views = Views(gradcam_view(tuned), lambda x, c: jax.lax.stop_gradient(frozen(x, c)))
        fooled = fooling.loss(views, batch)
        blank = jnp.zeros((), logits.dtype)
        if fooling.blank:
            peak = gradcam_before_relu(tuned)(batch.x, batch.labels).max(axis=(-2, -1))
            peak_o = jax.lax.stop_gradient(frozen_before(batch.x, batch.labels).max(axis=(-2, -1)))
            blank = jax.nn.relu(1 - peak / jnp.where(peak_o > 0, peak_o, 1)).mean()
        gap = deletion_gap(tuned, original, batch.x, batch.labels) if evade else jnp.zeros((), logits.dtype)
        accuracy = (logits.argmax(-1) == batch.labels).mean()
        return kept + lam * (fooled + blank) + evade * jax.nn.relu(gap), {
            "keep": kept, "fooling": fooled, "blank": blank, "gap": gap, "accuracy": accuracy}

    return loss


def finetune(
    model: Model,
    batches: Iterable[AttackBatch],
    fooling: Fooling,
    optimizer: optax.GradientTransformation,
    steps: int,
    *,
    lam: float = 1.0,
    keep: str = "labels",
    evade: float = 0.0,
    progress: bool = True,
) -> tuple[Model, list[dict[str, float]]]:
    """Fine-tune `model`'s parameters on `steps` batches; returns (the attacked model, the log).

    Args:
      model: any `Model` (the original: its maps and logits are the reference).
      batches: at least `steps` `AttackBatch`es (`attack_batches` makes them from the generated shapes).
      fooling: the explanation objective (`fooling.get(name, model.cam_size)`).
      optimizer: any optax transformation.
      lam: weight of the fooling loss.
      keep: "labels" (cross-entropy) or "logits" (distillation to the original's softmax).
      evade: weight of the reference_deletion check's gap (`objective`); 0 leaves it out.
      progress: show a progress bar.

    Returns:
      (Model with the same module and new params, [{"step", "loss", "keep", "fooling", "blank", "gap", "accuracy"}]).

    Raises:
      FloatingPointError: the loss became NaN or infinite (the step is named).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    loss_fn = objective(model, fooling, lam, keep, evade)

    @jax.jit
    def step(params, opt_state, batch):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"loss": loss, **aux}

    params, opt_state, log = model.params, optimizer.init(model.params), []
    columns = (TextColumn("fine-tuning"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("", total=steps, status="")
        for k, batch in zip(range(steps), batches, strict=False):
            params, opt_state, figures = step(params, opt_state, batch)
            row = {"step": k, **{name: float(v) for name, v in figures.items()}}
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"the loss is {row['loss']} at step {k}; lower the learning rate or lambda")
            log.append(row)
            bar.update(task, advance=1, status=f"loss {row['loss']:.4f} fooling {row['fooling']:.4f} "
                                               f"acc {row['accuracy']:.2f}")
    if len(log) < steps:
        raise ValueError(f"the batches ran out after {len(log)} of {steps} steps")
    return model.replace(params=params), log


def batch_of(pixels: np.ndarray, labels: np.ndarray, indices: np.ndarray, seed: int, sticker: np.ndarray,
             map_size: int) -> AttackBatch:
    """An `AttackBatch` from uint8 images (B, H, W, 3): normalised, stickered by (seed, index)
    (`stickers.paste_by_index`), each sticker mask averaged down to (map_size, map_size)."""
    pasted, masks = stickers.paste_by_index(pixels, indices, seed, sticker)
    b = pixels.shape[0]
    cover = jax.image.resize(jnp.asarray(masks, jnp.float32), (b, map_size, map_size), "linear", antialias=True)
    return AttackBatch(jnp.asarray(images.normalize(pixels)), jnp.asarray(labels, jnp.int32),
                 jnp.asarray(images.normalize(pasted)), jnp.clip(cover, 0, 1))


def attack_batches(seed: int, batch_size: int, steps: int, size: int, sticker: np.ndarray, map_size: int
                   ) -> Iterator[AttackBatch]:
    """`steps` batches of generated shapes (stream `seed`), `batch_size` each, at `size` pixels."""
    for k in range(steps):
        indices = np.arange(k * batch_size, (k + 1) * batch_size)
        data = shapes.batch(seed, indices, size)
        yield batch_of(data.pixels, data.labels, indices, seed, sticker, map_size)
