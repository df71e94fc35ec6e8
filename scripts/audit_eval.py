"""Measure the audit as a detector: honest models against manipulated ones, AUROC and TPR at 1 % FPR.

    python scripts/audit_eval.py --out audit_eval/              # the full populations (trains and caches)
    python scripts/audit_eval.py --out /tmp/q --quick           # random models only, for a smoke test
    python scripts/audit_eval.py --out DIR --attacked attacks/location.npz ...   # + attacks of the default

Honest: the bundled default and `cam_jax.audit.population.HONEST` (trained on the generated shapes,
cached under --cache, and random initialisations). Held-in attacks: T1-T4, the exact T1/T2 and chains,
constants drawn over wide ranges and kept where they fool GradCAM. Held-out: fine-tuning attacks
(Heo et al.), which no check was designed on: 80 steps on each of the two most accurate trained
population models, and any files --attacked names (`scripts/finetune_attack.py` outputs, attacks of
the bundled default). Writes audit_eval.json (per check and combined: the
honest range, AUROC and TPR at 1 % FPR per population; the models missed; time per model),
models.json (every model's scores) and roc.png.
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import os
import sys
import time

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cam_jax.atomic import write_json
from cam_jax.audit import audit_model, detector, figures, population
from cam_jax.convert import checkpoint, default_weights, load_weights
from cam_jax.manipulations import fooling

FINETUNE_BASES = 2  # trained honest models that the held-out fine-tuning attacks start from


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "cam_jax", "audit"),
                        help="where trained population models are kept between runs")
    parser.add_argument("--quick", action="store_true",
                        help="two random honest models, T1 and T4 on one of them, no fine-tuning")
    parser.add_argument("--seed", type=int, default=0, help="draws of the manipulations' constants")
    parser.add_argument("--attacked", nargs="+", default=[], metavar="W.npz",
                        help="held-out attacked weights of the bundled default (finetune_attack.py outputs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        if args.quick and args.attacked:
            raise ValueError("--attacked needs the full population (the default is not in --quick's)")
        for path in args.attacked:
            if not os.path.exists(path):
                raise ValueError(f"--attacked {path}: no such file")
        os.makedirs(args.out, exist_ok=True)
        os.makedirs(args.cache, exist_ok=True)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.time()
    specs = population.QUICK if args.quick else population.HONEST
    rows: list[detector.Row] = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())

    def audited(name, group, family, model):
        row = detector.Row(name, group, family, audit_model(model, population.audit_images(model)))
        rows.append(row)
        return row

    accuracy = {}

    with Progress(*columns) as progress:
        honest = [] if args.quick else [("default", checkpoint.load(default_weights())[0], True)]
        task = progress.add_task("honest models", total=len(specs) + len(honest), status="")
        for spec in specs:
            progress.update(task, status=spec.name)
            honest.append((spec.name, population.honest_model(spec, args.cache), spec.steps > 0 or args.quick))
        for name, model, _ in honest:
            audited(name, "honest", "honest", model)
            accuracy[name] = population.accuracy(model)
            progress.advance(task)
        bases = [(name, model) for name, model, trained in honest if trained][:1 if args.quick else None]
        task = progress.add_task("held-in attacks", total=len(bases), status="")
        for k, (name, model) in enumerate(bases):
            families = population.QUICK_FAMILIES if args.quick else None
            for member in population.manipulated(name, model, args.seed * 1000 + k, families):
                row = audited(member.name, "held-in", member.family, member.model)
                progress.update(task, status=f"{member.name}: {'flagged' if row.report.manipulated else 'MISSED'}")
            progress.advance(task)
        # The most accurate trained models besides the default (whose 300-step attacks --attacked takes).
        ranked = sorted(bases[1:], key=lambda b: accuracy[b[0]], reverse=True)[:FINETUNE_BASES]
        tuned = [] if args.quick else [(b, loss) for b in ranked for loss in fooling.FOOLINGS]
        task = progress.add_task("held-out attacks", total=len(tuned) + len(args.attacked), status="")
        changes = {}
        original = honest[0][1]
        for path in args.attacked:
            progress.update(task, status=path)
            model = load_weights(path)[0]
            changes[path] = population.map_change(original, model, population.audit_images(original))
            audited(path, "held-out", "finetune (file)", model)
            progress.advance(task)
        for (name, model), loss in tuned:
            progress.update(task, status=f"{name} {loss}")
            member = population.finetuned(name, model, loss, args.cache)
            changes[member.name] = member.change
            audited(member.name, "held-out", member.family, member.model)
            progress.advance(task)
    summary = {"command": "python scripts/audit_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               **detector.summarise(rows), "honest_accuracy": accuracy, "finetune_map_change": changes,
               "seconds": time.time() - start}
    write_json(os.path.join(args.out, "audit_eval.json"), summary)
    write_json(os.path.join(args.out, "models.json"), [r.to_dict() for r in rows])
    figures.roc_figure(detector.curves(rows), os.path.join(args.out, "roc.png"))
    print(f"{summary['counts']} models in {summary['seconds']:.0f} s; "
          f"audit {summary['seconds_per_model']['median']:.2f} s per model (median)")
    for name, entry in summary["checks"].items():
        cells = "  ".join(f"{g}: AUROC {entry[g]['auroc']:.3f} TPR@1%FPR {entry[g]['tpr_at_1pct_fpr']:.3f}"
                          for g in detector.GROUPS[1:] if g in entry)
        lo, hi = entry["clean_range"]
        print(f"{name:22s} honest {lo:8.3f}..{hi:8.3f}  {cells}")
    print(f"missed: {summary['missed']}\nfalse positives: {summary['false_positives']}")
    print(f"wrote {args.out}/audit_eval.json, models.json, roc.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
