"""Measure the audit as a detector: honest models against manipulated ones, AUROC and TPR at 1 % FPR.

    python scripts/audit_eval.py --out audit_eval/              # the full populations (trains and caches)
    python scripts/audit_eval.py --out /tmp/q --quick           # random models only, for a smoke test
    python scripts/audit_eval.py --out DIR --attacked attacks/location.npz ...   # + attacks of the default

Honest: the bundled default and `cam_jax.evaluation.population.HONEST` (trained on the generated shapes,
cached under --cache, and random initialisations). Held-in attacks: T1-T4, the exact T1/T2 and chains,
constants drawn over wide ranges and kept where they fool GradCAM. Adaptive (held out): the attacks of
`cam_jax.manipulations.adaptive`, written against the audit's checks. Held-out: fine-tuning attacks
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

from cam_jax.atomic import write_json
from cam_jax.evaluation import detector, figures


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
    rows, summary = detector.run(args.cache, args.quick, args.seed, tuple(args.attacked))
    summary = {"command": "python scripts/audit_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               **summary}
    write_json(os.path.join(args.out, "audit_eval.json"), summary)
    write_json(os.path.join(args.out, "models.json"), [r.to_dict() for r in rows])
    figures.roc_figure(detector.curves(rows), os.path.join(args.out, "roc.png"))
    print(detector.table(summary))
    print(f"wrote {args.out}/audit_eval.json, models.json, roc.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
