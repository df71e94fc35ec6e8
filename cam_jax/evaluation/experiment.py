"""`evaluate(config) -> Results`: load what a `Config` names, run the suite over its images, summarise.

Nothing here writes a file or reads a command line: `outputs.write(results, folder)` makes every
output from the `Results`, figures included.
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import jax
import numpy as np

from cam_jax.convert.load import default_weights, load_weights
from cam_jax.data import imagenet, shapes
from cam_jax.data.batch import Loader
from cam_jax.evaluation import matrix, runner, suite, tables
from cam_jax.evaluation.config import Config
from cam_jax.manipulations import DETECTOR_TOLERANCE
from cam_jax.model import Model
from cam_jax.models.registry import arch_name, title
from cam_jax.models.vgg import VGG

DEFAULT_SHAPES_LIMIT = 512


class Results(NamedTuple):
    """Everything an evaluation measured.

    Attributes:
      config: what was run.
      summary: results.json: the rows of the paper's tables and how they were made.
      matrix: matrix.json's cells, or None when only the paper's cell was asked for.
      run: the per-image values and image 0's explanations (`runner.Run`).
      entries: the suite evaluated.
      class_names: one name per class.
      cam_size: A's side (the maps are cam_size x cam_size).
    """

    config: Config
    summary: dict[str, Any]
    matrix: list[dict[str, Any]] | None
    run: runner.Run
    entries: tuple[suite.Entry, ...]
    class_names: list[str]
    cam_size: int


def load(config: Config) -> tuple[Model, dict[str, Any], str]:
    """(model, weight file header, file) of the config: its weights, or the bundled default; a
    `ValueError` when the file does not hold the ImageNet `arch` asked for."""
    weights = config.weights or default_weights()
    model, meta = load_weights(weights)
    if config.arch is not None and (meta.get("arch") != config.arch or model.num_classes != 1000):
        raise ValueError(f"{weights} holds {meta.get('arch')} with {model.num_classes} classes, "
                         f"not ImageNet {title(config.arch)} (leave out arch for the bundled model)")
    if config.convention == "authors" and not isinstance(model.module, VGG):
        raise ValueError(f"the authors' convention is defined for VGG (their hook on conv5_3), not {meta.get('arch')}")
    return model, meta, weights


def attacked(paths: tuple[str, ...], model: Model) -> dict[str, Model]:
    """{file stem: model} of the attacked files, each checked to have `model`'s architecture and shapes."""
    out = {}
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        if name in out:
            raise ValueError(f"two attacked files are named {name!r}; their rows would share a name")
        other, _ = load_weights(path)
        if other.module != model.module or jax.tree.map(np.shape, other.params) != jax.tree.map(np.shape, model.params):
            raise ValueError(f"attacked {path} does not have the evaluated model's architecture "
                             f"({arch_name(model.module)}; an attack by fine-tuning keeps it)")
        out[name] = other
    return out


def data(config: Config, model: Model) -> tuple[Loader, int]:
    """(loader, number of images) of the config's data, checked against the model's classes."""
    if config.dataset == "shapes":
        if model.num_classes != len(shapes.CLASSES):
            raise ValueError(f"the shapes data has {len(shapes.CLASSES)} classes, the model {model.num_classes}")
        return shapes.loader(model.input_size), config.limit or DEFAULT_SHAPES_LIMIT
    if model.num_classes != 1000:
        raise ValueError(f"ImageNet has 1000 classes, the model {model.num_classes}")
    loader, available = imagenet.loader(config.data_dir, model.input_size)
    return loader, min(config.limit or available, available)


def evaluate(config: Config) -> Results:
    """Run the evaluation `config` describes: the paper's tables, and the vulnerability matrix when
    `config.matrix`."""
    if config.distributed:
        jax.distributed.initialize()
    model, meta, weights = load(config)
    loader, n_images = data(config, model)
    entries = suite.of(config, attacked(config.attacked, model), model)
    start = time.time()
    run = runner.run(model, loader, n_images, config, entries)
    seconds = time.time() - start
    summary = {
        "model": config.arch or "default",
        "arch": meta.get("arch"),
        "weights": os.path.basename(weights),
        "preprocess": model.preprocess,
        "dataset": config.dataset,
        "n_images": n_images,
        "device": runner.device_description(),
        "rows": tables.summarize(run.per_image, entries, config),
        "chance": tables.chance(run.per_image),
        "settings": {"convention": config.convention, "seed": config.seed, "batch_size": config.batch_size,
                     "exact_t1_t2": config.exact, "fused": config.fused, "t4_detector_tolerance": DETECTOR_TOLERANCE},
        "seconds": round(seconds, 1),
    }
    cells = matrix.cells(run.per_image, config, suite.rows(entries)) if config.matrix else None
    names = meta.get("class_names") or [str(k) for k in range(model.num_classes)]
    return Results(config, summary, cells, run, entries, list(names), model.cam_size)
