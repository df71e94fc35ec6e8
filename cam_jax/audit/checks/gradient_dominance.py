"""A channel whose gradient dwarfs the others' (T3/T4's eps c_G = 100 per pixel with the paper's constants)."""

from __future__ import annotations

import numpy as np

from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe
from cam_jax.model import Model

THRESHOLD = 2.5  # a gradient 10^2.5 times the median channel's
CLEAN_RANGE = (0.081, 0.371)  # the honest population of scripts/audit_eval.py (docs/REPRODUCTION.md)


def check(model: Model, probe: Probe) -> Finding:
    """log10 of the largest channel's gradient rms over the median channel's (channels with any gradient)."""
    rms = np.asarray(probe.grad_rms, np.float64)
    nonzero = rms > 0
    if not nonzero.any():
        return Finding(0.0, "dy/dA is zero", None)
    k = int(np.argmax(rms))
    ratio = rms[k] / np.median(rms[nonzero])
    return Finding(float(np.log10(ratio)), f"A channel {k}: gradient rms {rms[k]:.3g}, {ratio:.3g}x the median", k)
