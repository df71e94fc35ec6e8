"""Evaluate GradCAM's manipulations T1-T4: the paper's Tables 1 and 2, with figures.

    python scripts/eval.py                                   # bundled default model + generated shapes
    python scripts/eval.py --arch vgg16 --weights weights/vgg16.npz --data imagenet2012 --data-dir DIR
    python scripts/eval.py --arch resnet50 --weights resnet50-0676ba61.pth --data-dir DIR

    python scripts/eval.py --methods all                     # + the vulnerability matrix
    python scripts/eval.py --methods all --attacked a.npz    # + a model attacked by fine-tuning as a row
    python scripts/eval.py --methods all --targets logit --metrics deletion insertion   # + faithfulness
    python scripts/eval.py --methods all defences --targets logit       # + the defences as rows

Writes results.json, report.md, figure1.png and figure3.png to --out (default results/).
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import signal
import sys

import jax

from cam_jax.evaluation import config as configs
from cam_jax.evaluation import experiment, outputs, tables
from cam_jax.metrics import quality
from cam_jax.models.registry import ARCHS


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("default", "vgg16"), default="default",
                        help="the bundled default model, or ImageNet VGG-16 weights (--weights; as --arch vgg16)")
    parser.add_argument("--arch", default=None, metavar="|".join(sorted(ARCHS)),
                        help="ImageNet weights of this architecture (--weights), checked against the file")
    parser.add_argument("--weights", default=None, help="cam_jax .npz, torchvision .pth or Keras .h5")
    parser.add_argument("--data", choices=configs.DATASETS, default=None,
                        help="default: shapes for the bundled model, imagenet2012 with --arch")
    parser.add_argument("--data-dir", default=None, help="folder with ILSVRC2012_img_val.tar (imagenet2012)")
    parser.add_argument("--limit", type=int, default=None, help="number of images (default: 512 shapes / all 50,000)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="sticker placement and T3's random branch")
    parser.add_argument("--exact", action="store_true", help="bit-exact T1/T2 instead of the paper's weight edits")
    parser.add_argument("--convention", choices=configs.CONVENTIONS, default="paper",
                        help="the paper's text (default) or every choice of the authors' code (SPEC.md)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help="the vulnerability matrix: these explanation methods (or 'all': every CAM method "
                             "computed from A; 'defences': occlusion, the beta-smoothed and aggregated methods; "
                             "the input-space ones and scorecam by name) x every target x both "
                             "normalisations; writes matrix.json/.md/.png and figure_methods.png")
    parser.add_argument("--targets", nargs="+", default=None, metavar="TARGET",
                        help="with --methods: only these targets (default: every one)")
    parser.add_argument("--metrics", nargs="+", default=(), metavar="METRIC",
                        help="with --methods: quality metrics measured in every cell (names, a family such as "
                             "faithfulness, or 'all'; see scripts/metrics.py), columns of matrix.json/.md/.png")
    parser.add_argument("--attacked", nargs="+", default=(), metavar="W.npz",
                        help="models attacked by fine-tuning (scripts/finetune_attack.py) as rows FT-<file stem>")
    parser.add_argument("--adaptive", action="store_true",
                        help="the attacks written against the audit (cam_jax.manipulations.adaptive) as rows A-<name>")
    parser.add_argument("--recommend", action="store_true",
                        help="each manipulated or attacked model also as the audit recommends reading it (rows "
                             "NAME+rec: its explanations without the channels of A its audit flags)")
    parser.add_argument("--unfused", action="store_true", help="run the models one by one (slower; for checks)")
    parser.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() (multi-host)")
    parser.add_argument("--out", default="results")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace) -> configs.Config:
    if args.model == "vgg16" and args.arch not in (None, "vgg16"):
        raise ValueError(f"--model vgg16 contradicts --arch {args.arch}")
    if (args.targets or args.metrics) and not args.methods:
        raise ValueError("--targets and --metrics describe the matrix's cells: give --methods too")
    cells = configs.cells(tuple(args.methods)) if args.methods else {}
    if args.targets:
        cells["targets"] = tuple(dict.fromkeys(args.targets))
    if args.metrics:
        cells["metrics"] = quality.names_of(args.metrics)
    return configs.Config(weights=args.weights, arch=args.arch or ("vgg16" if args.model == "vgg16" else None),
                          attacked=tuple(args.attacked), adaptive=args.adaptive, recommend=args.recommend,
                          data=args.data, data_dir=args.data_dir, limit=args.limit,
                          convention=args.convention, exact=args.exact, seed=args.seed, batch_size=args.batch_size,
                          fused=not args.unfused, distributed=args.distributed, progress=not args.no_progress, **cells)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # SIGTERM as an exception, so the staging folder is removed on the way out like on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        config = config_of(args)
        outputs.check_out(args.out)
        results = experiment.evaluate(config)
        replaced = outputs.write(results, args.out) if jax.process_index() == 0 else False
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if jax.process_index() == 0:
        s = results.summary
        print(tables.markdown_tables(s["rows"], with_paper=True, chance_levels=s["chance"]))
        print(f"{s['n_images']} images in {s['seconds']} s on {s['device']}; wrote {args.out}/"
              + (" (replacing the previous results there)" if replaced else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
