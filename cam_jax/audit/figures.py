"""The audit as a picture: a report page, each score against its threshold and clean range."""

from __future__ import annotations

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
