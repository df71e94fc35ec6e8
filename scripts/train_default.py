"""Train the bundled default model: VGG-16 layout, narrow, on the generated shapes.

    python scripts/train_default.py            # writes weights/default.npz and weights/train_log.csv
    python scripts/train_default.py --vit --warm-steps 0 --steps 2500 --lr 1e-3 --out vit.npz --log vit.csv

Two stages (progressive resizing): the network first learns at 96x96, where it
leaves chance level within ~100 steps, then its convs warm-start the 224x224
model (fc1 drawn fresh). Trained at 224 from scratch, the loss stayed at ln 4
for 250 steps (measured).

`--vit` trains the small ViT that docs/REPRODUCTION.md audits instead: 8-pixel patches on 64x64
images (an 8x8 grid), 4 blocks, 4 heads of 32, MLP 256, one stage (no batch norm to fold).
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import csv
import os
import sys
import time

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cam_jax import build_model
from cam_jax.convert import checkpoint
from cam_jax.data import images, shapes
from cam_jax.models import training as train
from cam_jax.models.vit import ViT

VIT_SIZE = 64  # --vit's input side in pixels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-size", type=int, default=96, help="input size of the first stage")
    parser.add_argument("--warm-steps", type=int, default=1100, help="steps of the first stage (0: none)")
    parser.add_argument("--steps", type=int, default=330, help="steps at 224x224")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=float, default=1 / 16, help="channel multiplier of VGG-16")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0, help="parameter initialisation seed")
    parser.add_argument("--test-images", type=int, default=600)
    parser.add_argument("--vit", action="store_true", help="the small ViT of the module docstring, at VIT_SIZE")
    parser.add_argument("--out", default="weights/default.npz")
    parser.add_argument("--log", default="weights/train_log.csv")
    args = parser.parse_args(argv)

    rows = []
    start = time.time()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn())
    # (input size, steps, learning rate, stream seed): each stage sees its own images
    stages = [(args.warm_size, args.warm_steps, args.lr, shapes.TRAIN_SEED + 1000),
              (224, args.steps, args.lr / 3, shapes.TRAIN_SEED)]
    if args.vit:
        stages = [(VIT_SIZE, args.steps, args.lr, shapes.TRAIN_SEED)]
    model = None
    with Progress(*columns) as progress:
        for size, steps, lr, stream in stages:
            if steps <= 0:
                continue
            task = progress.add_task(f"training at {size}x{size}", total=steps, status="")

            def on_step(k, loss, acc, size=size, steps=steps, task=task):
                rows.append((size, k, loss, acc, time.time() - start))
                recent = rows[-20:]
                status = (f"loss {sum(r[2] for r in recent) / len(recent):.3f} "
                          f"acc {sum(r[3] for r in recent) / len(recent):.2f}")
                progress.update(task, advance=1, status=status)
                if k % 50 == 0 or k == steps - 1:
                    progress.console.print(f"{size}px step {k:5d}  {status}  {time.time() - start:6.0f} s")

            module = (ViT(patch=8, layers=4, heads=4, hidden=128, mlp=256, num_classes=len(shapes.CLASSES),
                          input_size=size) if args.vit
                      else build_model("vgg16", num_classes=len(shapes.CLASSES), input_size=size, width=args.width))
            batches = shapes.training_batches(stream, args.batch_size, steps, size)
            model = train.fit(module, batches, steps, lr, args.seed, on_step, warm_start=model)
    train_seconds = time.time() - start

    test = shapes.batch(shapes.TEST_SEED, range(args.test_images), model.input_size)
    acc = train.accuracy(model, images.normalize(test.pixels), test.labels)
    print(f"test accuracy {acc:.4f} on {args.test_images} images; training {train_seconds:.0f} s")

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.log, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input_size", "step", "loss", "batch_accuracy", "seconds"])
        writer.writerows((z, k, f"{loss:.5f}", f"{a:.4f}", f"{s:.1f}") for z, k, loss, a, s in rows)
    checkpoint.save(
        args.out,
        model,
        arch=None if args.vit else "vgg16",
        preprocess="torchvision",
        class_names=list(shapes.CLASSES),
        width=None if args.vit else args.width,
        dataset=(f"cam_jax.shapes: {args.steps * args.batch_size} images at {VIT_SIZE}px (stream "
                 f"{shapes.TRAIN_SEED})" if args.vit else
                 f"cam_jax.shapes: {args.warm_steps * args.batch_size} images at {args.warm_size}px (stream "
                 f"{shapes.TRAIN_SEED + 1000}), then {args.steps * args.batch_size} at 224px "
                 f"(stream {shapes.TRAIN_SEED})"),
        command="python scripts/train_default.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        init_seed=args.seed,
        test_accuracy=acc,
        test_images=args.test_images,
        train_seconds=round(train_seconds),
    )
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
