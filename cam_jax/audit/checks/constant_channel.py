"""A channel of A that ignores the input.

The paper's T1/T2 write a constant map into an appended channel (zero kernel, a bias or a stored
map): across images that channel does not move at all, which no live channel of a trained or
random network does.
"""

from __future__ import annotations

import numpy as np

from cam_jax.audit.finding import SCORE_CAP, Finding
from cam_jax.audit.probing import Probe, channel_rms, live
from cam_jax.model import Model

THRESHOLD = 3.0  # a channel whose spread is 1e-3 of its size
CLEAN_RANGE = (0.239, 0.803)  # the honest population of scripts/audit_eval.py (docs/REPRODUCTION.md)


def check(model: Model, probe: Probe) -> Finding:
    """-log10 of the smallest relative spread across images of a live channel of A.

    Spread of channel k: the root mean square over positions of the standard deviation across
    images, over the channel's rms. 0 (score SCORE_CAP) for a channel that is the same map for
    every image.
    """
    a = np.asarray(probe.a, np.float64)
    rms = channel_rms(a)
    spread = np.sqrt(np.mean(a.var(axis=0), axis=(0, 1)))
    ratio = np.where(live(rms), spread / np.maximum(rms, np.finfo(np.float64).tiny), np.inf)
    k = int(np.argmin(ratio))
    score = -np.log10(max(float(ratio[k]), 10**-SCORE_CAP))
    return Finding(score, f"A channel {k}: spread across images {ratio[k]:.2g} of its rms {rms[k]:.3g}", k)
