"""A filter, dense row or bias that stands out of its layer's own distribution.

The paper's T1/T2 append a filter whose kernel is exactly zero (its output is a
bias or a stored map) and wire it into the first dense layer with weights c_W
(100 or 10) where trained weights are ~0.01. Within its layer such a filter or
row is an extreme outlier, measured by a robust z-score (distance to the median
in median absolute deviations), and a kernel that is exactly zero beside
non-zero ones does not come out of training or initialisation. The parameters are read as a
weight file of the stock architecture holds them (`Model.stock`: an appended filter merged into
its layer).
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np
from flax import traverse_util

from cam_jax.audit.finding import Finding
from cam_jax.model import Model

MIN_GROUP = 8  # a layer with fewer filters or rows has no distribution of its own
MAX_Z = 1e6  # z-scores are capped here (a score of 6), and an all-zero filter beside non-zero ones gets it
MAD_TO_STD = 1.4826
THRESHOLD = 2.5  # a parameter 10^2.5 robust deviations out
CLEAN_RANGE = (0.449, 1.169)  # the honest population of scripts/audit_eval.py (docs/REPRODUCTION.md)


def groups(params: dict) -> Iterator[tuple[str, str, np.ndarray]]:
    """(parameter path, what an entry is, values): conv filters' and dense rows' norms, and biases."""
    for path, leaf in traverse_util.flatten_dict(jax.device_get(params), sep="/").items():
        value = np.asarray(leaf)
        # Sums of squares accumulated in float64 from the stored values: no float64 copy of VGG's 411 MB fc1
        # (that copy made this check as slow as a forward).
        if path.endswith("kernel") and value.ndim == 4:
            yield path, "filter", np.sqrt(np.einsum("ijkl,ijkl->l", value, value, dtype=np.float64))
        elif path.endswith("kernel") and value.ndim == 2:
            yield path, "input row", np.sqrt(np.einsum("ij,ij->i", value, value, dtype=np.float64))
        elif path.endswith("bias") and value.ndim == 1:
            yield path, "entry", value.astype(np.float64)


def robust_z(values: np.ndarray) -> np.ndarray:
    """|x - median| in robust standard deviations, capped at MAX_Z; the scale is at least 1 % of the median
    magnitude, for layers whose entries are nearly all equal (a fresh layer's zero biases)."""
    median = np.median(values)
    scale = MAD_TO_STD * np.median(np.abs(values - median))
    floor = max(1e-2 * float(np.median(np.abs(values))), float(np.finfo(np.float32).tiny))
    return np.minimum(np.abs(values - median) / max(scale, floor), MAX_Z)


def check(model: Model, probe=None) -> Finding:
    """log10 of the largest robust z-score of a filter norm, dense row norm or bias within its layer."""
    worst = (0.0, "no layer with enough entries", "")
    for path, kind, values in groups(model.stock().params):
        if values.size < MIN_GROUP:
            continue
        z = robust_z(values)
        if kind == "filter" and values.max() > 0:
            z = np.where(values == 0, MAX_Z, z)
        i = int(np.argmax(z))
        if z[i] > worst[0]:
            zero = kind == "filter" and values[i] == 0
            note = "all zero" if zero else f"{values[i]:.3g}, median {np.median(values):.3g}"
            worst = (float(z[i]), path, f"{kind} {i} ({note})")
    z, path, what = worst
    return Finding(float(np.log10(max(z, 1.0))), f"{path} {what}: z = {z:.3g}" if path else what, None)
