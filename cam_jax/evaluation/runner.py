"""The evaluation loop: batches from a loader, sharded over every device, with a progress bar.

One process or many: each process loads only its share of every global batch
(`jax.make_array_from_process_local_data`), the batch axis is sharded over a
1-D mesh of all devices, parameters are replicated, and per-image results are
gathered back. Stickers are placed by (seed, global image index), so the table
does not depend on the batch size or the number of devices.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cam_jax.data import images, stickers
from cam_jax.data.batch import Loader
from cam_jax.evaluation import quality_cells
from cam_jax.evaluation import step as evaluate
from cam_jax.evaluation.config import PAPER, Config
from cam_jax.evaluation.suite import PAPER_SUITE, Entry, build, sticker
from cam_jax.model import Model


class Run(NamedTuple):
    """What a run measured.

    Attributes:
      per_image: {(model, data): {metric: (methods, targets, normalizations, n_images)}}, NaN where a
        metric does not apply; ("chance", "clean") holds the localisation scores' chance levels.
      samples: {(model, data): `step.Sample`} of image 0.
      pixels: {"clean" | "sticker": (H, W, 3) uint8} image 0 as explained.
      label: image 0's label, or None.
    """

    per_image: dict[tuple[str, str], dict[str, np.ndarray]]
    samples: dict[tuple[str, str], evaluate.Sample]
    pixels: dict[str, np.ndarray]
    label: int | None


def device_description() -> str:
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return f"{len(devices)} x {', '.join(kinds)} ({jax.default_backend()}, {jax.process_count()} process(es))"


def run(
    model: Model,
    loader: Loader,
    n_images: int,
    config: Config = PAPER,
    suite: tuple[Entry, ...] = PAPER_SUITE,
) -> Run:
    """Evaluate the original and every model of `suite` on images [0, n_images) of `loader`, in the
    cells of `config` (its batch size, seed, fusion and progress bar too)."""
    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("data",))
    data_sharding = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())
    # No larger than the images need (a batch of 512 for 2 images would compute 510 copies), rounded
    # up to a multiple of the devices.
    batch_size = min(config.batch_size, n_images)
    per_process = math.ceil(batch_size / len(devices)) * len(devices) // jax.process_count()
    batch = per_process * jax.process_count()
    model = jax.device_put(model, replicated)
    step = (evaluate.fused_step if config.fused else evaluate.unfused_step)(config, suite)
    pixels_of_sticker = sticker(config, model.input_size)
    models = build(model, config, suite) if config.metrics else {}
    second_of = jax.jit(lambda m, x: evaluate.second_class(m(x)))
    preprocess = model.preprocess

    def global_array(local):
        return jax.make_array_from_process_local_data(data_sharding, local)

    chunks: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {}
    first_samples, pixels, label = None, {}, None
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} images"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
    start = time.time()
    with Progress(*columns, disable=not config.progress or jax.process_index() != 0) as progress:
        task = progress.add_task("evaluating", total=n_images, rate="")
        for first in range(0, n_images, batch):
            indices = np.minimum(np.arange(first, first + batch), n_images - 1)  # pad by repeating the last
            mine = indices[jax.process_index() * per_process : (jax.process_index() + 1) * per_process]
            data = loader(mine)
            stickered = stickers.paste_by_index(data.pixels, mine, config.seed, pixels_of_sticker)[0]
            inputs = {"clean": global_array(images.normalize(data.pixels, preprocess)),
                      "sticker": global_array(images.normalize(stickered, preprocess))}
            masks = None if data.masks is None else global_array(data.masks)
            out, sampled, maps = step(model, inputs["clean"], inputs["sticker"], global_array(data.labels), masks)
            for row, cams in maps.items():  # the quality metrics of every cell (config.metrics)
                name, data_name = row
                out[row].update(quality_cells.measure(
                    models[name], inputs[data_name], cams, second_of(models["original"], inputs[data_name]),
                    masks, jax.random.fold_in(jax.random.key(config.seed), first), config))
            out = multihost_utils.process_allgather(out, tiled=True) if jax.process_count() > 1 else jax.device_get(out)
            if first == 0:
                first_samples = jax.tree.map(np.asarray, multihost_utils.process_allgather(sampled)
                                             if jax.process_count() > 1 else jax.device_get(sampled))
                pixels = {"clean": data.pixels[0], "sticker": stickered[0]}
                label = None if data.labels is None else int(data.labels[0])
            valid = min(batch, n_images - first)
            for row, values in out.items():
                for name, v in values.items():
                    chunks.setdefault(row, {}).setdefault(name, []).append(np.asarray(v)[..., :valid])
            done = first + valid
            progress.update(task, completed=done, rate=f"{done / (time.time() - start):.1f} images/s")
    per_image = {row: {k: np.concatenate(v, axis=-1) for k, v in values.items()} for row, values in chunks.items()}
    return Run(per_image, first_samples, pixels, label)
