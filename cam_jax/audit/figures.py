"""The audit as pictures: a report page (each score against its clean range) and ROC curves."""

from __future__ import annotations

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cam_jax.atomic import atomic_path  # noqa: E402
from cam_jax.audit.verdict import Report  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_path(path) as staging:
        fig.savefig(staging, dpi=110)
    plt.close(fig)


def report_page(report: Report, path: str | os.PathLike, title: str = "") -> None:
    """One row per check: its score over its threshold (a dot, red when flagged), the honest models' range
    (a grey band) and the threshold (a line at 1); where the check points, in words, beside it."""
    names = list(report.checks)
    fig, ax = plt.subplots(figsize=(11, 0.75 * len(names) + 1.6))
    for row, name in enumerate(names):
        c = report.checks[name]
        lo, hi = (v / c.threshold for v in c.clean_range)
        ax.barh(row, max(hi - lo, 0.01), left=lo, height=0.5, color="0.8")
        ax.plot(max(c.score / c.threshold, 0.0), row, "o", color="tab:red" if c.flagged else "tab:green", ms=9)
        ax.text(1.02, row, "\n".join(textwrap.wrap(c.where, 70)), transform=ax.get_yaxis_transform(), fontsize=7,
                va="center")
    ax.axvline(1.0, color="tab:red", lw=1, ls="--")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("score / threshold (grey: honest models' range; dashed: flags above)")
    verdict = "MANIPULATED" if report.manipulated else "clean"
    ax.set_title(f"{title}{': ' if title else ''}{verdict}", fontsize=11, parse_math=False)
    _save(fig, path)


def roc_figure(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]], path: str | os.PathLike) -> None:
    """One panel per population ({"held-in": {check: (fpr, tpr, auroc)}, "held-out": ...})."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.8), squeeze=False)
    for ax, (population, by_check) in zip(axes[0], curves.items(), strict=True):
        for name, (fpr, tpr, area) in by_check.items():
            ax.step(fpr, tpr, where="post", lw=2.5 if name == "combined" else 1.2,
                    color="black" if name == "combined" else None, label=f"{name} ({area:.3f})")
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls=":")
        ax.axvline(0.01, color="0.5", lw=0.8, ls="--")
        ax.set(xlabel="false-positive rate (honest models flagged)", ylabel="true-positive rate",
               title=f"{population} attacks (AUROC)", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
        ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)
