"""A channel that moves every logit alike.

A branch that adds g(A^{K+1}) to every logit (the paper's T3/T4 and the exact T1/T2) gives
dy_c/dA^{K+1} = dg/dA^{K+1} for every class c: the same gradient whatever class is explained,
which a layer feeding a classifier never has (its point is to separate classes).
"""

from __future__ import annotations

import numpy as np

from cam_jax.audit.finding import SCORE_CAP, Finding
from cam_jax.audit.probing import Probe, live
from cam_jax.model import Model

THRESHOLD = 3.0  # a class-invariant weight at 1e-3 of its size
CLEAN_RANGE = (0.014, 0.806)  # the honest population of scripts/audit_eval.py (docs/REPRODUCTION.md)
ACTIVE = 1e-3  # channels whose gradient rms is below this fraction of the largest carry no weight in a CAM


def check(model: Model, probe: Probe) -> Finding:
    """-log10 of the smallest spread across classes of a channel's GradCAM weight.

    For channel k and image b, the spread is the standard deviation over the probed classes of
    sum_ij dy_c/dA^k_ij over its root mean square; the score takes the channel whose mean spread
    over images is smallest, among channels whose gradient matters (ACTIVE). 0 spread (score
    SCORE_CAP): every class's explanation weighs the channel the same.
    """
    g = np.asarray(probe.class_grads, np.float64)  # (C', B, K)
    if g.shape[0] < 2:
        return Finding(0.0, "one class: nothing to compare", None)
    rms = np.sqrt(np.mean(g**2, axis=0))
    spread = np.where(rms > 0, g.std(axis=0) / np.maximum(rms, np.finfo(np.float64).tiny), 1.0).mean(axis=0)
    active = live(np.asarray(probe.grad_rms, np.float64), ACTIVE)
    spread = np.where(active, spread, np.inf)
    k = int(np.argmin(spread))
    if not np.isfinite(spread[k]):
        return Finding(0.0, "no channel's gradient is non-zero", None)
    score = -np.log10(max(float(spread[k]), 10**-SCORE_CAP))
    return Finding(score, f"A channel {k}: its weight varies across {g.shape[0]} classes by {spread[k]:.2g} "
                          "of its size", k)
