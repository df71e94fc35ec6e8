"""How a detector is measured: the ROC curve, its area, and the true-positive rate at a false-positive rate.

Scores are "higher means manipulated"; the positives are the manipulated models.
"""

from __future__ import annotations

import numpy as np


def roc_curve(honest, manipulated) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates), from (0, 0) to (1, 1), one point per distinct score
    (flagging every model whose score is >= it), in increasing order."""
    honest, manipulated = np.asarray(honest, np.float64), np.asarray(manipulated, np.float64)
    thresholds = np.unique(np.concatenate([honest, manipulated]))[::-1]
    fpr = np.array([0.0, *((honest >= t).mean() for t in thresholds)])
    tpr = np.array([0.0, *((manipulated >= t).mean() for t in thresholds)])
    return fpr, tpr


def auroc(honest, manipulated) -> float:
    """P(a manipulated model scores above an honest one), ties counting half (the Mann-Whitney U / n m).

    Example:
      >>> auroc([0.1, 0.2], [0.3, 0.2])
      0.875
    """
    honest, manipulated = np.asarray(honest, np.float64), np.asarray(manipulated, np.float64)
    if not honest.size or not manipulated.size:
        raise ValueError("auroc needs at least one honest and one manipulated score")
    above = (manipulated[:, None] > honest[None, :]).mean()
    ties = (manipulated[:, None] == honest[None, :]).mean()
    return float(above + ties / 2)


def tpr_at_fpr(honest, manipulated, fpr: float = 0.01) -> float:
    """The fraction of manipulated models flagged by the lowest threshold that flags at most `fpr` of the
    honest ones (flagging means a score strictly above the threshold).

    With fewer than 1 / fpr honest models that threshold is the largest honest score.

    Example:
      >>> tpr_at_fpr([0.1, 0.2, 0.3], [0.25, 0.35, 0.4])
      0.6666666666666666
    """
    honest, manipulated = np.asarray(honest, np.float64), np.asarray(manipulated, np.float64)
    candidates = np.unique(honest)
    allowed = [t for t in candidates if (honest > t).mean() <= fpr]
    threshold = min(allowed)
    return float((manipulated > threshold).mean())
