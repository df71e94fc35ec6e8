"""One registry of explanation methods, and `explain` / `explain_many` / `gradcam` that run them.

A method is one of four kinds, by what it needs:
- "weighting": a function (A, dS/dA) -> map (`cam_jax.cams.weightings`); every requested one shares
  one forward and one head backward (`core.gradients`);
- "head": maps for several targets from A, the head's context, the logits and the head alone (AblationCAM);
- "model": the model and the images (ScoreCAM, the input-space attributions, the defences that run
  on a transformed model or need their own passes);
- "aggregate": the explanations of other methods of the same call (`aggregated`).
Its options are the keyword arguments its function takes beyond those every method of its kind
takes, read from the signature: a new method is its function plus one line in `METHODS`.
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

from cam_jax.cams import input_space, perturbation, targets
from cam_jax.cams.core import Explanation, gradients
from cam_jax.cams.maps import normalize
from cam_jax.cams.occlusion import occlusion
from cam_jax.cams.smoothing import BETA, beta_smooth
from cam_jax.cams.weightings import WEIGHTINGS, Weighting, apply, grad_cam
from cam_jax.model import Model, check_classes, check_images

# The leading arguments every function of a kind takes; the rest of its signature are its options.
FIXED = {"weighting": 2, "head": 6, "model": 4, "aggregate": 2}


class Method(NamedTuple):
    """An explanation method: its kind (FIXED's keys), its function and its options (keyword names)."""

    kind: str
    fn: Callable
    options: tuple[str, ...]


def method(kind: str, fn: Callable) -> Method:
    """`fn` as a method of `kind`, its options read from its signature."""
    names = list(inspect.signature(fn).parameters)
    return Method(kind, fn, tuple(names[FIXED[kind]:]))


def smoothed(name: str) -> Callable:
    """The method `name` on the model with β-smoothed ReLU derivatives (`smoothing.beta_smooth`): a defence
    (Dombrowski et al. 2019) whose one option is β."""
    def fn(model: Model, images, classes, score: targets.Target, beta: float = BETA) -> Explanation:
        return run(beta_smooth(model, beta), images, classes, (name,), score, {})[name]

    fn.__name__ = f"{name}_beta"
    return fn


# Methods of different principles (gradient, gradient squared, element-wise, gradient-free, ablation),
# all read from A's one pass: a lie aimed at one principle is outvoted.
AGGREGATED = ("gradcam", "gradcam++", "layercam", "eigencam", "ablationcam")


def aggregated(reduce: Callable[..., jax.Array]) -> Callable:
    """An aggregate: `reduce` over the method axis of the maps of `members`, each at the images' resolution,
    absolute and divided by its maximum per image, so that every method weighs alike (Rieger and Hansen 2020,
    "Aggregating explanation methods for stable and robust explainability"). `run` computes the members
    once, beside any other method of the call."""
    def fn(explained: dict[str, Explanation], size: int, members: tuple[str, ...] = AGGREGATED) -> Explanation:
        maps = jnp.stack([normalize(jnp.abs(at_input(explained[m].cam, size))) for m in members])
        first = explained[members[0]]
        return Explanation(first.logits, first.classes, reduce(maps, axis=0))

    fn.__name__ = f"aggregate_{reduce.__name__}"
    return fn


METHODS: dict[str, Method] = {
    **{name: method("weighting", fn) for name, fn in WEIGHTINGS.items()},
    "scorecam": method("model", perturbation.score_cam),
    "ablationcam": method("head", perturbation.ablation_cam),
    "saliency": method("model", input_space.saliency),
    "gradient_x_input": method("model", input_space.gradient_x_input),
    "smoothgrad": method("model", input_space.smoothgrad),
    "integrated_gradients": method("model", input_space.integrated_gradients),
    "occlusion": method("model", occlusion),
    "gradcam_beta": method("model", smoothed("gradcam")),
    "saliency_beta": method("model", smoothed("saliency")),
    "gradient_x_input_beta": method("model", smoothed("gradient_x_input")),
    "aggregate_mean": method("aggregate", aggregated(jnp.mean)),
    "aggregate_median": method("aggregate", aggregated(jnp.median)),
}
DEFENCES = ("occlusion", "gradcam_beta", "saliency_beta", "gradient_x_input_beta", "aggregate_mean",
            "aggregate_median")


def _count(high: int):
    def check(name: str, value: Any, images: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= high:
            raise ValueError(f"{name} must be an integer in [1, {high}], got {value!r}")

    return check


def _sigma(name: str, value: Any, images: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (a share of each image's range), got {value!r}")


def _baseline(name: str, value: Any, images: Any) -> None:
    if value is None:
        return
    shape = getattr(value, "shape", None)
    try:
        np.broadcast_shapes(tuple(shape), images.shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array broadcastable to the images {images.shape}, got {shape}") from None
    if not isinstance(value, jax.core.Tracer) and not np.isfinite(np.asarray(value)).all():
        raise ValueError(f"{name} holds NaN or inf: its attributions would be NaN")


def _key(name: str, value: Any, images: Any) -> None:
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ()
    raw = dtype == np.uint32 and shape == (2,)  # jax.random.PRNGKey's
    if value is not None and not (typed or raw):
        raise ValueError(f"{name} must be one jax.random.key, got {type(value).__name__} {shape}")


def _window(name: str, value: Any, images: Any) -> None:
    if value is None:
        return
    size = None if images is None else images.shape[1]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 or (size and value > size):
        raise ValueError(f"{name} must be an integer in [1, {size or 'the image size'}], got {value!r}")


def _beta(name: str, value: Any, images: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _members(name: str, value: Any, images: Any) -> None:
    names = tuple(value) if isinstance(value, (tuple, list)) else ()
    inner = [m for m in names if m not in METHODS or METHODS[m].kind == "aggregate"]
    if not names or inner:
        raise ValueError(f"{name} must be a tuple of method names other than the aggregates, got {value!r}")


# Each option's check, by name (the options of every method's signature).
OPTION_CHECKS: dict[str, Callable[[str, Any, Any], None]] = {
    "batch_images": _count(1 << 16), "samples": _count(10_000), "steps": _count(10_000), "sigma": _sigma,
    "baseline": _baseline, "key": _key, "window": _window, "stride": _window, "beta": _beta, "members": _members,
}


def _options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in METHODS[name].options}


def run(model: Model, images, classes, names: tuple[str, ...], score: targets.Target,
        options: dict[str, Any]) -> dict[str, Explanation]:
    """Every method of `names` on one batch, traceable: those that read A share one pass.

    Args:
      images: (B, H, W, 3) normalised; classes: (B,) int32 or None (each image's top class);
      score: the target function; options: the methods' options, already checked.
    """
    aggregates = [n for n in names if METHODS[n].kind == "aggregate"]
    members = tuple(options.get("members", AGGREGATED)) if aggregates else ()
    computed = tuple(dict.fromkeys(n for n in (*names, *members) if METHODS[n].kind != "aggregate"))
    out = {}
    if any(METHODS[n].kind != "model" for n in computed):
        g = gradients(model, images, classes, score)
        for name in computed:
            m = METHODS[name]
            if m.kind == "weighting":
                out[name] = Explanation(g.logits, g.classes, jax.nn.relu(apply(m.fn, g.a, g.grads)))
            elif m.kind == "head":
                maps = m.fn(model, g.a, g.context, g.logits, g.classes[None], (score,), **_options(name, options))
                out[name] = Explanation(g.logits, g.classes, maps[0])
    for name in computed:
        if METHODS[name].kind == "model":
            out[name] = METHODS[name].fn(model, images, classes, score, **_options(name, options))
    for name in aggregates:
        out[name] = METHODS[name].fn(out, images.shape[1], **_options(name, options))
    return {name: out[name] for name in names}


@functools.partial(jax.jit, static_argnames=("names", "target", "static"))
def _explain(model: Model, images, classes, contrast, arrays: dict, names: tuple[str, ...], target: str,
             static: tuple) -> dict[str, Explanation]:
    return run(model, images, classes, names, targets.get(target, contrast), {**arrays, **dict(static)})


def check_options(names: tuple[str, ...], options: dict[str, Any], images: Any) -> None:
    """A `ValueError` for an option none of the methods `names` takes, or a bad value of one."""
    allowed = {o for m in names for o in METHODS[m].options}
    if set(options) - allowed:
        raise ValueError(f"options {sorted(set(options) - allowed)} do not apply to {', '.join(names)}")
    for option, value in options.items():
        OPTION_CHECKS[option](option, value, images)


def at_input(cam: jax.Array, size: int) -> jax.Array:
    """(B, h, w) maps at the images' (B, size, size): CAM maps resized bilinearly (as pytorch-grad-cam
    shows them), input-space maps as they are."""
    if cam.shape[-1] == size and cam.shape[-2] == size:
        return cam
    return jax.image.resize(cam, (*cam.shape[:-2], size, size), method="bilinear")


@functools.lru_cache(maxsize=256)
def _explainer(method: str, target: str, static: tuple) -> Callable:
    def explain(model: Model, images: jax.Array, classes: jax.Array | None) -> jax.Array:
        cam = run(model, images, classes, (method,), targets.get(target), dict(static))[method].cam
        return at_input(cam, images.shape[1])

    return explain


def explainer(method: str = "gradcam", target: str = "logit", **options: Any) -> Callable:
    """A pure function (model, images (B, H, W, 3), classes (B,) or None) -> maps (B, H, W) at the images'
    resolution, by `method` for `target`: what the robustness and randomisation metrics re-explain
    with. The same arguments give the same function (so a caller's jit compiles it once).

    Example:
      >>> explainer("gradcam++")(model, images, None).shape
      (2, 224, 224)
    """
    (method,) = names_of(method)
    if target == "contrast" or target not in targets.TARGETS:
        raise ValueError(f"target must be one of {sorted(set(targets.TARGETS) - {'contrast'})}, got {target!r}")
    if any(hasattr(v, "shape") for v in options.values()):
        raise ValueError("an explainer's options must be plain values (numbers, strings), not arrays")
    check_options((method,), options, None)
    return _explainer(method, target, tuple(sorted(options.items())))


def names_of(methods: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """Method names as given, "all" for every one; a `ValueError` naming an unknown one."""
    names = tuple(METHODS) if methods == "all" else ((methods,) if isinstance(methods, str) else tuple(methods))
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        bad = unknown[0] if unknown else None
        raise ValueError(f"unknown method {bad!r}; choose from {', '.join(METHODS)} or 'all'")
    return names


def explain_many(model: Model, images: jax.Array, methods: tuple[str, ...] | list[str] | str = ("gradcam",),
                 target: str = "logit", classes: Any = None, contrast: Any = None,
                 **options: Any) -> dict[str, Explanation]:
    """Several methods on one batch: {method: Explanation}, those that read A from one pass.

    Args:
      model: any `Model`.
      images: (B, H, W, 3) float, normalised.
      methods: names from `METHODS`, or "all".
      target: "logit" (the paper's), "softmax", "log_softmax", "contrast_mean" or "contrast".
      classes: (B,) ints to explain; default each image's top class. Out of range is an error.
      contrast: (B,) second classes for target="contrast".
      **options: what the methods' signatures take beyond the fixed arguments (`METHODS[name].options`):
        batch_images (the images per pass, the memory bound), key/samples/sigma (smoothgrad),
        baseline/steps (integrated_gradients).

    Example:
      >>> out = explain_many(model, images, ["gradcam", "gradcam++", "layercam"], target="softmax")
      >>> sorted(out), out["layercam"].cam.shape
      (['gradcam', 'gradcam++', 'layercam'], (2, 14, 14))
    """
    check_images(images, model.input_size)
    names = names_of(methods)
    batch = images.shape[0]
    classes = check_classes(classes, batch, model.num_classes)
    contrast = check_classes(contrast, batch, model.num_classes, "contrast")
    targets.get(target, contrast)  # an unknown target, or a contrast that does not fit it
    check_options(names, options, images)
    arrays = {k: v for k, v in options.items() if hasattr(v, "shape")}  # traced, not compiled in
    static = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items() if k not in arrays))
    out = _explain(model, images, classes, contrast, arrays, names, target, static)
    return {m: out[m] for m in names}


def explain(model: Model, images: jax.Array, method: str = "gradcam", target: str = "logit", classes: Any = None,
            contrast: Any = None, **options: Any) -> Explanation:
    """One method on one batch (see `explain_many`); returns its `Explanation` with the raw map.

    Example:
      >>> e = explain(model, images, method="gradcam++", target="softmax")
      >>> e.cam.shape, e.classes.shape
      ((2, 14, 14), (2,))
    """
    return explain_many(model, images, (method,), target, classes, contrast, **options)[method]


@functools.partial(jax.jit, static_argnames="weighting")
def _gradcam(model: Model, images: jax.Array, classes, weighting: Weighting) -> Explanation:
    g = gradients(model, images, classes)
    return Explanation(g.logits, g.classes, jax.nn.relu(apply(weighting, g.a, g.grads)))


def gradcam(model: Model, images: jax.Array, classes: jax.Array | None = None, *,
            weighting: Weighting = grad_cam) -> Explanation:
    """GradCAM maps for a batch, checked for bad input, jitted.

    Args:
      model: any `Model` (plain or manipulated).
      images: (B, H, W, 3) float, normalised as in `cam_jax.data.images`.
      classes: optional (B,) ints; default each image's own argmax.
      weighting: `weightings.grad_cam` (default) or another CAM weighting.

    Returns:
      `Explanation` with logits (B, C), classes (B,), raw cam (B, h, w).

    Example:
      >>> from cam_jax.cams.maps import normalize
      >>> expl = gradcam(model, images)          # the bundled default, generated images
      >>> heat = normalize(expl.cam)             # (B, 14, 14) in [0, 1]
      >>> heat.shape, float(heat.max())
      ((2, 14, 14), 1.0)
    """
    check_images(images, model.input_size)
    return _gradcam(model, images, check_classes(classes, images.shape[0], model.num_classes), weighting)
