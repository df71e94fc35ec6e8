"""Summaries of per-image results: the rows of results.json and the report's tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cam_jax import evaluate

# The paper's Tables 1 and 2 (ImageNet validation, VGG-16): accuracy, mean ||dy||_inf, L1.
PAPER = {
    ("original", "clean"): (0.71592, None, None),
    ("T1", "clean"): (0.71594, 0.01713, 0.00513),
    ("T2", "clean"): (0.71594, 0.00454, 0.01079),
    ("T3", "clean"): (0.71592, 0.00000, 0.05932),
    ("T4", "clean"): (0.71592, 0.00000, 0.00000),
    ("original", "sticker"): (0.69048, None, None),
    ("T4", "sticker"): (0.69048, 0.00000, 0.00006),
}


def _stat(values: np.ndarray, reduce) -> float | None:
    values = np.asarray(values, np.float64)
    return None if np.isnan(values).all() else float(reduce(values))


def summarize(per_image: dict[tuple[str, str], dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """One dict per row of `evaluate.ROWS`, with the keys results.json promises (None where n/a)."""
    rows = []
    for model, data in evaluate.ROWS:
        m = per_image[(model, data)]
        rows.append({
            "model": model,
            "data": data,
            "accuracy": _stat(m["correct"], np.mean),
            "dy_inf_mean": _stat(m["dy_inf"], np.mean),
            "dy_inf_max": _stat(m["dy_inf"], np.max),
            "l1_mean": _stat(m["l1"], np.mean),
            "pointing_game": _stat(m["pointing"], np.mean),
            "mass_in_mask": _stat(m["mass"], np.mean),
            "collapsed": _stat(m["collapsed"], np.mean),
        })
    return rows


def chance(per_image: dict[tuple[str, str], dict[str, np.ndarray]]) -> dict[str, float] | None:
    """Chance levels of the localisation scores (uniform random point; uniform map), if masks exist."""
    m = per_image.get(("chance", "clean"))
    return None if m is None else {"pointing_game": float(np.mean(m["pointing"])), "mass_in_mask": float(np.mean(m["mass"]))}


def _fmt(value: float | None, digits: int = 5) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown_tables(rows: list[dict[str, Any]], with_paper: bool, chance_levels: dict[str, float] | None = None) -> str:
    """Table 1 (clean images, original and T1-T4) and Table 2 (T4 on clean and sticker images)."""
    header = ["model", "accuracy", "mean ‖dy‖∞", "max ‖dy‖∞", "L1", "pointing game", "mass in mask", "all-zero maps"]
    if with_paper:
        header += ["paper acc.", "paper ‖dy‖∞", "paper L1"]

    def line(row, label):
        cells = [label, _fmt(row["accuracy"]), _fmt(row["dy_inf_mean"]), _fmt(row["dy_inf_max"]),
                 _fmt(row["l1_mean"]), _fmt(row["pointing_game"], 3), _fmt(row["mass_in_mask"], 3),
                 _fmt(row["collapsed"], 3)]
        if with_paper:
            cells += [_fmt(v) for v in PAPER[(row["model"], row["data"])]]
        return "| " + " | ".join(cells) + " |"

    def table(selected):
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(out + [line(r, label) for r, label in selected])

    by_key = {(r["model"], r["data"]): r for r in rows}
    table1 = table([(by_key[(m, "clean")], m) for m in ("original", "T1", "T2", "T3")])
    table2 = table([(by_key[(m, d)], f"{m} on {d} images") for d in ("clean", "sticker") for m in ("original", "T4")])
    text = f"### Table 1: T1-T3\n\n{table1}\n\n### Table 2: T4 (sticker backdoor)\n\n{table2}\n"
    if chance_levels:
        text += (f"\nChance levels of the localisation scores: pointing game {chance_levels['pointing_game']:.3f} "
                 f"(a uniformly random point), mass in mask {chance_levels['mass_in_mask']:.3f} (a flat map).\n")
    return text
