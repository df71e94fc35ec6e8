"""What `scripts/eval.py` does: check the arguments, run the evaluation, write the outputs.

Outputs are written to a temporary folder beside `--out` and moved into place
only once everything succeeded, so a failed run leaves no half-written results.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams.engine import gradcam
from cam_jax.cams.maps import NORMALIZATIONS, normalize
from cam_jax.cams.methods import METHODS, explain_many
from cam_jax.cams.targets import TARGETS
from cam_jax.convert.load import default_weights, load_weights
from cam_jax.data import imagenet, images, shapes
from cam_jax.data.batch import Loader
from cam_jax.evaluation import figures, matrix, runner, tables
from cam_jax.evaluation import step as evaluate
from cam_jax.evaluation.suite import (
    EXACT_ENTRIES,
    GRADCAM_BY_CONVENTION,
    SUITES,
    Settings,
    attacked_entries,
    build,
    model_names,
    rows,
    sticker,
)
from cam_jax.manipulations import DETECTOR_TOLERANCE, stickers
from cam_jax.models.registry import ARCHS, arch_name, title
from cam_jax.models.vgg import VGG

DEFAULT_SHAPES_LIMIT = 512


class UsageError(Exception):
    """Arguments that do not fit together."""


def _arch(args) -> str | None:
    """The architecture the weights must hold: --arch, or vgg16 for the legacy --model vgg16."""
    if args.arch is not None and args.arch not in ARCHS:
        raise UsageError(f"unknown --arch {args.arch!r}; choose one of {sorted(ARCHS)}")
    if args.model == "vgg16" and args.arch not in (None, "vgg16"):
        raise UsageError(f"--model vgg16 contradicts --arch {args.arch}")
    return args.arch or ("vgg16" if args.model == "vgg16" else None)


def _load(args) -> tuple[Any, dict, str]:
    arch = _arch(args)
    pretrained = arch is not None  # an ImageNet network, not the bundled default
    weights = args.weights or (None if pretrained else default_weights())
    if weights is None:
        raise UsageError(f"--arch {arch} needs --weights PATH (see weights/README.md to get and convert them)")
    model, meta = load_weights(weights)
    if pretrained and (meta.get("arch") != arch or model.num_classes != 1000):
        raise UsageError(f"{weights} holds {meta.get('arch')} with {model.num_classes} classes, "
                         f"not ImageNet {title(arch)} (leave out --arch for the bundled model)")
    return model, meta, weights


def _attacked(paths, model) -> dict[str, Any]:
    """{file stem: model} of `--attacked` files, each checked to have `model`'s architecture and shapes."""
    out = {}
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        if name in out:
            raise UsageError(f"two --attacked files are named {name!r}; their rows would share a name")
        attacked, _ = load_weights(path)
        if attacked.module != model.module or jax.tree.map(np.shape, attacked.params) != jax.tree.map(
                np.shape, model.params):
            raise UsageError(f"--attacked {path} does not have the evaluated model's architecture "
                             f"({arch_name(model.module)}; an attack by fine-tuning keeps it)")
        out[name] = attacked
    return out


def _data(args, model, pretrained: bool) -> tuple[Loader, int, str]:
    data = args.data or ("imagenet2012" if pretrained else "shapes")
    if args.limit is not None and args.limit <= 0:
        raise UsageError(f"--limit must be positive, got {args.limit}")
    if data == "shapes":
        if model.num_classes != len(shapes.CLASSES):
            raise UsageError(f"the shapes data has {len(shapes.CLASSES)} classes, the model {model.num_classes}")
        return shapes.loader(model.input_size), args.limit or DEFAULT_SHAPES_LIMIT, data
    if args.data_dir is None:
        raise UsageError("--data imagenet2012 needs --data-dir DIR holding ILSVRC2012_img_val.tar")
    if model.num_classes != 1000:
        raise UsageError(f"ImageNet has 1000 classes, the model {model.num_classes}")
    loader, available = imagenet.loader(args.data_dir, model.input_size)
    return loader, min(args.limit or available, available), data


def grid(methods: list[str] | None) -> evaluate.Grid:
    """The cells `--methods` asks for: None, the paper's (gradcam, logit, max); otherwise those
    methods ("all": `step.MATRIX_METHODS`) x every target x both normalisations, the paper's first."""
    if methods is None:
        return evaluate.PAPER_GRID
    names = [m for name in methods for m in (evaluate.MATRIX_METHODS if name == "all" else [name])]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} or 'all'")
    ordered = tuple(dict.fromkeys(["gradcam", *names]))
    return evaluate.Grid(ordered, tuple(TARGETS), NORMALIZATIONS)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(args) -> dict[str, Any]:
    """Run the evaluation `args` describe (see scripts/eval.py) and write its outputs."""
    if args.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    check_out(args.out)
    if args.distributed:
        jax.distributed.initialize()
    model, meta, weights = _load(args)
    loader, n_images, data = _data(args, model, pretrained=_arch(args) is not None)
    settings = Settings(exact=args.exact, t3_seed=args.seed,
                        sticker_size=14 if model.input_size >= 224 else 7, convention=args.convention)
    cells = grid(args.methods)
    suite = SUITES[args.convention] + (EXACT_ENTRIES if args.methods else ()) + attacked_entries(
        _attacked(args.attacked or (), model))
    if args.convention == "authors" and not isinstance(model.module, VGG):
        raise UsageError(f"--convention authors is defined for VGG (their hook on conv5_3), not {meta.get('arch')}")
    if args.convention == "authors" and args.methods:
        raise UsageError("--convention authors describes the authors' GradCAM only; leave out --methods")
    start = time.time()
    per_image = runner.run(model, loader, n_images, batch_size=args.batch_size, seed=args.seed,
                           settings=settings, suite=suite, grid=cells, fused=not args.unfused,
                           show_progress=not args.no_progress)
    seconds = time.time() - start
    summary = tables.summarize(per_image, suite, cells)
    results = {
        "model": _arch(args) or args.model,
        "arch": meta.get("arch"),
        "weights": os.path.basename(weights),
        "preprocess": model.preprocess,
        "dataset": data,
        "n_images": n_images,
        "device": runner.device_description(),
        "rows": summary,
        "chance": tables.chance(per_image),
        "settings": {"convention": args.convention, "seed": args.seed, "batch_size": args.batch_size,
                     "exact_t1_t2": args.exact,
                     "fused": not args.unfused, "t4_detector_tolerance": DETECTOR_TOLERANCE},
        "seconds": round(seconds, 1),
    }
    cells_out = matrix.cells(per_image, cells, rows(suite)) if args.methods else None
    if jax.process_index() == 0:
        _write(args, results, model, loader, settings, meta, cells_out, cells, suite)
    return results


def check_out(out: str) -> None:
    """Refuse, before any work, an --out that could not take the results or holds something else."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise UsageError(f"--out {out} exists and is not a folder")
        if os.listdir(out) and not os.path.exists(os.path.join(out, "results.json")):
            raise UsageError(f"--out {out} holds files that are not results of scripts/eval.py; choose another folder")
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write --out {out}: {parent} is not writable")


def _replace_folder(staging: str, out: str) -> bool:
    """Put the complete folder `staging` at `out`, moving a previous results folder there away first:
    `out` holds the old results or the new ones, never a mix. True when old results were replaced."""
    if not os.path.exists(out):
        os.rename(staging, out)
        return False
    old = tempfile.mkdtemp(prefix=".eval-old-", dir=os.path.dirname(os.path.abspath(out)))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return True


def _write(args, results, model, loader, settings, meta, cells=None, grid=None, suite=None) -> None:
    parent = os.path.dirname(os.path.abspath(args.out)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".eval-", dir=parent)
    try:
        with open(os.path.join(staging, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        with open(os.path.join(staging, "report.md"), "w") as f:
            f.write(_report(results, meta))
        _figures(staging, model, loader, settings, args.seed, meta)
        if cells is not None:
            _matrix(staging, cells, grid, model, loader, settings, args.seed, meta, suite, results)
        check_out(args.out)  # again: the folder may have changed during a long run
        replaced = _replace_folder(staging, args.out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(tables.markdown_tables(results["rows"], with_paper=True, chance_levels=results["chance"]))
    print(f"{results['n_images']} images in {results['seconds']} s on {results['device']}; wrote {args.out}/"
          + (" (replacing the previous results there)" if replaced else ""))


def _report(results, meta) -> str:
    settings = "\n".join(f"- {k}: {v}" for k, v in results["settings"].items())
    software = ", ".join(f"{k} {v}" for k, v in versions().items())
    note = ("The paper's figures are for ImageNet-pretrained VGG-16 on ILSVRC2012 validation; beside a "
            "different model or data set they are a reference for scale, not a target.")
    return (
        f"# GradCAM manipulations: evaluation\n\n"
        f"- model: {results['model']} ({results['weights']}; {meta.get('arch', '?')}, "
        f"{results['preprocess']} preprocessing)\n"
        f"- data: {results['dataset']}, {results['n_images']} images\n"
        f"- device: {results['device']}\n- time: {results['seconds']} s\n- software: {software}\n\n"
        f"## Settings\n\n{settings}\n\n"
        f"## Tables (ours, with the paper's figures on the right)\n\n{note}\n\n"
        f"{tables.markdown_tables(results['rows'], with_paper=True, chance_levels=results['chance'])}\n"
        "Metrics (SPEC.md): accuracy is top-1; ‖dy‖∞ is max over classes of |y_o - y_n|, mean and max "
        "over images; L1 is the sum over the 14x14 pixels of |normalised target - normalised map|, "
        "mean over images; targets are the map written into A^{K+1} (T1 ones, T2 the smiley, T3 F(x), "
        "T4 on stickers the detector map) and, for T4 on clean images, the original's GradCAM. "
        "Pointing game: the upsampled map's peak lies within 15 px of the object; mass in mask: share "
        "of the upsampled map inside the object; all-zero maps: share of images whose explanation "
        "collapsed to 0 (alpha_{K+1} < 0 in the paper's T1/T2).\n"
    )


def _figures(folder, model, loader, settings, seed, meta) -> None:
    """figure1.png (one image, original and T1-T4) and figure3.png (T4 clean vs stickered)."""
    data = loader([0])
    preprocess = model.preprocess
    stickered = stickers.paste_by_index(data.pixels, np.array([0]), seed, sticker(settings))[0]
    suite = SUITES[settings.convention]
    models = build(model, settings, suite)
    clean_x = jnp.asarray(images.normalize(data.pixels, preprocess))
    sticker_x = jnp.asarray(images.normalize(stickered, preprocess))
    names = meta.get("class_names") or [str(k) for k in range(model.num_classes)]

    def cell(name, x, pixels):
        e = gradcam(models[name], x, weighting=GRADCAM_BY_CONVENTION[settings.convention])
        c = int(e.classes[0])
        label = names[c] if c < len(names) else str(c)
        return pixels[0], np.asarray(normalize(e.cam)[0]), f"{name}: {label}"

    truth = names[int(data.labels[0])] if data.labels is not None else "?"
    row1 = [(data.pixels[0], None, f"input ({truth})")]
    row1 += [cell(n, clean_x, data.pixels) for n in model_names(suite)]
    figures.grid(os.path.join(folder, "figure1.png"), [row1], "GradCAM of the original model and T1-T4 (Figure 1)")
    rows3 = [
        [(pixels[0], None, title)] + [cell(name, x, pixels) for name in ("original", "T4")]
        for pixels, x, title in ((data.pixels, clean_x, "clean input"), (stickered, sticker_x, "with stickers"))
    ]
    figures.grid(os.path.join(folder, "figure3.png"), rows3, "T4: the sticker backdoor (Figure 3)")


def _matrix(folder, cells, grid, model, loader, settings, seed, meta, suite, results) -> None:
    """matrix.json, matrix.md, matrix.png and figure_methods.png."""
    pixels = model.cam_size**2
    with open(os.path.join(folder, "matrix.json"), "w") as f:
        json.dump({"n_images": results["n_images"], "dataset": results["dataset"], "fooled_threshold": matrix.FOOLED,
                   "cells": cells}, f, indent=1)
    with open(os.path.join(folder, "matrix.md"), "w") as f:
        f.write(f"# The vulnerability matrix\n\n{results['model']} on {results['n_images']} {results['dataset']} "
                f"images, {results['seconds']} s.\n\n{matrix.markdown(cells, grid, pixels)}")
    matrix.heatmap(os.path.join(folder, "matrix.png"), cells, grid, pixels)
    data = loader([0])
    stickered = stickers.paste_by_index(data.pixels, np.array([0]), seed, sticker(settings))[0]
    models = build(model, settings, suite)
    columns = [(n, data.pixels) for n in model_names(suite) if n != "T4"] + [("T4", stickered)]
    explained = {n: explain_many(models[n], jnp.asarray(images.normalize(p, model.preprocess)), grid.methods)
                 for n, p in columns}
    rows_ = [[(p[0], np.asarray(normalize(explained[n][m].cam)[0]), f"{n}: {m}" + (" (sticker)" if n == "T4" else ""))
              for n, p in columns] for m in grid.methods]
    figures.grid(os.path.join(folder, "figure_methods.png"), rows_,
                 "Each method (rows) on the original and each manipulation (columns); logit target")
