"""Heatmap overlays with matplotlib (Agg backend, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cam_jax.atomic import atomic_path  # noqa: E402


def upsample_map(cam: np.ndarray, size: int) -> np.ndarray:
    """(h, w) map -> (size, size) by bilinear resampling, for display only."""
    img = Image.fromarray(np.asarray(cam, np.float32), mode="F")
    return np.asarray(img.resize((size, size), Image.BILINEAR))


def overlay(ax, image: np.ndarray, cam: np.ndarray | None, title: str = "") -> None:
    """Draw uint8 RGB `image` (H, W, 3) with normalised `cam` (h, w) in [0, 1] over it."""
    ax.imshow(image)
    if cam is not None:
        ax.imshow(upsample_map(cam, image.shape[0]), cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
    ax.set_title(title, fontsize=8, parse_math=False)  # file names may hold "$"
    ax.axis("off")


def grid(
    path: str | os.PathLike,
    rows: Sequence[Sequence[tuple[np.ndarray, np.ndarray | None, str]]],
    suptitle: str = "",
) -> None:
    """Save a grid of overlays; each cell is (image, cam or None, title)."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols, 2.5 * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            if c < len(row):
                overlay(axes[r][c], *row[c])
            else:
                axes[r][c].axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10, parse_math=False)
    _save(fig, path)


def _save(fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_path(path) as staging:
        fig.savefig(staging, dpi=110)
    plt.close(fig)


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
