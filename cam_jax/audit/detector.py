"""The audit measured as a detector: every model's scores, and per check the AUROC and TPR at 1 % FPR."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from cam_jax.audit.roc import auroc, roc_curve, tpr_at_fpr
from cam_jax.audit.verdict import Report

GROUPS = ("honest", "held-in", "held-out")


class Row(NamedTuple):
    """One audited model: its name, its group (GROUPS), its family (e.g. "T3") and its report."""

    name: str
    group: str
    family: str
    report: Report

    def scores(self) -> dict[str, float]:
        return {**{name: c.score for name, c in self.report.checks.items()}, "combined": self.report.combined}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "family": self.family,
                "manipulated": self.report.manipulated, "seconds": self.report.seconds, "scores": self.scores(),
                "where": {name: c.where for name, c in self.report.checks.items()}}


def summarise(rows: list[Row]) -> dict[str, Any]:
    """{"checks": {check: {"clean_range", "held-in": {"auroc", "tpr_at_1pct_fpr"}, "held-out": ...}},
    "missed": the manipulated models the verdict calls clean, "false_positives", "seconds_per_model", counts}."""
    honest = [r for r in rows if r.group == "honest"]
    if not honest:
        raise ValueError("no honest models to measure against")
    names = list(honest[0].scores())
    out: dict[str, Any] = {"counts": {g: sum(r.group == g for r in rows) for g in GROUPS}, "checks": {}}
    for name in names:
        clean = [r.scores()[name] for r in honest]
        entry: dict[str, Any] = {"clean_range": [min(clean), max(clean)]}
        for group in GROUPS[1:]:
            positives = [r.scores()[name] for r in rows if r.group == group]
            if positives:
                entry[group] = {"auroc": auroc(clean, positives), "tpr_at_1pct_fpr": tpr_at_fpr(clean, positives)}
        out["checks"][name] = entry
    out["verdict"] = {group: {"flagged": float(np.mean([r.report.manipulated for r in rows if r.group == group]))}
                      for group in GROUPS if any(r.group == group for r in rows)}
    out["missed"] = [r.name for r in rows if r.group != "honest" and not r.report.manipulated]
    out["false_positives"] = [r.name for r in honest if r.report.manipulated]
    seconds = [r.report.seconds for r in rows]
    out["seconds_per_model"] = {"median": float(np.median(seconds)), "max": float(np.max(seconds))}
    return out


def curves(rows: list[Row]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]]:
    """{group: {check: (fpr, tpr, auroc)}} for `figures.roc_figure`."""
    clean = [r.scores() for r in rows if r.group == "honest"]
    out = {}
    for group in GROUPS[1:]:
        positives = [r.scores() for r in rows if r.group == group]
        if positives:
            out[group] = {name: (*roc_curve([c[name] for c in clean], [p[name] for p in positives]),
                                 auroc([c[name] for c in clean], [p[name] for p in positives]))
                          for name in clean[0]}
    return out
