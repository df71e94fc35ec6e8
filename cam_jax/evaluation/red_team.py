"""The audit against every attack written to pass it: what each keeps, how far it moves GradCAM, and what
the audit says (`scripts/audit_attacks.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from cam_jax.audit.verdict import audit_model
from cam_jax.evaluation.population import map_change
from cam_jax.manipulations import adaptive, editable, paper
from cam_jax.model import Model

ATTACKS: dict[str, Callable[[Model], Model]] = {
    # the paper's weight edits where there are weights to edit, the exact T1/T2 on a ViT
    "T1": lambda m: paper.constant_flat(m, exact=not editable(m)),
    "T2": lambda m: paper.constant_image(m, exact=not editable(m)),
    "T3": paper.semi_random,
    "T4 (no sticker)": paper.sticker_backdoor, **adaptive.ATTACKS,
}


def assess(model: Model, images: jax.Array, attacks: dict[str, Callable[[Model], Model]] | None = None
           ) -> list[dict[str, Any]]:
    """One row per attack (default: `ATTACKS`, the paper's T1-T4 and `adaptive.ATTACKS`) on `model` with `images`
    (B, H, W, 3), normalised: {"attack", "max_logit_change", "moved", "six_checks" (the largest score /
    threshold of the checks before `intervention`, or None), "intervention" (its score, or None),
    "verdict" ("MANIPULATED", "clean" or "refused: <why>")}."""
    rows = []
    before = np.asarray(model(images))
    for name, attack in (ATTACKS if attacks is None else attacks).items():
        attacked = attack(model)
        row: dict[str, Any] = {"attack": name,
                               "max_logit_change": float(np.abs(np.asarray(attacked(images)) - before).max()),
                               "moved": map_change(model, attacked, images), "six_checks": None,
                               "intervention": None}
        try:
            report = audit_model(attacked, images)
        except ValueError as err:
            row["verdict"] = f"refused: {err}"
        else:
            others = [c.score / c.threshold for n, c in report.checks.items() if n != "intervention"]
            row.update(six_checks=max(others), intervention=report.checks["intervention"].score,
                       verdict="MANIPULATED" if report.manipulated else "clean")
        rows.append(row)
        jax.clear_caches()  # every attack compiles its own passes
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """`assess`'s rows as a markdown table."""
    lines = ["| attack | max logit change | GradCAM moved | six checks: largest score / threshold | intervention "
             "| verdict |", "|---|---|---|---|---|---|"]
    for r in rows:
        six = "-" if r["six_checks"] is None else f"{r['six_checks']:.2f}"
        iv = "-" if r["intervention"] is None else f"{r['intervention']:.3f}"
        verdict = r["verdict"].split(":")[0]
        lines.append(f"| {r['attack']} | {r['max_logit_change']:.2g} | {r['moved']:.3f} | {six} | {iv} | {verdict} |")
    return "\n".join(lines)
