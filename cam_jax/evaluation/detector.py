"""The audit measured as a detector: every model's scores, and per check the AUROC and TPR at 1 % FPR."""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import jax
import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cam_jax.audit.probing import same_architecture
from cam_jax.audit.verdict import Report, audit_model
from cam_jax.convert import checkpoint, default_weights, load_weights
from cam_jax.data import shapes
from cam_jax.evaluation import population
from cam_jax.evaluation.roc import auroc, roc_curve, tpr_at_fpr
from cam_jax.manipulations import fooling
from cam_jax.model import Model

GROUPS = ("honest", "held-in", "adaptive", "held-out")
FINETUNE_BASES = 2  # trained honest models that the held-out fine-tuning attacks start from
IMAGE_SEEDS = (shapes.TEST_SEED, 123, 7)  # reference mode's image sets (docs/REPRODUCTION.md, "Reference mode")


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


def _audit(model: Model, x: jax.Array) -> Report:
    report = audit_model(model, x)
    # Every model compiles its own passes: kept, ~300 models' executables exhausted LLVM's memory maps.
    jax.clear_caches()
    return report


def _columns() -> tuple:
    return (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn())


def run(cache: str, quick: bool = False, seed: int = 0, attacked: tuple[str, ...] = ()) -> tuple[list[Row], dict]:
    """Audit every model of the populations (`population`): the honest ones (the bundled default and
    `population.HONEST`, or `QUICK`), the held-in manipulations of the trained ones, and held out the
    fine-tuning attacks of the two most accurate and the `attacked` files (attacks of the default).
    Returns the rows and the summary (`summarise`'s, with accuracies, map changes and seconds)."""
    start = time.time()
    specs = population.QUICK if quick else population.HONEST
    rows: list[Row] = []
    accuracy, changes = {}, {}

    def audited(name, group, family, model):
        rows.append(Row(name, group, family, _audit(model, population.audit_images(model))))
        return rows[-1]

    with Progress(*_columns()) as progress:
        honest = [] if quick else [("default", checkpoint.load(default_weights())[0], True)]
        task = progress.add_task("honest models", total=len(specs) + len(honest), status="")
        for spec in specs:
            progress.update(task, status=spec.name)
            honest.append((spec.name, population.honest_model(spec, cache), spec.steps > 0 or quick))
        for name, model, _ in honest:
            audited(name, "honest", "honest", model)
            accuracy[name] = population.accuracy(model)
            progress.advance(task)
        bases = [(name, model) for name, model, trained in honest if trained][:1 if quick else None]
        task = progress.add_task("held-in attacks", total=len(bases), status="")
        for k, (name, model) in enumerate(bases):
            for member in population.manipulated(name, model, seed * 1000 + k,
                                                 population.QUICK_MANIPULATIONS if quick else None):
                row = audited(member.name, "held-in", member.family, member.model)
                progress.update(task, status=f"{member.name}: {'flagged' if row.report.manipulated else 'MISSED'}")
            progress.advance(task)
        adaptive_bases = [] if quick else bases
        task = progress.add_task("adaptive attacks", total=len(adaptive_bases), status="")
        for k, (name, model) in enumerate(adaptive_bases):
            for member in population.adapted(name, model, seed * 1000 + 500 + k):
                row = audited(member.name, "adaptive", member.family, member.model)
                changes[member.name] = member.change
                progress.update(task, status=f"{member.name}: {'flagged' if row.report.manipulated else 'MISSED'}")
            progress.advance(task)
        # The most accurate trained models besides the default (whose attacks `attacked` holds).
        ranked = sorted(bases[1:], key=lambda b: accuracy[b[0]], reverse=True)[:FINETUNE_BASES]
        tuned = [] if quick else [(b, loss) for b in ranked for loss in fooling.FOOLINGS]
        task = progress.add_task("held-out attacks", total=len(tuned) + len(attacked), status="")
        for path in attacked:
            progress.update(task, status=path)
            model = load_weights(path)[0]
            changes[path] = population.map_change(honest[0][1], model, population.audit_images(honest[0][1]))
            audited(path, "held-out", "finetune (file)", model)
            progress.advance(task)
        for (name, model), loss in tuned:
            progress.update(task, status=f"{name} {loss}")
            member = population.finetuned(name, model, loss, cache)
            changes[member.name] = member.change
            audited(member.name, "held-out", member.family, member.model)
            progress.advance(task)
    return rows, {**summarise(rows), "honest_accuracy": accuracy, "map_change": changes,
                  "seconds": time.time() - start}


def versions(reference: str, honest: tuple[str, ...], attacked: tuple[str, ...],
             seeds: tuple[int, ...] = IMAGE_SEEDS, count: int = 16, test_images: int = 256
             ) -> tuple[list[Row], dict]:
    """Reference mode as a detector: every weight file (`load_weights`) audited against the `reference`
    file on each image set (`count` generated shapes of each stream in `seeds`), one row per file and
    set, named "STEM@SEED". `honest` are versions of the reference with no lie (fine-tunes with no
    fooling term), `attacked` its attacks (group "held-out"). Returns the rows and `summarise`'s summary
    with each file's accuracy (on `test_images` generated test images) and how far its GradCAM moved from
    the reference's (first set), per file."""
    start = time.time()
    trusted = load_weights(reference)[0]
    files = [(path, "honest", "version") for path in honest] + [(path, "held-out", "finetune (file)")
                                                                for path in attacked]
    for path, _, _ in files:  # before hours of work, not after
        try:
            same_architecture(load_weights(path)[0], trusted)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    rows: list[Row] = []
    accuracy, changes = {}, {}
    with Progress(*_columns()) as progress:
        task = progress.add_task("versions", total=len(files) * len(seeds), status="")
        for path, group, family in files:
            model = load_weights(path)[0]
            stem = os.path.splitext(os.path.basename(path))[0]
            accuracy[stem] = population.accuracy(model, test_images)
            changes[stem] = population.map_change(trusted, model, population.audit_images(trusted, count, seeds[0]))
            for seed in seeds:
                progress.update(task, status=f"{stem}@{seed}")
                x = population.audit_images(model, count, seed)
                # One architecture throughout: the compiled passes are shared, not cleared.
                rows.append(Row(f"{stem}@{seed}", group, family, audit_model(model, x, reference=trusted)))
                progress.advance(task)
    return rows, {**summarise(rows), "accuracy": accuracy, "map_change": changes, "seconds": time.time() - start}


def table(summary: dict) -> str:
    """The summary as text: per check the honest range and each population's AUROC and TPR at 1 % FPR."""
    lines = [f"{summary['counts']} models in {summary['seconds']:.0f} s; "
             f"audit {summary['seconds_per_model']['median']:.2f} s per model (median)"]
    for name, entry in summary["checks"].items():
        cells = "  ".join(f"{g}: AUROC {entry[g]['auroc']:.3f} TPR@1%FPR {entry[g]['tpr_at_1pct_fpr']:.3f}"
                          for g in GROUPS[1:] if g in entry)
        lo, hi = entry["clean_range"]
        lines.append(f"{name:22s} honest {lo:8.3f}..{hi:8.3f}  {cells}")
    lines.append(f"missed: {summary['missed']}\nfalse positives: {summary['false_positives']}")
    return "\n".join(lines)
