"""Explain images with GradCAM: logits and 14x14 raw maps as .npy, overlays as .png.

    python scripts/explain.py cat.jpg dog.png --weights weights/vgg16.npz --out explained/
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import os
import sys

import jax.numpy as jnp
import numpy as np

from cam_jax import gradcam, load_weights, normalize
from cam_jax.data import images, labels
from cam_jax.evaluation import figures
from cam_jax.models.registry import ARCHS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (any format pillow reads)")
    parser.add_argument("--weights", required=True, help="cam_jax .npz, torchvision .pth or Keras .h5")
    parser.add_argument("--arch", default=None, metavar="|".join(sorted(ARCHS)),
                        help="expected architecture (checked against the file; inferred if omitted)")
    parser.add_argument("--class", dest="cls", type=int, default=None, help="class to explain (default: top-1)")
    parser.add_argument("--labels", default=None, help="text file with one readable class name per line")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    try:
        model, meta = load_weights(args.weights, args.arch)
        preprocess = meta.get("preprocess", "torchvision")
        batch = np.stack([images.load(p, model.input_size, preprocess) for p in args.images])
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    num_classes = model.num_classes
    if args.cls is not None and not 0 <= args.cls < num_classes:
        print(f"error: --class must be in [0, {num_classes}), got {args.cls}", file=sys.stderr)
        return 1
    classes = None if args.cls is None else jnp.full((len(batch),), args.cls, jnp.int32)
    expl = gradcam(model, jnp.asarray(batch), classes)
    if args.labels:
        with open(args.labels) as f:
            meta = {**meta, "class_names": [line.strip() for line in f if line.strip()]}
    names = labels.class_names(meta, num_classes)
    heat = np.asarray(normalize(expl.cam))
    os.makedirs(args.out, exist_ok=True)
    for i, path in enumerate(args.images):
        stem = os.path.join(args.out, os.path.splitext(os.path.basename(path))[0])
        np.save(stem + "_logits.npy", np.asarray(expl.logits[i]))
        np.save(stem + "_gradcam.npy", np.asarray(expl.cam[i]))
        c = int(expl.classes[i])
        title = f"{os.path.basename(path)}: {c} {names[c]} (y={float(expl.logits[i, c]):.2f})"
        figures.grid(stem + "_gradcam.png", [[(images.denormalize(batch[i], preprocess), heat[i], title)]])
        print(f"{path}: class {c} ({names[c]}), score {float(expl.logits[i, c]):.3f} -> {stem}_gradcam.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
