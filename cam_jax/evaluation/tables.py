"""Summaries of per-image results: the rows of results.json and the report's tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cam_jax.evaluation.config import PAPER, PAPER_CELL, Config
from cam_jax.evaluation.suite import PAPER_SUITE, Entry, paper_figures, rows
from cam_jax.metrics import METRICS

REDUCE = {"mean": np.mean, "max": np.max, "nanmean": np.nanmean}  # nanmean: over the images where it is defined


def reduce(values: np.ndarray, how: str) -> float | None:
    """The "mean" or "max" of per-image values; None where none applies (all NaN)."""
    values = np.asarray(values, np.float64)
    return None if np.isnan(values).all() else float(REDUCE[how](values))


def summarize(per_image: dict[tuple[str, str], dict[str, np.ndarray]],
              suite: tuple[Entry, ...] = PAPER_SUITE, config: Config = PAPER) -> list[dict[str, Any]]:
    """One dict per row of the suite (its paper cell), with the keys results.json promises (None where n/a):
    each metric's `summary` keys (`cam_jax.metrics.METRICS`)."""
    out = []
    cell = config.index(*PAPER_CELL)
    for model, data in rows(suite):
        m = per_image[(model, data)]
        out.append({"model": model, "data": data, **{key: reduce(m[name][cell], how) for name, metric in METRICS.items()
                                                     for key, how in metric.summary.items()}})
    return out


def chance(per_image: dict[tuple[str, str], dict[str, np.ndarray]]) -> dict[str, float] | None:
    """Chance levels of the localisation scores (uniform random point; uniform map), if masks exist."""
    m = per_image.get(("chance", "clean"))
    if m is None:
        return None
    return {"pointing_game": float(np.mean(m["pointing"])), "mass_in_mask": float(np.mean(m["mass"]))}


def _fmt(value: float | None, digits: int = 5) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown_tables(results: list[dict[str, Any]], with_paper: bool, chance_levels: dict[str, float] | None = None,
                    suite: tuple[Entry, ...] = PAPER_SUITE) -> str:
    """Table 1 (clean images: the original and the suite's table-1 entries) and Table 2 (its table-2
    entries, T4 in the paper's suite, beside the original on clean and sticker images)."""
    paper = paper_figures(suite)
    header = ["model", "accuracy", "mean ‖dy‖∞", "max ‖dy‖∞", "L1", "pointing game", "mass in mask", "all-zero maps"]
    if with_paper:
        header += ["paper acc.", "paper ‖dy‖∞", "paper L1"]

    def line(row, label):
        cells = [label, _fmt(row["accuracy"]), _fmt(row["dy_inf_mean"]), _fmt(row["dy_inf_max"]),
                 _fmt(row["l1_mean"]), _fmt(row["pointing_game"], 3), _fmt(row["mass_in_mask"], 3),
                 _fmt(row["collapsed"], 3)]
        if with_paper:
            cells += [_fmt(v) for v in paper.get((row["model"], row["data"]), (None, None, None))]
        return "| " + " | ".join(cells) + " |"

    def table(selected):
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(out + [line(r, label) for r, label in selected])

    by_key = {(r["model"], r["data"]): r for r in results}
    first = [e.name for e in suite if e.table == 1]
    second = [e.name for e in suite if e.table == 2]
    table1 = table([(by_key[(m, "clean")], m) for m in ("original", *first)])
    text = f"### Table 1: {', '.join(first)}\n\n{table1}\n"
    if second:
        table2 = table([(by_key[(m, d)], f"{m} on {d} images") for d in ("clean", "sticker")
                        for m in ("original", *second) if (m, d) in by_key])
        text += f"\n### Table 2: {', '.join(second)} (sticker backdoor)\n\n{table2}\n"
    if chance_levels:
        text += (f"\nChance levels of the localisation scores: pointing game {chance_levels['pointing_game']:.3f} "
                 f"(a uniformly random point), mass in mask {chance_levels['mass_in_mask']:.3f} (a flat map).\n")
    return text
