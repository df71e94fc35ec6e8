"""Is this explanation true to the model? Explanation-quality metrics on images and maps from anywhere.

    python scripts/metrics.py --weights W --images X.npy --method gradcam --metric deletion insertion
    python scripts/metrics.py --weights W --images photos/ --maps M.npy --metric faithfulness --json out.json
    python scripts/metrics.py --weights W --images X.npy --method gradcam++ --metric all --masks S.npy

X.npy: (B, H, W, 3) uint8 pixels at the model's input size (preprocessed as the weights say), or a
folder of image files (sorted by name; resized and centre-cropped). M.npy: (B, H, W) maps at the
images' resolution, from any library; --method NAME computes them instead (and is what the robustness
and randomisation metrics re-explain with). S.npy: (B, H, W) bool object masks, for the localisation
metrics. --metric takes names, family names (faithfulness, robustness, randomisation, localisation,
complexity) or all; with all, a metric that cannot run on what was given is listed as skipped.
--option NAME=VALUE sets an option of every metric that takes it (e.g. steps=8, patch=16).

Prints a table; --json OUT writes, per metric, the per-image values (curves where the metric gives one),
one scalar per image and their mean over the images where it is defined (NaN and inf written as null),
with the settings used beside them. Bad input: a message, exit 2.
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import ast
import math
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cam_jax import load_weights
from cam_jax.atomic import write_json
from cam_jax.cams import METHODS, TARGETS
from cam_jax.cams.methods import explainer
from cam_jax.data import images as preprocessing
from cam_jax.metrics.quality import QUALITY, assess, higher, names_of
from cam_jax.model import Model, check_classes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="cam_jax .npz, torchvision .pth or Keras .h5")
    parser.add_argument("--images", required=True, help="X.npy, (B, H, W, 3) uint8 pixels, or a folder of images")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--maps", help="M.npy, (B, H, W) maps at the images' resolution")
    source.add_argument("--method", choices=tuple(METHODS), help="compute the maps with this method")
    parser.add_argument("--target", choices=tuple(t for t in TARGETS if t != "contrast"), default="logit",
                        help="what --method explains (default logit)")
    parser.add_argument("--metric", nargs="+", required=True, help="metric names, family names or all")
    parser.add_argument("--masks", help="S.npy, (B, H, W) bool object masks (localisation)")
    parser.add_argument("--classes", help="C.npy, (B,) the classes the maps explain (default: top-1)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="an option of every metric that takes it, repeatable")
    parser.add_argument("--seed", type=int, default=0, help="key of the metrics that draw (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (the memory bound)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def _npy(path: str, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)  # a pickle could run code
    except (OSError, ValueError) as err:
        raise ValueError(f"{what} {path}: not a readable .npy file ({err})") from err


def load_images(path: str, model: Model) -> np.ndarray:
    """(B, H, W, 3) float32 normalised images from X.npy (uint8 pixels) or a folder of image files."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise ValueError(f"--images {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return np.stack([preprocessing.load(os.path.join(path, f), model.input_size, model.preprocess) for f in files])
    pixels = _npy(path, "--images")
    size = model.input_size
    if pixels.ndim != 4 or pixels.shape[1:] != (size, size, 3) or pixels.shape[0] == 0:
        raise ValueError(f"--images must be (B, {size}, {size}, 3) pixels for this model, got {pixels.shape}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"--images must be uint8 pixels (0-255), got {pixels.dtype}")
    return preprocessing.normalize(pixels, model.preprocess)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--option takes NAME=VALUE, got {pair!r}")
        try:
            options[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[name] = text  # a name such as a baseline
    return options


def plan(names: tuple[str, ...], args: argparse.Namespace, options: dict[str, Any], asked_all: bool):
    """({metric: its options}, {metric: why it is skipped}); a ValueError for a named metric that cannot run."""
    runs, skipped = {}, {}
    for name in names:
        q = QUALITY[name]
        why = None
        if q.kind == "masks" and args.masks is None:
            why = "needs --masks"
        elif "explain" in q.options and args.method is None:
            why = "re-explains: needs --method, not --maps"
        if why:
            if not asked_all:
                raise ValueError(f"{name} {why}")
            skipped[name] = why
            continue
        mine = {k: v for k, v in options.items() if k in q.options}
        if "explain" in q.options:
            mine["explain"] = explainer(args.method, args.target)
        runs[name] = mine
    unused = set(options) - {o for n in runs for o in QUALITY[n].options}
    if unused:
        raise ValueError(f"--option {sorted(unused)[0]} is taken by none of the metrics asked for")
    return runs, skipped


def _clean(values: np.ndarray) -> Any:
    """JSON values: NaN and infinities as null (JSON has neither)."""
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values.tolist()] \
        if values.ndim == 1 else [_clean(row) for row in values]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        if args.batch_size <= 0:
            raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
        model, meta = load_weights(args.weights)
        x = load_images(args.images, model)
        b = x.shape[0]
        maps = None if args.maps is None else _npy(args.maps, "--maps")
        if maps is not None and maps.shape != x.shape[:3]:
            raise ValueError(f"--maps must be (B, H, W) = {x.shape[:3]}, one per image, got {maps.shape}")
        masks = None if args.masks is None else _npy(args.masks, "--masks")
        binary = masks is None or masks.dtype == bool or np.isin(masks, (0, 1)).all()
        if masks is not None and (masks.shape != x.shape[:3] or not binary):
            raise ValueError(f"--masks must be (B, H, W) = {x.shape[:3]} of 0/1, got {masks.shape} {masks.dtype}")
        classes = None if args.classes is None else _npy(args.classes, "--classes")
        if classes is not None:
            classes = np.asarray(check_classes(classes, b, model.num_classes, "--classes"))
        asked_all = "all" in args.metric or any(m in ("faithfulness", "robustness", "randomisation", "localisation",
                                                        "complexity") for m in args.metric)
        runs, skipped = plan(names_of(args.metric), args, parse_options(args.option), asked_all)
        results: dict[str, list[np.ndarray]] = {name: [] for name in runs}
        explain = None if args.method is None else jax.jit(explainer(args.method, args.target))
        key = jax.random.key(args.seed)
        with Progress(disable=args.no_progress, transient=True) as progress:
            task = progress.add_task("metrics", total=len(runs) * -(-b // args.batch_size))
            for first in range(0, b, args.batch_size):
                part = slice(first, first + args.batch_size)
                xs = jnp.asarray(x[part])
                cs = None if classes is None else classes[part]
                ms = maps[part] if maps is not None else explain(model, xs, None if cs is None else jnp.asarray(cs))
                for name, options in runs.items():
                    progress.update(task, description=name)
                    # A randomised model is one model for every image; other draws differ batch to batch.
                    same = QUALITY[name].family == "randomisation"
                    values = assess(name, model, xs, ms, cs, key if same else jax.random.fold_in(key, first),
                                    masks=None if masks is None or QUALITY[name].kind != "masks" else masks[part],
                                    **options)
                    results[name].append(np.asarray(values))
                    progress.advance(task)
    except (OSError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"metrics": {}, "skipped": skipped}
    table = Table("metric", "family", "mean", "better", "per image")
    for name in runs:
        values = np.concatenate(results[name])
        per_image = np.asarray(QUALITY[name].scalar(jnp.asarray(values)), np.float64)
        finite = per_image[np.isfinite(per_image)]
        mean = float(finite.mean()) if finite.size else None
        entry = {"family": QUALITY[name].family, "higher_is_better": higher(name, runs[name]),
                 "images_defined": int(finite.size),
                 "per_image": _clean(per_image), "mean": mean}
        if values.ndim > 1:
            entry["curves"] = _clean(values.astype(np.float64))
            entry["mean_curve"] = _clean(np.nanmean(values, 0).astype(np.float64))
        report["metrics"][name] = entry
        table.add_row(name, entry["family"], "-" if mean is None else f"{mean:.4g}",
                      "higher" if entry["higher_is_better"] else "lower",
                      " ".join("-" if v is None else f"{v:.3g}" for v in entry["per_image"][:6])
                      + (" ..." if b > 6 else ""))
    report["settings"] = {
        "weights": os.path.basename(args.weights), "arch": meta.get("arch"), "preprocess": model.preprocess,
        "images": os.path.basename(os.path.normpath(args.images)), "n_images": b,
        "maps": None if args.maps is None else os.path.basename(args.maps), "method": args.method,
        "target": args.target if args.method else None, "classes": "given" if classes is not None else "top-1",
        "seed": args.seed, "batch_size": args.batch_size,
        "options": {name: {k: (v if k != "explain" else f"{args.method} ({args.target})") for k, v in o.items()}
                    for name, o in runs.items()},
    }
    Console().print(table)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
