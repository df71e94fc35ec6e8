"""Measure the audit as a detector: honest models against manipulated ones, AUROC and TPR at 1 % FPR.

    python scripts/audit_eval.py --out audit_eval/              # the full populations (trains and caches)
    python scripts/audit_eval.py --out /tmp/q --quick           # random models only, for a smoke test
    python scripts/audit_eval.py --out DIR --attacked attacks/location.npz ...   # + attacks of the default
    python scripts/audit_eval.py --out DIR --reference weights/default.npz --honest tuned.npz ... --attacked a.npz ...

With --reference (reference mode, `audit.py --reference`): no population; every --honest file (versions of
the reference with no lie) and every --attacked file is audited against the reference on each of the
--image-seeds sets of --count generated shapes, one model per file and set.

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
from cam_jax.audit.probing import MIN_IMAGES
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
                        help="held-out attacked weights of the bundled default (finetune_attack.py outputs), or "
                             "with --reference of the reference")
    parser.add_argument("--reference", default=None, metavar="W",
                        help="reference mode: the trusted weights that --honest and --attacked are versions of")
    parser.add_argument("--honest", nargs="+", default=[], metavar="W.npz",
                        help="with --reference: honest versions of it (fine-tunes with no fooling term)")
    parser.add_argument("--image-seeds", nargs="+", type=int, default=list(detector.IMAGE_SEEDS), metavar="SEED",
                        help="with --reference: the generated image sets' streams")
    parser.add_argument("--count", type=int, default=16, help="with --reference: images per set")
    parser.add_argument("--test-images", type=int, default=256,
                        help="with --reference: generated test images each file's accuracy is measured on")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        if args.quick and args.attacked:
            raise ValueError("--attacked needs the full population (the default is not in --quick's)")
        if args.reference is None and args.honest:
            raise ValueError("--honest names versions of a --reference")
        if args.reference is not None and (args.quick or not args.honest or not args.attacked):
            raise ValueError("--reference needs --honest and --attacked files, and no --quick")
        if args.count < MIN_IMAGES or args.test_images < 1:
            raise ValueError(f"--count must be at least {MIN_IMAGES} and --test-images at least 1, got "
                             f"{args.count} and {args.test_images}")
        for flag, paths in (("--attacked", args.attacked), ("--honest", args.honest),
                            ("--reference", [args.reference] if args.reference else [])):
            for path in paths:
                if not os.path.isfile(path):
                    raise ValueError(f"{flag} {path}: no such file")
        if not all(0 <= seed < 2**31 for seed in args.image_seeds):
            raise ValueError(f"--image-seeds take streams in [0, 2**31), got {args.image_seeds}")
        os.makedirs(args.out, exist_ok=True)
        if args.reference is not None:  # its errors are the files': another architecture, an unreadable file
            rows, summary = detector.versions(args.reference, tuple(args.honest), tuple(args.attacked),
                                              tuple(args.image_seeds), args.count, args.test_images)
        else:
            os.makedirs(args.cache, exist_ok=True)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.reference is None:
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
