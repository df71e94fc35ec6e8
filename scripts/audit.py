"""Audit a model's weights: is it manipulated to make its explanations lie?

    python scripts/audit.py --weights downloaded.npz --data shapes          # generated test images
    python scripts/audit.py --weights vgg16.pth --images photos/ --out audit/
    python scripts/audit.py --weights finetuned.npz --reference released.npz --data shapes   # reference mode

Runs every check of `cam_jax.audit` on unlabelled images and prints each score against the range it
took on honest models, where it points (a channel of A, a layer) and the verdict. With --reference (a
trusted checkpoint of the same architecture, such as the released weights the model claims to be a
version of), also whether the model's own GradCAM explains it as well as the reference's does, which is
what a fine-tuned attack gives away (cam_jax/audit/checks/reference_*.py). With --out: the
report as report.json and report.png, and the recommendation (the explanation without the flagged
channels) as recommended.png and recommended.npy. Exit code 0: clean; 1: flagged; 2: usage error
(bad arguments, an unreadable weight file or image).
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import os
import sys
import textwrap

import jax.numpy as jnp
import numpy as np

from cam_jax import explain, load_weights, normalize
from cam_jax.atomic import atomic_path, write_json
from cam_jax.audit import audit_model, figures, recommend
from cam_jax.audit.probing import MIN_IMAGES
from cam_jax.cams import WEIGHTINGS
from cam_jax.data import images, shapes
from cam_jax.evaluation import figures as overlays

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
SHOWN = 4  # images in the recommendation figure
MAX_COUNT = 1024  # images an audit reads (in passes of 32)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="cam_jax .npz, torchvision .pth or Keras .h5")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="a folder of unlabelled images (any format pillow reads)")
    source.add_argument("--data", choices=("shapes",), help="generated images instead of a folder")
    parser.add_argument("--reference", default=None,
                        help="a trusted checkpoint of the same architecture (any format --weights takes)")
    parser.add_argument("--seed", type=int, default=None,
                        help="with --data shapes: the generated images' stream (default: the test images')")
    parser.add_argument("--count", type=int, default=16, help=f"images to use (at least {MIN_IMAGES})")
    parser.add_argument("--method", choices=tuple(WEIGHTINGS), default="gradcam",
                        help="the CAM the recommendation computes")
    parser.add_argument("--out", default=None, help="folder for report.json, report.png and the recommendation")
    return parser.parse_args(argv)


def image_files(folder: str, count: int) -> list[str]:
    """The first `count` image files of `folder` by name; a ValueError if fewer than 2."""
    if not os.path.isdir(folder):
        raise ValueError(f"--images {folder} is not a folder")
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(EXTENSIONS))[:count]
    if len(files) < MIN_IMAGES:
        raise ValueError(f"{folder} holds {len(files)} image file(s); an audit needs at least {MIN_IMAGES}")
    return [os.path.join(folder, f) for f in files]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        if not MIN_IMAGES <= args.count <= MAX_COUNT:
            raise ValueError(f"--count must be in [{MIN_IMAGES}, {MAX_COUNT}], got {args.count}")
        if args.seed is not None and (args.images or not 0 <= args.seed < 2**31):
            raise ValueError(f"--seed takes a stream in [0, 2**31) of --data shapes, got {args.seed}"
                             + (" with --images" if args.images else ""))
        if args.out is not None:
            os.makedirs(args.out, exist_ok=True)
        model, _ = load_weights(args.weights)
        reference = None if args.reference is None else load_weights(args.reference)[0]
        if args.images:
            x = np.stack([images.load(p, model.input_size, model.preprocess) for p in image_files(args.images,
                                                                                                  args.count)])
        else:
            seed = shapes.TEST_SEED if args.seed is None else args.seed
            x = images.normalize(shapes.batch(seed, range(args.count), model.input_size).pixels, model.preprocess)
        x = jnp.asarray(x)
        report = audit_model(model, x, reference=reference)
    except (OSError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.weights}: {x.shape[0]} images, {report.seconds:.1f} s")
    print(report.text())
    advice = recommend(model, x, report, args.method)
    print(f"recommendation: {advice.advice}")
    if args.out is not None:
        summary = {"weights": os.path.abspath(args.weights),
                   "reference": None if args.reference is None else os.path.abspath(args.reference),
                   "images": int(x.shape[0]), **report.to_dict(),
                   "recommendation": {"method": advice.method, "excluded": list(advice.excluded),
                                      "advice": advice.advice}}
        write_json(os.path.join(args.out, "report.json"), summary)
        figures.report_page(report, os.path.join(args.out, "report.png"), os.path.basename(args.weights))
        with atomic_path(os.path.join(args.out, "recommended.npy")) as staging:
            np.save(staging, np.asarray(advice.explanation.cam))
        as_is = normalize(explain(model, x[:SHOWN], args.method).cam)
        recommended = normalize(advice.explanation.cam)
        pixels = [images.denormalize(np.asarray(x[i]), model.preprocess) for i in range(min(SHOWN, x.shape[0]))]
        rows = [[(p, None, f"image {i}"), (p, np.asarray(as_is[i]), f"{args.method}, as is"),
                 (p, np.asarray(recommended[i]), "recommended")] for i, p in enumerate(pixels)]
        overlays.grid(os.path.join(args.out, "recommended.png"), rows, "\n".join(textwrap.wrap(advice.advice, 60)))
        print(f"wrote {args.out}/report.json, report.png, recommended.png, recommended.npy")
    return 1 if report.manipulated else 0


if __name__ == "__main__":
    sys.exit(main())
