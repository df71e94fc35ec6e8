"""A channel of A that dwarfs the others: T1's c_A and T3's c_F make theirs orders of magnitude larger."""

from __future__ import annotations

import numpy as np

from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe, channel_rms, live
from cam_jax.model import Model

THRESHOLD = 2.5  # a channel 10^2.5 times the median one
CLEAN_RANGE = (0.070, 0.737)  # the honest population of scripts/audit_eval.py (docs/REPRODUCTION.md)


def check(model: Model, probe: Probe) -> Finding:
    """log10 of the largest channel rms of A over the median of the live channels'."""
    rms = channel_rms(probe.a)
    alive = live(rms)
    k = int(np.argmax(rms))
    if not alive.any():
        return Finding(0.0, "A is zero on every image", None)
    ratio = rms[k] / np.median(rms[alive])
    return Finding(float(np.log10(ratio)), f"A channel {k}: rms {rms[k]:.3g}, {ratio:.3g}x the median channel", k)
