"""Metrics of explanations, one module per family, and the registry the evaluation reads.

An evaluation row is one model on one data set; each metric reads an `Observed` (one map per image for
one (method, target) cell, with the row's logits and labels, the original model's logits and map where
the row has them, the map the manipulation should show, the object masks) and returns per-image
values (B,), or None where it does not apply. `METRICS` says how each is summarised: the keys of
results.json's rows and of the matrix's cells. A new metric is its function in its family's module
plus one line in `METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from cam_jax.metrics import change, localisation


class Observed(NamedTuple):
    """What the metrics of one (model, data) row read, for one (method, target) cell.

    Attributes:
      logits: (B, C); labels: (B,) int.
      cam: (B, h, w) raw maps.
      masks: (B, H, W) bool object masks, or None.
      reference_logits, reference_cam: the original model's on the same images, or None (its own row).
      goal: (B, h, w) the map the row's model should show (the injected map, or the original's), or None.
      score_change: (y_o, y_n) -> (B,), how the row's score change is measured.
    """

    logits: jax.Array
    labels: jax.Array
    cam: jax.Array
    masks: jax.Array | None
    reference_logits: jax.Array | None
    reference_cam: jax.Array | None
    goal: jax.Array | None
    score_change: Callable[[jax.Array, jax.Array], jax.Array] = change.dy_inf


class Metric(NamedTuple):
    """A per-image metric and how it is reduced over the images.

    Attributes:
      fn: (Observed, normalization) -> (B,) values, or None where it does not apply.
      normalised: whether it depends on the normalisation (else it is computed once per cell).
      summary: results.json row key -> "mean" or "max" over images, for the paper's cell.
      cell: matrix.json cell key -> "mean" or "max" over images, for every cell.
    """

    fn: Callable[[Observed, str], jax.Array | None]
    normalised: bool
    summary: dict[str, str]
    cell: dict[str, str]


def _given(value, fn):
    return None if value is None else fn(value)


METRICS: dict[str, Metric] = {
    "correct": Metric(lambda o, n: change.correct(o.logits, o.labels), False, {"accuracy": "mean"}, {}),
    "dy_inf": Metric(lambda o, n: _given(o.reference_logits, lambda y: o.score_change(y, o.logits)), False,
                     {"dy_inf_mean": "mean", "dy_inf_max": "max"}, {"dy_inf_max": "max"}),
    "l1": Metric(lambda o, n: _given(o.goal, lambda g: change.l1(o.cam, g, n)), True, {"l1_mean": "mean"},
                 {"l1_to_target": "mean"}),
    "l1_original": Metric(lambda o, n: _given(o.reference_cam, lambda r: change.l1(o.cam, r, n)), True, {},
                          {"l1_to_original": "mean"}),
    "pointing": Metric(lambda o, n: _given(o.masks, lambda m: localisation.pointing_game(o.cam, m)), False,
                       {"pointing_game": "mean"}, {"pointing_game": "mean"}),
    "mass": Metric(lambda o, n: _given(o.masks, lambda m: localisation.mass_in_mask(o.cam, m, n)), True,
                   {"mass_in_mask": "mean"}, {"mass_in_mask": "mean"}),
    "collapsed": Metric(lambda o, n: change.collapsed(o.cam), False, {"collapsed": "mean"}, {}),
}


def measure(observed: Observed, normalizations: tuple[str, ...]) -> dict[str, jax.Array]:
    """{metric: (normalizations, B) float32 per-image values, NaN where it does not apply}."""
    out = {}
    for name, metric in METRICS.items():
        values = [metric.fn(observed, n) for n in (normalizations if metric.normalised else normalizations[:1])]
        stacked = jnp.stack([jnp.full(observed.labels.shape, jnp.nan) if v is None else v.astype(jnp.float32)
                             for v in values])
        out[name] = jnp.broadcast_to(stacked, (len(normalizations), *observed.labels.shape))
    return out
