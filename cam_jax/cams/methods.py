"""One entry point for every explanation method: `explain` (one method) and `explain_many` (several, one pass).

Methods by name, as `scripts/explain.py --method` spells them:
- gradient-weighted CAMs and EigenCAM (`cam_jax.cams.weightings`): all requested ones share one
  forward and one head backward;
- forward-only CAMs (`cam_jax.cams.perturbation`): "scorecam", "ablationcam";
- input-space attributions (`cam_jax.cams.input_space`): "saliency", "gradient_x_input",
  "smoothgrad", "integrated_gradients".
"""

from __future__ import annotations

import functools
from typing import Any

import jax

from cam_jax.cams import input_space, perturbation, targets
from cam_jax.cams.engine import Explanation, cams_from_backward, head_backward
from cam_jax.cams.weightings import WEIGHTINGS
from cam_jax.model import Model, check_classes, check_images

OTHERS = {
    "scorecam": perturbation.score_cam,
    "ablationcam": perturbation.ablation_cam,
    "saliency": input_space.saliency,
    "gradient_x_input": input_space.gradient_x_input,
    "smoothgrad": input_space.smoothgrad,
    "integrated_gradients": input_space.integrated_gradients,
}
METHODS: tuple[str, ...] = (*WEIGHTINGS, *OTHERS)
# The options each method takes (all static but smoothgrad's key and IG's baseline).
OPTIONS = {"scorecam": {"batch_images"}, "ablationcam": {"batch_images"},
           "smoothgrad": {"key", "samples", "sigma", "batch_images"},
           "integrated_gradients": {"baseline", "steps", "batch_images"}}


@functools.partial(jax.jit, static_argnames=("names", "target", "static"))
def _explain(model: Model, images, classes, contrast, arrays: dict, names: tuple[str, ...], target: str,
             static: tuple) -> dict[str, Explanation]:
    """Every requested method in one compiled program; the gradient-weighted ones share one pass."""
    score = targets.get(target)
    weighted = {name: WEIGHTINGS[name] for name in names if name in WEIGHTINGS}
    out = {}
    if weighted:
        a = model.features(images)
        out = cams_from_backward(*head_backward(model, a), a, weighted, classes, score, contrast)
    for name in names:
        if name in OTHERS:
            options = {k: v for k, v in (*arrays.items(), *static) if k in OPTIONS.get(name, set())}
            out[name] = OTHERS[name](model, images, classes, score, contrast, **options)
    return out


def explain_many(model: Model, images: jax.Array, methods: tuple[str, ...] | list[str] | str = ("gradcam",),
                 target: str = "logit", classes: Any = None, contrast: Any = None,
                 **options: Any) -> dict[str, Explanation]:
    """Several methods on one batch: {method: Explanation}, the gradient-weighted ones from one pass.

    Args:
      model: any `Model`.
      images: (B, H, W, 3) float, normalised.
      methods: names from `METHODS`, or "all".
      target: "logit" (the paper's), "softmax", "log_softmax", "contrast_mean" or "contrast".
      classes: (B,) ints to explain; default each image's top class. Out of range is an error.
      contrast: (B,) second classes for target="contrast".
      **options: batch_images (scorecam, ablationcam, smoothgrad, integrated_gradients: the
        images per pass, the memory bound), key/samples/sigma (smoothgrad), baseline/steps
        (integrated_gradients).

    Example:
      >>> out = explain_many(model, images, ["gradcam", "gradcam++", "layercam"], target="softmax")
      >>> sorted(out), out["layercam"].cam.shape
      (['gradcam', 'gradcam++', 'layercam'], (2, 14, 14))
    """
    check_images(images, model.input_size)
    names = METHODS if methods == "all" else ((methods,) if isinstance(methods, str) else tuple(methods))
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        bad = unknown[0] if unknown else None
        raise ValueError(f"unknown method {bad!r}; choose from {', '.join(METHODS)} or 'all'")
    targets.get(target)
    batch = images.shape[0]
    classes = check_classes(classes, batch, model.num_classes)
    contrast = check_classes(contrast, batch, model.num_classes, "contrast")
    if (target == "contrast") != (contrast is not None):
        raise ValueError("pass contrast=... exactly when target='contrast'")
    allowed = set().union(*(OPTIONS.get(m, set()) for m in names))
    if set(options) - allowed:
        raise ValueError(f"options {sorted(set(options) - allowed)} do not apply to {', '.join(names)}")
    arrays = {k: v for k, v in options.items() if k in ("key", "baseline")}
    static = tuple(sorted((k, v) for k, v in options.items() if k not in arrays))
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
