"""Reference mode: does the model's own GradCAM explain it as well as a trusted checkpoint's GradCAM does?

A fine-tuned attack (Heo et al. 2019) adds no channel, constant or branch: it is the same architecture
with new weights, and every intrinsic check passes it (docs/REPRODUCTION.md). What it cannot hide is a
disagreement between its map and its function. Given a trusted checkpoint of the same architecture (the
released weights a suspect claims to be a version of), both maps are tested on the suspect's function by
deletion at A: the cells a map ranks highest take another image's A there (an intervention that stays on
the data), and the suspect's top score drops by some amount. An honest version's own map picks the
cells its function uses at least as well as the reference's map does; a map tuned to lie picks cells the
function does not use, while the reference's map, made when the function was the same, still picks the
ones it does. The score is how much more the reference's cells move the suspect's score than its own:
(drop_reference - drop_own) / (|drop_reference| + |drop_own|), in [-1, 1].

What it cannot see (docs/GUIDE.md, "What the audit cannot see"): a backdoor whose trigger is not in the
images (the map is honest there); a function retrained so that what the lying map credits is what the
function uses under this intervention (`finetune.deletion_gap`, `finetune_attack.py --evade`); and a
suspect that is not a version of the reference, whose own map should then explain it better anyway (no
flag, and nothing learnt).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe
from cam_jax.model import Model

FRACTIONS = (0.0625, 0.125, 0.25)  # shares of A's cells deleted, most credited first
DONORS = 3  # each image's deleted cells come from each of the next DONORS images in turn
THRESHOLD = 0.1  # between the honest versions and the attacks of docs/REPRODUCTION.md
CLEAN_RANGE = (-0.043, 0.040)  # honest fine-tunes of the bundled default (docs/REPRODUCTION.md)


def same_architecture(model: Model, reference: Model) -> None:
    """Raise a ValueError unless `model` and `reference` are one module with parameters of the same shapes."""
    if model.module != reference.module:
        raise ValueError(f"the reference is another architecture ({type(reference.module).__name__} against "
                         f"{type(model.module).__name__}, or other settings): reference mode compares versions of "
                         "one network")
    shapes = [jax.tree.map(lambda v: (v.shape, str(v.dtype)), m.params) for m in (model, reference)]
    if jax.tree.structure(shapes[0]) != jax.tree.structure(shapes[1]) or shapes[0] != shapes[1]:
        raise ValueError("the reference's parameters differ from the model's in names or shapes: reference mode "
                         "compares versions of one network (a filter added or removed is another architecture)")


def cam_before_relu(a: jax.Array, grads: jax.Array) -> jax.Array:
    """(B, h, w) sum_k alpha_k A^k, alpha_k the mean over positions of grads (B, h, w, K): GradCAM before its
    ReLU, whose order on the cells is GradCAM's with its zeros told apart."""
    return jnp.einsum("bhwk,bk->bhw", a, grads.mean(axis=(1, 2)))


def deletion_masks(cam: np.ndarray) -> np.ndarray:
    """(F, B, h, w) bool: for each of FRACTIONS, each image's round(fraction h w) (at least one) cells that
    `cam` (B, h, w) ranks highest.

    Example:
      >>> deletion_masks(np.arange(8.0).reshape(1, 2, 4))[:, 0].astype(int)
      array([[[0, 0, 0, 0],
              [0, 0, 0, 1]],
      <BLANKLINE>
             [[0, 0, 0, 0],
              [0, 0, 1, 1]],
      <BLANKLINE>
             [[0, 0, 0, 0],
              [1, 1, 1, 1]]])
    """
    b, h, w = cam.shape
    rank = np.argsort(np.argsort(-cam.reshape(b, h * w), axis=1, kind="stable"), axis=1)  # 0 for the top cell
    counts = np.maximum(1, np.round(np.asarray(FRACTIONS) * h * w)).astype(int)
    return (rank[None] < counts[:, None, None]).reshape(len(FRACTIONS), b, h, w)


@functools.partial(jax.jit, static_argnames="donors")
def drops(model: Model, a: jax.Array, context: jax.Array | None, top: jax.Array, masks: jax.Array,
          donors: int = DONORS) -> jax.Array:
    """(M, donors, B) y_top(A) - y_top(A with each mask's cells taken from image b + d), d = 1..donors.

    Args:
      a: (B, h, w, K) A; context: what the head reads besides A, or None (each image keeps its own).
      top: (B,) the class whose logit is the score.
      masks: (M, B, h, w) bool, the cells to replace.
    """
    def score(x):
        return jnp.take_along_axis(model.head(x, context), top[:, None], axis=1)[:, 0]

    base = score(a)

    def deleted(mask):
        return jnp.stack([base - score(jnp.where(mask[..., None], jnp.roll(a, -d, axis=0), a))
                          for d in range(1, donors + 1)])

    return jax.lax.map(deleted, masks)


def check(model: Model, probe: Probe) -> Finding:
    """(drop by the reference's cells - drop by the model's own) / (|one| + |other|), summed over the
    images, FRACTIONS and DONORS; the probe must hold the reference's map (`probe(..., reference=)`)."""
    if probe.reference_cam is None:
        raise ValueError("the reference check needs a reference model: audit_model(model, images, reference=...)")
    own = cam_before_relu(probe.a, probe.top_grads)
    masks = np.concatenate([deletion_masks(np.asarray(own)), deletion_masks(np.asarray(probe.reference_cam))])
    moved = np.asarray(drops(model, probe.a, probe.context, probe.top, jnp.asarray(masks)), np.float64)
    half = len(FRACTIONS)
    by_own, by_reference = moved[:half].sum(), moved[half:].sum()
    scale = abs(by_own) + abs(by_reference)
    if scale == 0:
        return Finding(0.0, "deleting cells of A moves no score: nothing to compare", None)
    score = (by_reference - by_own) / scale
    return Finding(float(score), f"deleting the cells the model's own GradCAM ranks highest drops its score by "
                                 f"{by_own / moved[:half].size:.3g} on average, the reference's GradCAM's by "
                                 f"{by_reference / moved[half:].size:.3g}", None)
