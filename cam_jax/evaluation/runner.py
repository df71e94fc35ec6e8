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

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cam_jax.data import images
from cam_jax.data.batch import Loader
from cam_jax.evaluation import step as evaluate
from cam_jax.evaluation.suite import PAPER_SUITE, Entry, Settings, sticker
from cam_jax.manipulations import stickers
from cam_jax.model import Model


def device_description() -> str:
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return f"{len(devices)} x {', '.join(kinds)} ({jax.default_backend()}, {jax.process_count()} process(es))"


def run(
    model: Model,
    loader: Loader,
    n_images: int,
    *,
    batch_size: int = 16,
    seed: int = 0,
    settings: Settings = Settings(),
    suite: tuple[Entry, ...] = PAPER_SUITE,
    grid: evaluate.Grid = evaluate.PAPER_GRID,
    fused: bool = True,
    show_progress: bool = True,
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Evaluate the original and every model of `suite` on images [0, n_images) of `loader`.

    Returns:
      {(model, data): {metric: (methods, targets, normalizations, n_images) per-image values}}
      for every row of `suite.rows(suite)` and the cells of `grid`; NaN where a metric does not apply.
    """
    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("data",))
    data_sharding = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())
    # No larger than the images need (a batch of 512 for 2 images would compute 510 copies), rounded
    # up to a multiple of the devices.
    batch_size = min(batch_size, n_images)
    per_process = math.ceil(batch_size / len(devices)) * len(devices) // jax.process_count()
    batch = per_process * jax.process_count()
    model = jax.device_put(model, replicated)
    step = (evaluate.fused_step if fused else evaluate.unfused_step)(settings, suite, grid)
    pixels_of_sticker = sticker(settings)
    preprocess = model.preprocess

    def global_array(local):
        return jax.make_array_from_process_local_data(data_sharding, local)

    chunks: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} images"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
    start = time.time()
    with Progress(*columns, disable=not show_progress or jax.process_index() != 0) as progress:
        task = progress.add_task("evaluating", total=n_images, rate="")
        for first in range(0, n_images, batch):
            indices = np.minimum(np.arange(first, first + batch), n_images - 1)  # pad by repeating the last
            mine = indices[jax.process_index() * per_process : (jax.process_index() + 1) * per_process]
            data = loader(mine)
            stickered = stickers.paste_by_index(data.pixels, mine, seed, pixels_of_sticker)[0]
            out = step(
                model,
                global_array(images.normalize(data.pixels, preprocess)),
                global_array(images.normalize(stickered, preprocess)),
                global_array(data.labels),
                None if data.masks is None else global_array(data.masks),
            )
            out = multihost_utils.process_allgather(out, tiled=True) if jax.process_count() > 1 else jax.device_get(out)
            valid = min(batch, n_images - first)
            for row, values in out.items():
                for name, v in values.items():
                    chunks.setdefault(row, {}).setdefault(name, []).append(np.asarray(v)[..., :valid])
            done = first + valid
            progress.update(task, completed=done, rate=f"{done / (time.time() - start):.1f} images/s")
    return {row: {k: np.concatenate(v, axis=-1) for k, v in values.items()} for row, values in chunks.items()}
