"""Deletion at A: the cells a map ranks highest take other images' A there, and the score's drop says how
much the function used them. What the reference checks compare between a model and a trusted checkpoint.

The replacement comes from the other audit images (an intervention that stays on the data), each image's
cells from each of the next DONORS images in turn, so no baseline value marks a deleted cell.

The score is the top class's logit less the mean of the logits. A term added to every logit changes no
softmax and no prediction, so the function is the same; read on the raw logit it would move every drop at
will, and with it the reference checks, at no cost to the attacker (`tests/test_audit.py`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.audit.probing import Probe
from cam_jax.cams.targets import contrast_mean
from cam_jax.cams.weightings import grad_cam
from cam_jax.model import Model

FRACTIONS = (0.0625, 0.125, 0.25)  # shares of A's cells deleted, most credited first
DONORS = 3  # each image's deleted cells come from each of the next DONORS images in turn
FLOOR = 0.02  # a function's change (`change`) below which two functions count as responding alike


def masks(cam: np.ndarray) -> np.ndarray:
    """(F, B, h, w) bool: for each of FRACTIONS, each image's round(fraction h w) (at least one) cells that
    `cam` (B, h, w) ranks highest. Given GradCAM before its ReLU (`weightings.grad_cam`), the order is
    GradCAM's with its zeros told apart.

    Example:
      >>> masks(np.arange(16.0).reshape(1, 4, 4))[:, 0].astype(int)
      array([[[0, 0, 0, 0],
              [0, 0, 0, 0],
              [0, 0, 0, 0],
              [0, 0, 0, 1]],
      <BLANKLINE>
             [[0, 0, 0, 0],
              [0, 0, 0, 0],
              [0, 0, 0, 0],
              [0, 0, 1, 1]],
      <BLANKLINE>
             [[0, 0, 0, 0],
              [0, 0, 0, 0],
              [0, 0, 0, 0],
              [1, 1, 1, 1]]])
    """
    b, h, w = cam.shape
    rank = np.argsort(np.argsort(-cam.reshape(b, h * w), axis=1, kind="stable"), axis=1)  # 0 for the top cell
    counts = np.maximum(1, np.round(np.asarray(FRACTIONS) * h * w)).astype(int)
    return (rank[None] < counts[:, None, None]).reshape(len(FRACTIONS), b, h, w)


@functools.partial(jax.jit, static_argnames="donors")
def drops(model: Model, a: jax.Array, context: jax.Array | None, top: jax.Array, cells: jax.Array,
          donors: int = DONORS) -> jax.Array:
    """(M, donors, B) s(A) - s(A with each mask's cells taken from image b + d), d = 1..donors, where
    s = y_top - mean_c y_c (the module's docstring says why the mean goes).

    Args:
      a: (B, h, w, K) A; context: what the head reads besides A, or None (each image keeps its own).
      top: (B,) the class whose logit is the score.
      cells: (M, B, h, w) bool, the cells to replace.
    """
    def score(x):
        return contrast_mean(model.head(x, context), top)

    base = score(a)

    def deleted(mask):
        return jnp.stack([base - score(jnp.where(mask[..., None], jnp.roll(a, -d, axis=0), a))
                          for d in range(1, donors + 1)])

    return jax.lax.map(deleted, cells)


def both_maps(model: Model, probe: Probe) -> np.ndarray:
    """(2 F, B, h, w) bool: `masks` of the model's own GradCAM for its top classes, then of the reference's
    (F = len(FRACTIONS)); the probe must hold a reference (`probe(..., reference=)`)."""
    if probe.reference is None:
        raise ValueError("the reference checks need a reference model: audit_model(model, images, reference=...)")
    own = np.asarray(grad_cam(probe.a, probe.top_grads))  # before the ReLU
    return np.concatenate([masks(own), masks(np.asarray(probe.reference.cam))])


def change(model: Model, probe: Probe, cells: np.ndarray) -> float:
    """How differently `model` and the probe's reference respond to deleting `cells` (M, B, h, w): the mean
    |drop / mean |drop| - the reference's drop / its mean |drop||, over `drops`. Each function's drops go over
    their own mean: a temperature (every logit times one factor) changes no prediction, and unscaled it would
    read as a changed function at no cost to an attacker."""
    ref = probe.reference
    cells = jnp.asarray(cells)
    mine = np.asarray(drops(model, probe.a, probe.context, probe.top, cells), np.float64)
    theirs = np.asarray(drops(ref.model, ref.a, ref.context, probe.top, cells), np.float64)
    mine, theirs = (d / s if (s := np.abs(d).mean()) > 0 else d for d in (mine, theirs))
    return float(np.abs(mine - theirs).mean())
