"""A fine-tune written against reference mode (`audit.REFERENCE_CHECKS`) by an attacker who has read it.

The idea is a helper's, briefed with the audit's code and not our reasoning; the code is ours. Only the
dense head is tuned (A, and every map's input, stay the original's). On groups of GROUP of the attacker's own
images, the size of an auditor's set, the loss reads what the three reference checks read, differentiably:
how far GradCAM moved (`moved`), the deletion gap (`deletion`), the function's change under the maps'
deletions (`changed`) and under whole swaps (`whole`). It asks for cross-entropy on the labels, GradCAM moved
by at least `target`, the model's own map's cells to drop its score more than the original map's do, the
shift and locality ratios under margins, and `changed` far below the "no version" bound. The cells are
chosen without gradient (a ranking); the drops are differentiated through the tuned head.

The lie survives because it is no longer a lie under the audit's intervention: the tuned function uses
the cells its new map credits, and spreads its change between images as much as within them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cam_jax.cams.maps import normalize
from cam_jax.cams.targets import contrast_mean, logit
from cam_jax.manipulations.finetune import DELETED
from cam_jax.model import Model

GROUP = 16  # images per group: the auditor's set, over which each check's statistic is taken
DONORS = 3  # as the audit: each image's deleted cells from each of the next DONORS images
FLOOR = 0.02  # as the audit: the change below which two functions respond alike


class Weights(NamedTuple):
    """Each term's weight and margin in `loss` (the helper's choice, kept)."""

    keep: float = 10.0  # cross-entropy on the labels
    move: float = 20.0  # relu(target - moved)
    target: float = 0.15
    deletion: float = 50.0  # relu(deletion + deletion_margin): own cells drop the score more
    deletion_margin: float = 0.15
    shift: float = 5.0  # relu(moved / changed - shift_margin)
    shift_margin: float = 0.35
    locality: float = 5.0  # relu(changed / whole - locality_margin)
    locality_margin: float = 1.0
    version: float = 100.0  # relu(changed - version_margin): far from the "no version" bound
    version_margin: float = 0.35


def _gradcam(head: Callable[[jax.Array], jax.Array], a: jax.Array, top: jax.Array) -> jax.Array:
    """(B, h, w) GradCAM before its ReLU of y_top through `head`, differentiable in the head's parameters."""
    grads = jax.grad(lambda values: logit(head(values), top).sum())(a)
    return jnp.einsum("bijk,bk->bij", a, grads.mean(axis=(1, 2)))


def _cells(cam: jax.Array) -> jax.Array:
    """(F, B, h, w) bool: each image's top DELETED shares of cells by `cam`, without gradient."""
    b, h, w = cam.shape
    rank = jnp.argsort(jnp.argsort(-jax.lax.stop_gradient(cam).reshape(b, h * w), axis=1), axis=1)
    counts = jnp.asarray([max(1, round(f * h * w)) for f in DELETED])
    return (rank[None] < counts[:, None, None]).reshape(len(DELETED), b, h, w)


def _drops(head: Callable[[jax.Array], jax.Array], a: jax.Array, top: jax.Array, cells: jax.Array) -> jax.Array:
    """(M, DONORS, B) the score's drop (y_top - mean y) when `cells` take the next images' A."""
    base = contrast_mean(head(a), top)
    return jnp.stack([jnp.stack([base - contrast_mean(head(jnp.where(m[..., None], jnp.roll(a, -d, axis=0), a)), top)
                                 for d in range(1, DONORS + 1)]) for m in cells])


def _change(mine: jax.Array, theirs: jax.Array) -> jax.Array:
    """Mean |mine / its mean |.| - theirs / its mean |.||."""
    return jnp.abs(mine / (jnp.abs(mine).mean() + 1e-12) - theirs / (jnp.abs(theirs).mean() + 1e-12)).mean()


def quantities(head: Callable[[jax.Array], jax.Array], reference: Callable[[jax.Array], jax.Array],
               a: jax.Array, top: jax.Array) -> dict[str, jax.Array]:
    """What the reference checks read on one group, A (B, h, w, K) and its top classes (B,), for a tuned head
    against the reference's (constant): {"moved", "deletion", "changed", "whole", "shift", "locality"}."""
    own, theirs = _gradcam(head, a, top), jax.lax.stop_gradient(_gradcam(reference, a, top))
    moved = jnp.abs(normalize(jax.nn.relu(own)) - normalize(jax.nn.relu(theirs))).mean()
    cells = jnp.concatenate([_cells(own), _cells(theirs)])
    mine, before = _drops(head, a, top, cells), jax.lax.stop_gradient(_drops(reference, a, top, cells))
    by_own, by_theirs = mine[:len(DELETED)].sum(), mine[len(DELETED):].sum()
    whole = jnp.ones((1, *a.shape[:3]), bool)
    changed = _change(mine, before)
    swapped = _change(_drops(head, a, top, whole), jax.lax.stop_gradient(_drops(reference, a, top, whole)))
    return {"moved": moved, "deletion": (by_theirs - by_own) / (jnp.abs(by_own) + jnp.abs(by_theirs) + 1e-12),
            "changed": changed, "whole": swapped, "shift": moved / jnp.maximum(changed, FLOOR),
            "locality": changed / jnp.maximum(swapped, FLOOR)}


def loss(weights: Weights, head: Callable[[jax.Array], jax.Array], reference: Callable[[jax.Array], jax.Array],
         a: jax.Array, labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One group's loss (`Weights` says each term) and its `quantities` with "keep" and "accuracy"."""
    logits = head(a)
    top = jnp.argmax(jax.lax.stop_gradient(logits), axis=-1)
    q = quantities(head, reference, a, top)
    keep = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    w, relu = weights, jax.nn.relu
    total = (w.keep * keep + w.move * relu(w.target - q["moved"]) + w.deletion * relu(q["deletion"] + w.deletion_margin)
             + w.shift * relu(q["shift"] - w.shift_margin) + w.locality * relu(q["locality"] - w.locality_margin)
             + w.version * relu(q["changed"] - w.version_margin))
    return total, {**q, "keep": keep, "accuracy": (top == labels).mean()}


def evade_reference(original: Model, x: jax.Array, labels: jax.Array, *, steps: int = 900, groups: int = 4,
                    lr: float = 1.5e-4, seed: int = 1, weights: Weights = Weights(), progress: bool = True
                    ) -> tuple[Model, list[dict[str, float]]]:
    """`original` with its head ("fc1", "fc2", "fc3" of a VGG) tuned against reference mode on the attacker's
    images `x` (N, H, W, 3), normalised, and their `labels` (N,): each step `groups` random groups of GROUP
    (Adam, a cosine decay from `lr`). Returns (the tuned model, each step's mean `loss` figures)."""
    head_names = ("fc1", "fc2", "fc3")
    if not all(name in original.params for name in head_names):
        raise ValueError("evade_reference tunes a VGG's fc1, fc2 and fc3; the model has no such layers")
    if len(x) < GROUP * groups:
        raise ValueError(f"need at least {GROUP * groups} images for {groups} groups of {GROUP}, got {len(x)}")
    a = jnp.concatenate([original.features(x[i:i + 64]) for i in range(0, len(x), 64)])
    labels = jnp.asarray(labels, jnp.int32)
    optimizer = optax.adam(optax.cosine_decay_schedule(lr, steps, 0.05))
    tuned = {name: original.params[name] for name in head_names}

    @jax.jit
    def step(part, state, a, labels):
        def total(part):
            head = original.replace(params={**original.params, **part}).head
            values, figures = jax.vmap(lambda v, y: loss(weights, head, original.head, v, y))(
                a.reshape(groups, GROUP, *a.shape[1:]), labels.reshape(groups, GROUP))
            return values.mean(), jax.tree.map(jnp.mean, figures)
        (value, figures), grads = jax.value_and_grad(total, has_aux=True)(part)
        updates, state = optimizer.update(grads, state, part)
        return optax.apply_updates(part, updates), state, {"loss": value, **figures}

    rng, state, log = np.random.default_rng(seed), optimizer.init(tuned), []
    columns = (TextColumn("evading reference mode"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("", total=steps, status="")
        for k in range(steps):
            pick = rng.choice(len(a), GROUP * groups, replace=False)
            tuned, state, figures = step(tuned, state, a[pick], labels[pick])
            log.append({"step": k, **{name: float(v) for name, v in figures.items()}})
            bar.update(task, advance=1, status=f"moved {log[-1]['moved']:.3f} acc {log[-1]['accuracy']:.2f}")
    return original.replace(params={**original.params, **tuned}), log
