"""Checks on A alone: a channel that ignores the input, a channel that dwarfs the others.

The paper's T1/T2 write a constant map into an appended channel (zero kernel, a
bias or a stored map): across images that channel does not move at all, which no
live channel of a trained or random network does. T1's and T3's channels are
also orders of magnitude larger than the rest of A.
"""

from __future__ import annotations

import numpy as np

from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe, channel_rms, live
from cam_jax.model import Model

FLOOR = 1e-7  # the smallest relative spread float32 activations can show (scores cap at 7)


def constant_channel(model: Model, probe: Probe) -> Finding:
    """-log10 of the smallest relative spread across images of a live channel of A.

    Spread of channel k: the root mean square over positions of the standard
    deviation across images, over the channel's rms. 0 (score 7) for a channel
    that is the same map for every image.
    """
    a = np.asarray(probe.a, np.float64)
    rms = channel_rms(a)
    spread = np.sqrt(np.mean(a.var(axis=0), axis=(0, 1)))
    ratio = np.where(live(rms), spread / np.maximum(rms, np.finfo(np.float64).tiny), np.inf)
    k = int(np.argmin(ratio))
    score = -np.log10(max(float(ratio[k]), FLOOR))
    return Finding(score, f"A channel {k}: spread across images {ratio[k]:.2g} of its rms {rms[k]:.3g}", k)


def activation_dominance(model: Model, probe: Probe) -> Finding:
    """log10 of the largest channel rms of A over the median of the live channels'."""
    rms = channel_rms(probe.a)
    alive = live(rms)
    k = int(np.argmax(rms))
    if not alive.any():
        return Finding(0.0, "A is zero on every image", None)
    ratio = rms[k] / np.median(rms[alive])
    return Finding(float(np.log10(ratio)), f"A channel {k}: rms {rms[k]:.3g}, {ratio:.3g}x the median channel", k)
