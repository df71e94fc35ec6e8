"""Attack GradCAM by fine-tuning the weights alone (Heo et al. 2019) and measure the attack.

    python scripts/finetune_attack.py --loss location --out attacks/location.npz
    python scripts/finetune_attack.py --loss backdoor --out attacks/backdoor.npz --steps 300 --seed 1
    python scripts/eval.py --attacked attacks/location.npz --methods all     # the attacked model as a matrix row

Fine-tunes the bundled default (or --weights) on generated shapes with cross-entropy (--keep labels)
or distillation to the original (--keep logits) + --lam x the fooling loss (cam_jax.manipulations.fooling),
then writes, each atomically:
  OUT          the attacked weights in the checkpoint format (eval.py --weights/--attacked read them);
  OUT.json     accuracy, fooling success rate, mass in mask and pointing game before/after, how far
               every CAM method's map moved (clean and stickered test images), the settings and times;
  OUT.csv      the training log, one row per step.
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import csv
import io
import json
import math
import os
import sys

from cam_jax.atomic import atomic_path
from cam_jax.convert import checkpoint, default_weights, load_weights
from cam_jax.data import shapes
from cam_jax.evaluation import attacks
from cam_jax.evaluation.config import MATRIX_METHODS
from cam_jax.manipulations import finetune, fooling


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", required=True, choices=tuple(fooling.FOOLINGS), help="the fooling loss")
    parser.add_argument("--out", required=True, help="the attacked weights (.npz); OUT.json and OUT.csv beside")
    parser.add_argument("--weights", default=None, help="the model to attack (default: the bundled default)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate")
    parser.add_argument("--lam", type=float, default=1.0, help="weight of the fooling loss")
    parser.add_argument("--keep", choices=finetune.KEEPS, default="labels",
                        help="hold the predictions by cross-entropy on the labels or by distillation to the original")
    parser.add_argument("--evade", type=float, default=0.0,
                        help="weight of a term that trains against the audit's reference_deletion check (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="the training images' stream and sticker placement")
    parser.add_argument("--test-images", type=int, default=256)
    parser.add_argument("--methods", nargs="+", default=list(MATRIX_METHODS), choices=MATRIX_METHODS,
                        metavar="METHOD", help="the CAM methods whose movement is measured (default: all eight)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def check(args: argparse.Namespace) -> None:
    """Refuse bad arguments before any work; ValueError says which."""
    if not args.out.endswith(".npz"):
        raise ValueError(f"--out must end in .npz, got {args.out!r}")
    if os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a folder; name the weight file to write")
    if args.weights and os.path.exists(args.out) and os.path.samefile(args.weights, args.out):
        raise ValueError(f"--out {args.out} is the model to attack: it would be written over")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write to the folder of --out: {folder}")
    for name in ("steps", "batch_size", "test_images"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not (math.isfinite(args.lr) and 0 < args.lr <= 1):
        raise ValueError(f"--lr must be in (0, 1], got {args.lr}")
    for name in ("lam", "evade"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) >= 0):
            raise ValueError(f"--{name} must be finite and >= 0, got {getattr(args, name)}")
    if not 0 <= args.seed < 2**31:
        raise ValueError(f"--seed must be in [0, 2**31), got {args.seed}")


def _write_text(path: str, text: str) -> None:
    with atomic_path(path) as staging, open(staging, "w") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        check(args)
        weights = args.weights or default_weights()
        model, _ = load_weights(weights)
        if model.num_classes != len(shapes.CLASSES):
            raise ValueError(f"the shapes data has {len(shapes.CLASSES)} classes, {weights} {model.num_classes}")
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    attacked, result, log = attacks.attack(
        model, args.loss, steps=args.steps, batch_size=args.batch_size, lr=args.lr, lam=args.lam, keep=args.keep,
        evade=args.evade, seed=args.seed, test_images=args.test_images, methods=tuple(args.methods),
        progress=not args.no_progress)
    result.update(source=os.path.basename(weights), source_sha256=checkpoint.sha256(weights))
    checkpoint.save(args.out, attacked, attack=result["settings"], source_sha256=result["source_sha256"])
    stem = args.out[: -len(".npz")]
    _write_text(f"{stem}.json", json.dumps(result, indent=2) + "\n")
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(log[0]))
    writer.writeheader()
    writer.writerows(log)
    _write_text(f"{stem}.csv", table.getvalue())
    print(attacks.summary(result))
    print(f"wrote {args.out}, {stem}.json, {stem}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
