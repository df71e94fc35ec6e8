"""Is an explanation true to the model? The registry of explanation-quality metrics and `assess`.

A metric is one of three kinds, by what it reads:
- "model": (model, images, maps, classes, key, **options), perturbing the images or the model;
- "masks": (maps, masks, **options), against (B, H, W) object masks;
- "map": (maps, **options), the map alone.
Its options are the keyword arguments after those, read from the signature. Each returns per-image
values (B,) or a curve (B, n); `Quality.scalar` reduces a curve to one value per image (what the
matrix reports). A new metric is its function in its family's module plus one line in `QUALITY`.

Example:
  >>> import jax, numpy as np
  >>> from cam_jax.cams.methods import explainer
  >>> maps = explainer("gradcam")(model, images, None)          # (B, H, W) at the images' size
  >>> curve = assess("deletion", model, images, maps, steps=4)
  >>> curve.shape
  (2, 5)
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams import targets
from cam_jax.metrics import complexity, faithfulness, localisation, perturbing, randomisation, robustness
from cam_jax.model import Model, check_classes, check_images

FIXED = {"model": 5, "masks": 2, "map": 1}
FAMILIES = ("faithfulness", "robustness", "randomisation", "localisation", "complexity")


def _mean(values: jax.Array) -> jax.Array:
    return values.mean(-1) if values.ndim > 1 else values


class Quality(NamedTuple):
    """An explanation-quality metric.

    Attributes:
      kind: what it reads (`FIXED`'s keys); fn: its function; family: one of `FAMILIES`.
      scalar: (B,) or (B, n) values -> (B,), one value per image.
      higher: whether a higher scalar means a more faithful (robust, concise, well-placed) map.
      passes: options -> forward passes (or explanations, for robustness and randomisation) per image,
        given the image's pixels and the model's layers: the metric's floor.
      options: its keyword options, from the signature.
    """

    kind: str
    fn: Callable
    family: str
    scalar: Callable[[jax.Array], jax.Array]
    higher: bool
    passes: Callable[[dict[str, Any], int, int], int]
    options: tuple[str, ...]


def quality(kind: str, fn: Callable, family: str, higher: bool, scalar=_mean,
            passes: Callable[[dict[str, Any], int, int], int] = lambda o, pixels, layers: 0) -> Quality:
    names = list(inspect.signature(fn).parameters)
    return Quality(kind, fn, family, scalar, higher, passes, tuple(names[FIXED[kind]:]))


QUALITY: dict[str, Quality] = {
    "pixel_flipping": quality("model", faithfulness.pixel_flipping, "faithfulness", False, faithfulness.area,
                              lambda o, p, n: o["steps"]),
    "deletion": quality("model", faithfulness.deletion, "faithfulness", False, faithfulness.area,
                        lambda o, p, n: o["steps"] + 1),
    "insertion": quality("model", faithfulness.insertion, "faithfulness", True, faithfulness.area,
                         lambda o, p, n: o["steps"] + 1),
    "region_perturbation": quality("model", faithfulness.region_perturbation, "faithfulness", True, _mean,
                                   lambda o, p, n: 1 + min(o["regions"], p // o["patch"] ** 2)),
    "selectivity": quality("model", faithfulness.selectivity, "faithfulness", False, faithfulness.area,
                           lambda o, p, n: p // o["patch"] ** 2),
    "road": quality("model", faithfulness.road, "faithfulness", False, _mean,
                    lambda o, p, n: len(o["percentages"])),
    "faithfulness_correlation": quality("model", faithfulness.faithfulness_correlation, "faithfulness", True,
                                        passes=lambda o, p, n: 1 + o["runs"]),
    "monotonicity_correlation": quality("model", faithfulness.monotonicity_correlation, "faithfulness", True,
                                        passes=lambda o, p, n: 1 + o["steps"] * o["samples"]),
    "infidelity": quality("model", faithfulness.infidelity, "faithfulness", False,
                          passes=lambda o, p, n: 1 + p // o["patch"] ** 2),
    "max_sensitivity": quality("model", robustness.max_sensitivity, "robustness", False,
                               passes=lambda o, p, n: o["samples"]),
    "avg_sensitivity": quality("model", robustness.avg_sensitivity, "robustness", False,
                               passes=lambda o, p, n: o["samples"]),
    "local_lipschitz": quality("model", robustness.local_lipschitz, "robustness", False,
                               passes=lambda o, p, n: o["samples"]),
    "model_randomisation": quality("model", randomisation.model_randomisation, "randomisation", False,
                                   passes=lambda o, p, n: n),
    "random_logit": quality("model", randomisation.random_logit, "randomisation", False, passes=lambda o, p, n: 1),
    "pointing_game": quality("masks", localisation.peak_in_mask, "localisation", True),
    "energy_pointing_game": quality("masks", localisation.energy_in_mask, "localisation", True),
    "relevance_mass_accuracy": quality("masks", localisation.relevance_mass_accuracy, "localisation", True),
    "relevance_rank_accuracy": quality("masks", localisation.relevance_rank_accuracy, "localisation", True),
    "top_k_intersection": quality("masks", localisation.top_k_intersection, "localisation", True),
    "auc": quality("masks", localisation.auc, "localisation", True),
    "sparseness": quality("map", complexity.sparseness, "complexity", True),
    "complexity": quality("map", complexity.complexity, "complexity", False),
    "effective_complexity": quality("map", complexity.effective_complexity, "complexity", False),
}


def names_of(metrics: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """Metric names as given, "all" for every one, or a family's name for its metrics; a `ValueError`
    naming an unknown one."""
    given = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    names = []
    for name in given:
        if name == "all":
            names += list(QUALITY)
        elif name in FAMILIES:
            names += [n for n, q in QUALITY.items() if q.family == name]
        elif name in QUALITY:
            names.append(name)
        else:
            raise ValueError(f"unknown metric {name!r}; choose from {', '.join(QUALITY)}, a family "
                             f"({', '.join(FAMILIES)}) or 'all'")
    if not names:
        raise ValueError("no metric named")
    return tuple(dict.fromkeys(names))


def _positive_int(high: Callable[[tuple], int] | None = None, what: str = ""):
    def check(option, value, shape):
        limit = high(shape) if high else 1 << 20
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= limit:
            raise ValueError(f"{option} must be an integer in [1, {limit}]{what}, got {value!r}")
    return check


def _nonnegative(option, value, shape):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{option} must be a finite number >= 0, got {value!r}")


def _one_of(*choices):
    def check(option, value, shape):
        if value not in choices:
            raise ValueError(f"{option} must be one of {choices}, got {value!r}")
    return check


def _patch(option, value, shape):
    _positive_int(lambda s: min(s[1], s[2]))(option, value, shape)
    if shape[1] % value or shape[2] % value:
        raise ValueError(f"{option} {value} must divide the images' sides ({shape[1]}, {shape[2]})")


def _percentages(option, value, shape):
    if (not isinstance(value, tuple) or not value
            or not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 100 for p in value)):
        raise ValueError(f"{option} must be a non-empty tuple of integers in [1, 99], got {value!r}")


def _target(option, value, shape):
    if value not in targets.TARGETS or value == "contrast":
        raise ValueError(f"{option} must be one of {sorted(set(targets.TARGETS) - {'contrast'})}, got {value!r}")


def _explain(option, value, shape):
    if not callable(value):
        raise ValueError(f"{option} must be a function (model, images, classes) -> maps "
                         "(cam_jax.cams.methods.explainer makes one)")


def _pixels(shape):
    return shape[1] * shape[2]


# Each option's check by name, (option, value, image shape (B, H, W, 3)) -> None or a ValueError.
OPTION_CHECKS: dict[str, Callable[[str, Any, tuple], None]] = {
    "steps": _positive_int(_pixels, " (at most the pixels)"), "runs": _positive_int(),
    "subset": _positive_int(lambda s: _pixels(s) - 1, " (fewer than the pixels)"),
    "samples": _positive_int(), "regions": _positive_int(), "batch_images": _positive_int(),
    "k": _positive_int(_pixels, " (at most the pixels)"), "patch": _patch, "percentages": _percentages,
    "baseline": _one_of(*perturbing.BASELINES), "order": _one_of("morf", "lerf", "random", "top_down", "bottom_up"),
    "radius": _nonnegative, "sigma": _nonnegative, "noise": _nonnegative, "eps": _nonnegative,
    "target": _target, "explain": _explain,
}


def defaults(name: str) -> dict[str, Any]:
    """Metric `name`'s options and their default values (those without one, `explain`, left out)."""
    q = QUALITY[name]
    return {k: p.default for k, p in inspect.signature(q.fn).parameters.items()
            if k in q.options and p.default is not inspect.Parameter.empty}


def check_options(name: str, options: dict[str, Any], shape: tuple) -> None:
    """A `ValueError` for an option metric `name` does not take, or a bad value of one, its defaults included
    (a default patch that does not divide the images' side is as wrong as a given one)."""
    known = QUALITY[name].options
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"{name} takes the options {', '.join(known) or 'none'}; not {', '.join(unknown)}")
    if "explain" in known and "explain" not in options:
        raise ValueError(f"{name} re-explains the images: pass explain= (cam_jax.cams.methods.explainer makes one)")
    given = {k: v for k, v in defaults(name).items() if k != "target"} | options
    for option, value in given.items():
        try:
            OPTION_CHECKS[option](option, value, shape)
        except ValueError as err:
            raise ValueError(f"{err}{'' if option in options else ' (the default; pass another)'}") from None
    if name == "region_perturbation" and options.get("order") in ("top_down", "bottom_up"):
        raise ValueError("region_perturbation's order must be 'morf', 'lerf' or 'random'")


def check_maps(maps: Any, shape: tuple, name: str = "maps") -> jax.Array:
    """`maps` as float32 (B, H, W) after checking them against the images' (B, H, W, 3)."""
    if getattr(maps, "shape", None) is None:
        raise TypeError(f"{name} must be an array, got {type(maps).__name__}")
    if tuple(maps.shape) != tuple(shape[:3]):
        raise ValueError(f"{name} must be (B, H, W) = {tuple(shape[:3])}, one per image at the images' size, "
                         f"got {tuple(maps.shape)}")
    if not (jnp.issubdtype(maps.dtype, jnp.floating) or jnp.issubdtype(maps.dtype, jnp.integer)):
        raise TypeError(f"{name} must be numbers, got {maps.dtype}")
    if not isinstance(maps, jax.core.Tracer) and not np.isfinite(np.asarray(maps)).all():
        raise ValueError(f"{name} hold NaN or inf")
    return jnp.asarray(maps, jnp.float32)


def _masks(masks: Any, shape: tuple) -> jax.Array:
    if masks is None:
        raise ValueError("the localisation metrics need masks: (B, H, W) bool, the object's pixels")
    if getattr(masks, "shape", None) is None or tuple(masks.shape) != tuple(shape[:3]):
        raise ValueError(f"masks must be (B, H, W) = {tuple(shape[:3])}, got {getattr(masks, 'shape', None)}")
    return jnp.asarray(masks).astype(bool)


@functools.partial(jax.jit, static_argnames=("name", "static"))
def _run(model, images, maps, classes, key, masks, name: str, static: tuple) -> jax.Array:
    q = QUALITY[name]
    options = dict(static)
    if "target" in options:
        options["target"] = targets.get(options["target"])
    if q.kind == "map":
        return q.fn(maps, **options)
    if q.kind == "masks":
        return q.fn(maps, masks, **options)
    if classes is None:
        classes = model(images).argmax(-1).astype(jnp.int32)
    return q.fn(model, images, maps, classes, key, **options)


def assess(name: str, model: Model | None, images: jax.Array, maps: jax.Array, classes: Any = None,
           key: jax.Array | None = None, *, masks: Any = None, **options: Any) -> jax.Array:
    """Metric `name` of `maps` explaining `model` on `images`: per-image values (B,) or a curve (B, n).

    Args:
      model: any `Model` (unused, may be None, for the localisation and complexity metrics).
      images: (B, H, W, 3) normalised; maps: (B, H, W) at the images' resolution, from any method.
      classes: (B,) the classes the maps explain; default each image's top class.
      key: a `jax.random.key` for the metrics that draw; default key 0.
      masks: (B, H, W) bool object masks, for the localisation metrics.
      **options: the metric's (`QUALITY[name].options`); "target" by name ("logit", "softmax", ...).
    """
    if name not in QUALITY:
        names_of(name)  # the error that lists them, or a family's name:
        raise ValueError(f"{name!r} names several metrics ({', '.join(names_of(name))}); assess takes one")
    q = QUALITY[name]
    if q.kind == "model":
        if model is None:
            raise ValueError(f"{name} runs the model: pass one")
        check_images(images, model.input_size)
    shape = tuple(images.shape)
    maps = check_maps(maps, shape)
    mask_array = _masks(masks, shape) if q.kind == "masks" else None
    if q.kind != "masks" and masks is not None:
        raise ValueError(f"{name} does not read masks")
    classes = None if q.kind != "model" else check_classes(classes, shape[0], model.num_classes)
    # numpy scalars and lists as the plain, hashable values the compiled metric is specialised on
    options = {k: v.item() if isinstance(v, np.generic) else tuple(v) if isinstance(v, list) else v
               for k, v in options.items()}
    check_options(name, options, shape)
    key = jax.random.key(0) if key is None else key
    _check_key(key)
    return _run(model, images, maps, classes, key, mask_array, name, tuple(sorted(options.items())))


def _check_key(key: Any) -> None:
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ()
    if not (typed or (dtype == np.uint32 and shape == (2,))):
        raise ValueError(f"key must be one jax.random.key, got {type(key).__name__} {shape}")


def higher(name: str, options: dict[str, Any] | None = None) -> bool:
    """Whether a higher scalar of metric `name` under `options` is better: `Quality.higher`, turned round
    when the order is "lerf" (least relevant first: a faithful map then keeps the score)."""
    order = (options or {}).get("order")
    return QUALITY[name].higher != (order == "lerf")


def floor(name: str, options: dict[str, Any], pixels: int, layers: int = 0) -> int:
    """Forward passes (explanations, for robustness and randomisation) metric `name` needs per image with
    `options` (its defaults filled in), on images of `pixels` pixels and a model of `layers` layers."""
    q = QUALITY[name]
    defaults = {k: p.default for k, p in inspect.signature(q.fn).parameters.items() if k in q.options}
    return q.passes({**defaults, **options}, pixels, layers)


def scalar(name: str, values: jax.Array) -> jax.Array:
    """(B,) one value per image of metric `name`'s output (`Quality.scalar`)."""
    return QUALITY[name].scalar(values)
