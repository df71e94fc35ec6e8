"""Randomisation (sanity checks): does the explanation depend on what the model learnt? Per image.

`explain` is as in `robustness`. Definitions follow Quantus 0.6 (randomisation/), with the maps
compared after scaling each by its own maximum.

References:
  Adebayo et al., "Sanity checks for saliency maps" (NeurIPS 2018); Sixt et al., "When explanations lie:
  why many modified BP attributions fail" (ICML 2020, random logit).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from cam_jax.metrics.robustness import Explain, explained
from cam_jax.metrics.statistics import peak_scaled, spearman, ssim_1d
from cam_jax.model import Model


def layers(model: Model) -> list[tuple[str, ...]]:
    """The paths of `model.params` that hold a layer (a dict of arrays: kernel, bias, ...), in the order the
    forward pass first reads them: the input side first.

    The order comes from the forward's jaxpr, so it holds for any module, a manipulation's wrapper included.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(model.params)
    paths = [tuple(str(getattr(k, "key", k)) for k in path) for path, _ in leaves]
    x = jax.ShapeDtypeStruct((1, model.input_size, model.input_size, 3), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda values, x: model.replace(params=jax.tree.unflatten(treedef, values))(x))(
        [v for _, v in leaves], x).jaxpr
    first: dict[Any, int] = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if not isinstance(v, jax.extend.core.Literal):
                first.setdefault(v, i)
    used = {}
    for path, var in zip(paths, jaxpr.invars[: len(paths)], strict=True):
        layer = path[:-1]
        used[layer] = min(used.get(layer, math.inf), first.get(var, math.inf))
    return sorted(used, key=lambda layer: used[layer])


def _reinitialised(layer: dict, key: jax.Array) -> dict:
    """The layer drawn afresh as torch's `reset_parameters` does: every array U(-b, b), b = 1 / sqrt(fan in)
    of its kernel (kaiming_uniform with a = sqrt(5)); a layer without a kernel: scales 1, the rest 0."""
    if "kernel" not in layer:
        return {k: jnp.ones_like(v) if k == "scale" else jnp.zeros_like(v) for k, v in layer.items()}
    bound = 1 / math.sqrt(math.prod(layer["kernel"].shape[:-1]))
    return {k: jax.random.uniform(jax.random.fold_in(key, i), v.shape, v.dtype, -bound, bound)
            for i, (k, v) in enumerate(sorted(layer.items()))}


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _set(tree, path, value):
    if not path:
        return value
    return {**tree, path[0]: _set(tree[path[0]], path[1:], value)}


def _order(model: Model, order: str) -> list[tuple[int, tuple[str, ...]]]:
    """[(i, layer path)] in the order `order` redraws them; i indexes `layers(model)`."""
    if order not in ("top_down", "bottom_up"):
        raise ValueError(f"order must be 'top_down' or 'bottom_up', got {order!r}")
    indexed = list(enumerate(layers(model)))
    return indexed[::-1] if order == "top_down" else indexed


def fresh_layers(model: Model, key: jax.Array) -> dict:
    """Every layer of `model` drawn afresh (`_reinitialised`), layer i of `layers(model)` with
    `jax.random.fold_in(key, i)`: the params `randomised` takes its layers from."""
    params = model.params
    for i, path in enumerate(layers(model)):
        params = _set(params, path, _reinitialised(_get(params, path), jax.random.fold_in(key, i)))
    return params


def randomised(model: Model, fresh: dict, depth: jax.Array | int, order: str = "top_down") -> Model:
    """The model with the first `depth` layers of `order` taken from `fresh` (`fresh_layers`); a traced
    `depth` is welcome: one program for every depth."""
    params = model.params
    for place, (_, path) in enumerate(_order(model, order)):
        new, old = _get(fresh, path), _get(params, path)
        params = _set(params, path, jax.tree.map(lambda f, o, p=place: jnp.where(p < depth, f, o), new, old))
    return model.replace(params=params)


def cascade(model: Model, key: jax.Array, order: str = "top_down") -> list[tuple[str, Model]]:
    """[(layer name, model)]: the model with its layers drawn afresh one more at a time, from the output
    ("top_down", Adebayo et al.'s cascading randomisation) or from the input ("bottom_up"). Layer i of
    `layers(model)` is drawn with `jax.random.fold_in(key, i)`."""
    fresh = fresh_layers(model, key)
    return [("/".join(path), randomised(model, fresh, k + 1, order))
            for k, (_, path) in enumerate(_order(model, order))]


def similarities(models: list[Model], images: jax.Array, maps: jax.Array, classes: jax.Array,
                 explain: Explain) -> jax.Array:
    """(B, len(models)) Spearman correlation of each map with each model's explanation of the same image."""
    flat = maps.reshape(maps.shape[0], -1)
    return jnp.stack([spearman(flat, explained(explain, m, images, classes, maps.shape).reshape(flat.shape))
                      for m in models], -1)


def model_randomisation(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
                        explain: Explain, order: str = "top_down") -> jax.Array:
    """(B, layers) Spearman correlation between the map and the explanation by the model with its top 1, 2,
    ... layers randomised (Quantus's MPRT, cascading; its result also holds the unrandomised model's
    correlation, which this leaves out). A map that keeps correlating ignores the weights. The depths
    run one after another in one compiled explanation (`randomised` takes a traced depth)."""
    flat = maps.reshape(maps.shape[0], -1)
    count = len(_order(model, order))
    fresh = fresh_layers(model, key)  # drawn once: a second copy of the parameters

    def one(depth):
        m = randomised(model, fresh, depth, order)
        return spearman(flat, explained(explain, m, images, classes, maps.shape).reshape(flat.shape))

    return jax.lax.map(one, jnp.arange(1, count + 1)).T


def random_logit(model: Model, images: jax.Array, maps: jax.Array, classes: jax.Array, key: jax.Array, *,
                 explain: Explain) -> jax.Array:
    """(B,) SSIM (Quantus's 1-D, `statistics.ssim_1d`) between the map and the explanation of a class drawn
    uniformly among the others, `jax.random.randint(key, (B,), 0, C - 1)` skipping the image's own; both
    scaled by their maximum. A map that does not change with the class scores 1."""
    draw = jax.random.randint(key, classes.shape, 0, model.num_classes - 1)
    other = jnp.where(draw >= classes, draw + 1, draw).astype(jnp.int32)
    theirs = peak_scaled(explained(explain, model, images, other, maps.shape))
    return ssim_1d(peak_scaled(maps).reshape(maps.shape[0], -1), theirs.reshape(maps.shape[0], -1))
