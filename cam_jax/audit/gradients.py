"""Checks on dy/dA: a channel that moves every logit alike, a channel whose gradient dwarfs the others.

A branch that adds g(A^{K+1}) to every logit (the paper's T3/T4 and the exact
T1/T2) gives dy_c/dA^{K+1} = dg/dA^{K+1} for every class c: the same gradient
whatever class is explained, which a layer feeding a classifier never has
(its point is to separate classes). The channel's gradient (eps c_G = 100 per
pixel with the paper's constants) is also far above the others'.
"""

from __future__ import annotations

import numpy as np

from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe, live

FLOOR = 1e-7  # scores cap at 7
ACTIVE = 1e-3  # channels whose gradient rms is below this fraction of the largest carry no weight in a CAM


def class_invariance(model, probe: Probe) -> Finding:
    """-log10 of the smallest spread across classes of a channel's GradCAM weight.

    For channel k and image b, the spread is the standard deviation over the
    probed classes of sum_ij dy_c/dA^k_ij over its root mean square; the score
    takes the channel whose mean spread over images is smallest, among channels
    whose gradient matters (ACTIVE). 0 spread (score 7): every class's
    explanation weighs the channel the same.
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
    score = -np.log10(max(float(spread[k]), FLOOR))
    return Finding(score, f"A channel {k}: its weight varies across {g.shape[0]} classes by {spread[k]:.2g} "
                          "of its size", k)


def gradient_dominance(model, probe: Probe) -> Finding:
    """log10 of the largest channel's gradient rms over the median channel's (channels with any gradient)."""
    rms = np.asarray(probe.grad_rms, np.float64)
    nonzero = rms > 0
    if not nonzero.any():
        return Finding(0.0, "dy/dA is zero", None)
    k = int(np.argmax(rms))
    ratio = rms[k] / np.median(rms[nonzero])
    return Finding(float(np.log10(ratio)), f"A channel {k}: gradient rms {rms[k]:.3g}, {ratio:.3g}x the median", k)
