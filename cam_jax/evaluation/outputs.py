"""`write(results, folder)`: every output of an evaluation, made from its `Results` alone.

results.json, report.md, figure1.png and figure3.png; with the matrix, matrix.json, matrix.md,
matrix.png and figure_methods.png. They are written to a staging folder beside `folder` and moved
into place only once all succeeded: `folder` holds the old results or the new ones, never a mix.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from importlib import metadata

import numpy as np

from cam_jax.cams.maps import normalize
from cam_jax.evaluation import figures, matrix, tables
from cam_jax.evaluation.experiment import Results
from cam_jax.metrics.change import FOOLED


def check_out(folder: str) -> None:
    """Refuse, before any work, a folder that could not take the results or holds something else."""
    if os.path.exists(folder):
        if not os.path.isdir(folder):
            raise ValueError(f"out {folder} exists and is not a folder")
        if os.listdir(folder) and not os.path.exists(os.path.join(folder, "results.json")):
            raise ValueError(f"out {folder} holds files that are not results of an evaluation; choose another folder")
    parent = os.path.dirname(os.path.abspath(folder))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write out {folder}: {parent} is not writable")


def _replace_folder(staging: str, out: str) -> bool:
    """Put the complete folder `staging` at `out`, moving a previous results folder there away first.
    True when old results were replaced."""
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


def write(results: Results, folder: str) -> bool:
    """Write every output of `results` to `folder` (module docstring). True when it replaced old results."""
    check_out(folder)
    parent = os.path.dirname(os.path.abspath(folder)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".eval-", dir=parent)
    try:
        with open(os.path.join(staging, "results.json"), "w") as f:
            json.dump(results.summary, f, indent=2)
        with open(os.path.join(staging, "report.md"), "w") as f:
            f.write(report(results))
        paper_figures(staging, results)
        if results.matrix is not None:
            matrix_outputs(staging, results)
        check_out(folder)  # again: the folder may have changed during a long run
        return _replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def report(results: Results) -> str:
    """report.md: what was run, the tables beside the paper's figures, how each figure is defined."""
    s = results.summary
    settings = "\n".join(f"- {k}: {v}" for k, v in s["settings"].items())
    software = ", ".join(f"{k} {v}" for k, v in versions().items())
    note = ("The paper's figures are for ImageNet-pretrained VGG-16 on ILSVRC2012 validation; beside a "
            "different model or data set they are a reference for scale, not a target.")
    return (
        f"# GradCAM manipulations: evaluation\n\n"
        f"- model: {s['model']} ({s['weights']}; {s['arch'] or '?'}, {s['preprocess']} preprocessing)\n"
        f"- data: {s['dataset']}, {s['n_images']} images\n"
        f"- device: {s['device']}\n- time: {s['seconds']} s\n- software: {software}\n\n"
        f"## Settings\n\n{settings}\n\n"
        f"## Tables (ours, with the paper's figures on the right)\n\n{note}\n\n"
        f"{tables.markdown_tables(s['rows'], with_paper=True, chance_levels=s['chance'])}\n"
        "Metrics (SPEC.md): accuracy is top-1; ‖dy‖∞ is max over classes of |y_o - y_n|, mean and max "
        "over images; L1 is the sum over the 14x14 pixels of |normalised reference - normalised map|, "
        "mean over images; references are the map written into A^{K+1} (T1 ones, T2 the smiley, T3 F(x), "
        "T4 on stickers the detector map) and, for T4 on clean images, the original's GradCAM. "
        "Pointing game: the upsampled map's peak lies within 15 px of the object; mass in mask: share "
        "of the upsampled map inside the object; all-zero maps: share of images whose explanation "
        "collapsed to 0 (alpha_{K+1} < 0 in the paper's T1/T2).\n"
    )


def _cell(results: Results, model: str, data: str, method: str = "gradcam") -> tuple:
    """(pixels, normalised map, title) of image 0 as `model` explains it on `data` by `method`, logit target."""
    sample = results.run.samples[(model, data)]
    config = results.config
    cam = sample.cams[config.methods.index(method), config.targets.index("logit")]
    top = int(sample.top)
    label = results.class_names[top] if top < len(results.class_names) else str(top)
    return results.run.pixels[data], np.asarray(normalize(cam)), label


def paper_figures(folder: str, results: Results) -> None:
    """figure1.png (image 0 explained by the original and T1-T4) and figure3.png (T4, clean vs stickered)."""
    run, names = results.run, results.class_names
    truth = "?" if run.label is None else names[run.label]
    models = ("original", *(e.name for e in results.entries if e.table in (1, 2)))

    def cell(name, data):
        pixels, cam, label = _cell(results, name, data)
        return pixels, cam, f"{name}: {label}"

    figures.grid(os.path.join(folder, "figure1.png"), [[(run.pixels["clean"], None, f"input ({truth})")]
                                                        + [cell(n, "clean") for n in models]],
                 "GradCAM of the original model and T1-T4 (Figure 1)")
    rows = [[(run.pixels[data], None, title)] + [cell(name, data) for name in ("original", "T4")]
            for data, title in (("clean", "clean input"), ("sticker", "with stickers"))]
    figures.grid(os.path.join(folder, "figure3.png"), rows, "T4: the sticker backdoor (Figure 3)")


def matrix_outputs(folder: str, results: Results) -> None:
    """matrix.json, matrix.md, matrix.png and figure_methods.png."""
    s, config, pixels = results.summary, results.config, results.cam_size**2
    with open(os.path.join(folder, "matrix.json"), "w") as f:
        json.dump({"n_images": s["n_images"], "dataset": s["dataset"], "fooled_threshold": FOOLED,
                   "cells": results.matrix}, f, indent=1)
    with open(os.path.join(folder, "matrix.md"), "w") as f:
        f.write(f"# The vulnerability matrix\n\n{s['model']} on {s['n_images']} {s['dataset']} images, "
                f"{s['seconds']} s.\n\n{matrix.markdown(results.matrix, config, pixels)}")
    matrix.heatmap(os.path.join(folder, "matrix.png"), results.matrix, config, pixels)
    columns = [(e.name, "clean") for e in results.entries if "clean" in e.references and e.name != "T4"]
    columns = [("original", "clean"), *columns, *[(e.name, "sticker") for e in results.entries
                                                 if e.name == "T4"]]
    rows = [[(*_cell(results, n, d, m)[:2], f"{n}: {m}" + (" (sticker)" if d == "sticker" else ""))
             for n, d in columns] for m in config.methods]
    figures.grid(os.path.join(folder, "figure_methods.png"), rows,
                 "Each method (rows) on the original and each manipulation (columns); logit target, at A's "
                 "resolution")
