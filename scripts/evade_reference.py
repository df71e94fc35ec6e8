"""Fine-tune a VGG's head against the audit's reference mode (`cam_jax.manipulations.evasion`).

    python scripts/evade_reference.py --out attacks/evade_reference.npz
    python scripts/audit_eval.py --out DIR --reference weights/default.npz --honest H.npz ... \
        --attacked attacks/evade_reference.npz

Tunes fc1, fc2 and fc3 of the bundled default (or --weights) on --images generated shapes of the training
stream (the attacker's own; no audit image), then writes, each atomically:
  OUT          the tuned weights in the checkpoint format (audit.py and audit_eval.py read them);
  OUT.json     the settings, the accuracy before and after on --test-images, and the last step's figures;
  OUT.csv      the training log, one row per step.
"""

from __future__ import annotations

# Unlike the other command lines, XLA's own dots (no cam_jax.xla_flags): this training's path depends on
# float rounding, and the run measured in docs/REPRODUCTION.md took XLA's own.
import argparse
import csv
import io
import json
import os
import sys

import jax.numpy as jnp

from cam_jax.atomic import atomic_path
from cam_jax.convert import checkpoint, default_weights, load_weights
from cam_jax.data import images, shapes
from cam_jax.evaluation.population import accuracy
from cam_jax.manipulations import evasion


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the tuned weights (.npz); OUT.json and OUT.csv beside")
    parser.add_argument("--weights", default=None, help="the model to tune (default: the bundled default)")
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--images", type=int, default=2048, help="training-stream images the attacker holds")
    parser.add_argument("--lr", type=float, default=1.5e-4, help="Adam's first learning rate (cosine decay)")
    parser.add_argument("--seed", type=int, default=1, help="the order the groups are drawn in")
    parser.add_argument("--test-images", type=int, default=256)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        if args.steps < 1 or args.test_images < 1:
            raise ValueError("--steps and --test-images must be >= 1")
        if args.images < 4 * evasion.GROUP:
            raise ValueError(f"--images must be at least {4 * evasion.GROUP} (4 groups of {evasion.GROUP})")
        weights = args.weights or default_weights()
        original, _ = load_weights(weights)
        data = shapes.batch(shapes.TRAIN_SEED, range(args.images), original.input_size)
        x = jnp.asarray(images.normalize(data.pixels, original.preprocess))
        tuned, log = evasion.evade_reference(original, x, data.labels, steps=args.steps, lr=args.lr, seed=args.seed,
                                               progress=not args.no_progress)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = {"settings": {k: v for k, v in vars(args).items() if k != "out"},
              "source_sha256": checkpoint.sha256(weights),
              "accuracy": {"before": accuracy(original, args.test_images), "after": accuracy(tuned, args.test_images)},
              "last_step": log[-1]}
    checkpoint.save(args.out, tuned, attack=result["settings"], source_sha256=result["source_sha256"])
    stem = os.path.splitext(args.out)[0]
    with atomic_path(stem + ".json") as path, open(path, "w") as f:
        json.dump(result, f, indent=2)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(log[0]))
    writer.writeheader()
    writer.writerows(log)
    with atomic_path(stem + ".csv") as path, open(path, "w") as f:
        f.write(table.getvalue())
    print(json.dumps(result["accuracy"]), f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
