"""The quality metrics (`metrics.quality`) of every (model, method, target) cell of the matrix.

A cell's maps are the step's raw maps (A's resolution; input-space maps pooled to it) resized to the
images'; its classes are each image's top class under the row's model, its score the cell's target
(the contrast target contrasting with the original's runner-up, as the step's). The robustness and
randomisation metrics re-explain as the step explains (input-space maps pooled to A's resolution and
resized back), so a map is compared with its own kind. The target is picked
inside the compiled program, so each metric compiles once per model (and, for the metrics that
re-explain, once per method).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams import targets
from cam_jax.cams.methods import at_input, run
from cam_jax.evaluation.config import Config
from cam_jax.evaluation.step import at_resolution
from cam_jax.metrics.quality import QUALITY, check_options
from cam_jax.model import Model


def _placeholder(model, images, classes):  # stands for the cell's explanation in the option checks
    raise NotImplementedError


def _score(index: jax.Array, second: jax.Array, names: tuple[str, ...]) -> targets.Target:
    """The target names[index], a traced choice among them."""
    fns = [targets.get(t, second if t == "contrast" else None) for t in names]

    def score(logits, classes):
        return jnp.stack([f(logits, classes) for f in fns])[index]

    return score


@functools.partial(jax.jit, static_argnames=("name", "method", "names"))
def _cell(model: Model, x, maps, second, target, key, masks, name: str, method: str | None, names: tuple[str, ...]):
    q = QUALITY[name]
    cam_size = maps.shape[-1]
    maps = at_input(maps, x.shape[1])
    if q.kind == "map":
        return q.scalar(q.fn(maps))
    if q.kind == "masks":
        return q.scalar(q.fn(maps, masks))
    score = _score(target, second, names)
    classes = model(x).argmax(-1).astype(jnp.int32)
    options = {"target": score} if "target" in q.options else {}
    if "explain" in q.options:  # re-explained as the step explains: at A's resolution, then the images'
        size = (cam_size, cam_size)
        options["explain"] = lambda m, xs, c: at_input(
            at_resolution(run(m, xs, c, (method,), score, {})[method].cam, size), xs.shape[1])
    return q.scalar(q.fn(model, x, maps, classes, key, **options))


def measure(model: Model, x: jax.Array, cams: jax.Array, second: jax.Array, masks: jax.Array | None,
            key: jax.Array, config: Config) -> dict[str, np.ndarray]:
    """{metric: (methods, targets, normalizations, B)} of one (model, data) row: the config's quality
    metrics of each cell, the same for every normalisation (they read the raw maps); NaN where a
    localisation metric has no masks.

    Args:
      x: (B, H, W, 3) the row's images; cams: (methods, targets, B, h, w) its raw maps;
      second: (B,) the original's runner-up classes; masks: (B, H, W) bool or None.
    """
    out = {}
    shape = (len(config.methods), len(config.targets), len(config.normalizations), x.shape[0])
    for name in config.metrics:
        check_options(name, {"explain": _placeholder} if "explain" in QUALITY[name].options else {}, x.shape)
        values = np.full(shape, np.nan, np.float32)
        if QUALITY[name].kind != "masks" or masks is not None:
            for i, method in enumerate(config.methods):
                for j, _ in enumerate(config.targets):
                    per_image = _cell(model, x, cams[i, j], second, j, key, masks, name,
                                      method if "explain" in QUALITY[name].options else None, config.targets)
                    values[i, j] = np.asarray(per_image)[None]
        out[name] = values
    return out
