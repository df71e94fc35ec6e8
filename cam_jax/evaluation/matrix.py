"""The vulnerability matrix: which explanation methods each manipulation fools, per target and normalisation.

A cell is (model, data, method, target, normalization), reduced over images from
the per-image metrics of `step.evaluate` (each metric's `cell` keys, `cam_jax.metrics.METRICS`).
A manipulated model's explanation is "fooled" when it moved away from the original's explanation by
the same method: its L1 distance to it (normalised maps, summed over the h x w pixels) exceeds
`metrics.change.FOOLED` of the largest possible, h w.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cam_jax.atomic import atomic_path  # noqa: E402
from cam_jax.evaluation.config import Config  # noqa: E402
from cam_jax.evaluation.tables import reduce  # noqa: E402
from cam_jax.metrics import METRICS  # noqa: E402
from cam_jax.metrics.change import FOOLED  # noqa: E402
from cam_jax.metrics.quality import QUALITY  # noqa: E402


def cells(per_image: dict[tuple[str, str], dict[str, np.ndarray]], grid: Config,
          rows: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """matrix.json's cells: each metric's `cell` keys reduced over the images (dy_inf_max: the largest
    ||y_n - y_o||_inf, 0 when no score moved at all), None where a figure does not apply."""
    out = []
    for model, data in rows:
        m = per_image[(model, data)]
        for i, method in enumerate(grid.methods):
            for j, target in enumerate(grid.targets):
                for k, norm in enumerate(grid.normalizations):
                    out.append({"model": model, "data": data, "method": method, "target": target,
                                "normalization": norm,
                                **{key: reduce(m[name][i, j, k], how) for name, metric in METRICS.items()
                                   for key, how in metric.cell.items()},
                                **{name: reduce(m[name][i, j, k], "nanmean") for name in grid.metrics}})
    return out


def fooled_share(cell: dict[str, Any], map_pixels: int) -> float | None:
    """The cell's mean per-pixel L1 to the original's explanation, in [0, 1] (None for the original)."""
    value = cell["l1_to_original"]
    return None if value is None else value / map_pixels


def _columns(matrix: list[dict[str, Any]]) -> list[tuple[str, str]]:
    seen = []
    for c in matrix:
        if c["model"] != "original" and (c["model"], c["data"]) not in seen:
            seen.append((c["model"], c["data"]))
    return seen


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def markdown(matrix: list[dict[str, Any]], grid: Config, map_pixels: int) -> str:
    """A table per (target, normalization): methods as rows, manipulations (on clean or sticker
    images) as columns; each cell "fooled share / L1 to the attacker's target per pixel", bold when fooled."""
    by_key = {(c["model"], c["data"], c["method"], c["target"], c["normalization"]): c for c in matrix}
    columns = _columns(matrix)
    text = []
    for target in grid.targets:
        for norm in grid.normalizations:
            header = ["method"] + [f"{m} ({d})" for m, d in columns]
            lines = [f"### target {target}, {norm} normalisation\n", "| " + " | ".join(header) + " |",
                     "|" + "---|" * len(header)]
            for method in grid.methods:
                row = [method]
                for model, data in columns:
                    c = by_key[(model, data, method, target, norm)]
                    moved = fooled_share(c, map_pixels)
                    to_target = None if c["l1_to_target"] is None else c["l1_to_target"] / map_pixels
                    cell = f"{_fmt(moved)} / {_fmt(to_target)}"
                    row.append(f"**{cell}**" if moved is not None and moved > FOOLED else cell)
                lines.append("| " + " | ".join(row) + " |")
            text.append("\n".join(lines) + "\n")
    text += quality_tables(matrix, grid)
    legend = (f"Each cell: mean |normalised map - the original's map by the same method| per pixel (0: unchanged, "
              f"1: opposite) / the same to the map the attacker wrote into A (T4 on clean images, and the FT-* "
              f"models attacked by fine-tuning, which write no map: the original's map). Bold: fooled, the first "
              f"above {FOOLED}.\n")
    return legend + "\n" + "\n".join(text)


def _quality_columns(matrix: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [("original", "clean"), *_columns(matrix)]


def quality_tables(matrix: list[dict[str, Any]], grid: Config) -> list[str]:
    """A table per quality metric (`Config.metrics`) at the first target and normalisation: methods as rows,
    the original and each manipulation as columns, each cell the metric's mean over the images."""
    if not grid.metrics:
        return []
    by_key = {(c["model"], c["data"], c["method"], c["target"], c["normalization"]): c for c in matrix}
    columns = _quality_columns(matrix)
    target, norm = grid.targets[0], grid.normalizations[0]
    text = []
    for name in grid.metrics:
        q = QUALITY[name]
        header = ["method"] + [f"{m} ({d})" for m, d in columns]
        lines = [f"### {name} ({q.family}; {'higher' if q.higher else 'lower'} is better), target {target}\n",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method in grid.methods:
            row = [method] + [_fmt(by_key[(m, d, method, target, norm)][name]) for m, d in columns]
            lines.append("| " + " | ".join(row) + " |")
        text.append("\n".join(lines) + "\n")
    return text


def heatmap(path, matrix: list[dict[str, Any]], grid: Config, map_pixels: int, normalization: str = "max") -> None:
    """matrix.png: one panel per target; methods x manipulations, colour = per-pixel L1 to the original's
    explanation (how far the lie moved the map), the value written in each cell, fooled cells outlined."""
    by_key = {(c["model"], c["data"], c["method"], c["target"], c["normalization"]): c for c in matrix}
    columns = _columns(matrix)
    n_cols = min(max(len(grid.targets), len(grid.metrics)), 3)
    target_rows, metric_rows = -(-len(grid.targets) // n_cols), -(-len(grid.metrics) // n_cols)
    n_rows = target_rows + metric_rows
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(0.8 * len(columns) * n_cols + 2.5,
                                                      (0.38 * len(grid.methods) + 1.2) * n_rows), squeeze=False,
                             gridspec_kw={"wspace": 0.45, "hspace": 0.7})
    target_axes, metric_axes = axes[:target_rows].ravel(), axes[target_rows:].ravel()
    for ax in [*target_axes[len(grid.targets):], *metric_axes[len(grid.metrics):]]:
        ax.axis("off")
    _quality_panels(metric_axes[:len(grid.metrics)], by_key, grid, normalization)
    for ax, target in zip(target_axes, grid.targets, strict=False):
        values = np.array([[fooled_share(by_key[(m, d, method, target, normalization)], map_pixels) or 0.0
                            for m, d in columns] for method in grid.methods])
        image = ax.imshow(values, cmap="magma_r", vmin=0.0, vmax=max(0.5, float(values.max())), aspect="auto")
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v > 0.3 else "black", fontweight="bold" if v > FOOLED else "normal")
        ax.set_xticks(range(len(columns)), [f"{m}\n{d}" for m, d in columns], fontsize=6)
        ax.set_yticks(range(len(grid.methods)), grid.methods, fontsize=7)
        ax.set_title(f"target: {target}", fontsize=8)
    fig.colorbar(image, ax=list(target_axes), shrink=0.6, label="L1 to the original's map per pixel")
    fig.suptitle(f"Which explanations each manipulation moves ({normalization} normalisation; "
                 f"fooled > {FOOLED})", fontsize=9)
    with atomic_path(path) as staging:
        fig.savefig(staging, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _quality_panels(axes, by_key, grid: Config, normalization: str) -> None:
    """One panel per quality metric at the first target: methods x (original, manipulations), each colour
    scaled to the metric's own range, so that "better" is always light."""
    matrix_columns = [(m, d) for (m, d, *_rest) in by_key if m != "original"]
    columns = [("original", "clean"), *dict.fromkeys(matrix_columns)]
    target = grid.targets[0]
    for ax, name in zip(axes, grid.metrics, strict=True):
        values = np.array([[by_key[(m, d, method, target, normalization)][name] for m, d in columns]
                           for method in grid.methods], dtype=np.float64)
        shown = values if QUALITY[name].higher else -values
        finite = shown[np.isfinite(shown)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        ax.imshow(shown, cmap="viridis", vmin=low, vmax=high if high > low else low + 1, aspect="auto")
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, "-" if not np.isfinite(v) else f"{v:.2g}", ha="center", va="center", fontsize=5,
                    color="white")
        ax.set_xticks(range(len(columns)), [f"{m}\n{d}" for m, d in columns], fontsize=6)
        ax.set_yticks(range(len(grid.methods)), grid.methods, fontsize=7)
        ax.set_title(f"{name}, target {target} ({'higher' if QUALITY[name].higher else 'lower'} is better: "
                     "bright)", fontsize=7)
