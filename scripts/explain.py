"""Explain images with any of cam_jax's methods: logits and raw maps as .npy, one overlay figure per image.

    python scripts/explain.py cat.jpg dog.png --weights weights/vgg16.npz --out explained/
    python scripts/explain.py cat.jpg --weights resnet50-0676ba61.pth --method gradcam++ --method scorecam
    python scripts/explain.py cat.jpg --weights W --method all --target softmax --normalization minmax

Per image: <stem>_logits.npy, <stem>_<method>.npy (the raw map: A's resolution for the CAMs, the
image's for input-space methods) and <stem>_<method>.png for one method, <stem>_methods.png (a
panel per method) for several.
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import os
import sys

import jax.numpy as jnp
import numpy as np

from cam_jax import explain_many, load_weights, normalize
from cam_jax.atomic import atomic_path
from cam_jax.cams import METHODS, TARGETS
from cam_jax.cams.maps import NORMALIZATIONS
from cam_jax.data import images, labels
from cam_jax.evaluation import figures
from cam_jax.models.registry import ARCHS

PANELS_PER_ROW = 5


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (any format pillow reads)")
    parser.add_argument("--weights", required=True, help="cam_jax .npz, torchvision .pth or Keras .h5")
    parser.add_argument("--arch", default=None, metavar="|".join(sorted(ARCHS)),
                        help="expected architecture (checked against the file; inferred if omitted)")
    parser.add_argument("--method", action="append", choices=(*METHODS, "all"), default=None,
                        help="explanation method, repeatable, or 'all' (default: gradcam)")
    parser.add_argument("--target", choices=tuple(TARGETS), default="logit", help="what is differentiated")
    parser.add_argument("--contrast", type=int, default=None, help="the second class, for --target contrast")
    parser.add_argument("--normalization", choices=NORMALIZATIONS, default="max", help="for the figures")
    parser.add_argument("--class", dest="cls", type=int, default=None, help="class to explain (default: top-1)")
    parser.add_argument("--labels", default=None, help="text file with one readable class name per line")
    parser.add_argument("--out", required=True, help="output directory")
    return parser.parse_args(argv)


def _save(path: str, array) -> None:
    with atomic_path(path) as staging:
        np.save(staging, np.asarray(array))


def check_out(args: argparse.Namespace, stems: list[str], methods: list[str]) -> None:
    """Make --out, check it is writable and that no output would be written over an input."""
    os.makedirs(args.out, exist_ok=True)
    if not os.access(args.out, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to --out {args.out}")
    ends = ["_logits.npy", "_methods.png", *(f"_{m}.npy" for m in methods), *(f"_{m}.png" for m in methods)]
    outputs = {os.path.realpath(os.path.join(args.out, stem + end)) for stem in stems for end in ends}
    inputs = [p for p in (*args.images, args.weights, args.labels or "") if p and os.path.realpath(p) in outputs]
    if inputs:
        raise ValueError(f"{inputs[0]} would be written over by an output in --out {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    methods = list(METHODS) if args.method is None or "all" in args.method else list(dict.fromkeys(args.method))
    if args.method is None:
        methods = ["gradcam"]
    stems = [os.path.splitext(os.path.basename(p))[0] for p in args.images]
    try:
        if len(set(stems)) != len(stems):
            twice = sorted({s for s in stems if stems.count(s) > 1})
            raise ValueError(f"inputs share the file stem {twice[0]!r}: their outputs would overwrite each other")
        check_out(args, stems, methods)
        model, meta = load_weights(args.weights, args.arch)
        preprocess = model.preprocess
        batch = np.stack([images.load(p, model.input_size, preprocess) for p in args.images])
        n = len(batch)
        classes = None if args.cls is None else np.full((n,), args.cls)
        contrast = None if args.contrast is None else np.full((n,), args.contrast)
        if args.labels:
            with open(args.labels) as f:
                meta = {**meta, "class_names": [line.strip() for line in f if line.strip()]}
        out = explain_many(model, jnp.asarray(batch), methods, args.target, classes, contrast)
    except (OSError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    names = labels.class_names(meta, model.num_classes)
    first = out[methods[0]]
    for i, (path, stem) in enumerate(zip(args.images, stems, strict=True)):
        stem = os.path.join(args.out, stem)
        _save(stem + "_logits.npy", first.logits[i])
        c = int(first.classes[i])
        pixels = images.denormalize(batch[i], preprocess)
        panels = []
        for method in methods:
            cam = out[method].cam
            _save(f"{stem}_{method}.npy", cam[i])
            panels.append((pixels, np.asarray(normalize(cam, args.normalization)[i]), method))
        title = f"{os.path.basename(path)}: {c} {names[c]} (y={float(first.logits[i, c]):.2f}, target {args.target})"
        figure = f"{stem}_{methods[0]}.png" if len(methods) == 1 else f"{stem}_methods.png"
        if len(methods) == 1:
            panels = [(pixels, panels[0][1], title)]
        rows = [panels[k:k + PANELS_PER_ROW] for k in range(0, len(panels), PANELS_PER_ROW)]
        figures.grid(figure, rows, title if len(methods) > 1 else "")
        print(f"{path}: class {c} ({names[c]}), score {float(first.logits[i, c]):.3f} -> {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
