"""The evaluation of a suite as one jitted step over a batch: every model x data x method x target.

A cell of the evaluation is (model, data, method, target, normalization); the paper's Tables 1 and 2
are the cells (gradcam, logit, max), a `Config` asks for more (the vulnerability matrix).

The fused step explains every model from one trunk pass per data. A model that splits into the
original and a branch (`Model.split`: T3, T4, the exact T1/T2) is explained from the original's own
A, logits and head backward (`core.extend` of the original's pass, taken `core.relative` to the
original's cotangent): where the branch is silent (T4 without a sticker) every added term is exactly
0, so its figures are the original's bit for bit. The paper's T1/T2 (a weight edit) run their own
head; their trunk is the original's by XLA's common subexpression elimination. `unfused_step` runs
each model on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from cam_jax.cams import targets
from cam_jax.cams.core import Pass, cotangent, extend, head_pass, relative
from cam_jax.cams.methods import METHODS
from cam_jax.cams.methods import run as run_methods
from cam_jax.cams.weightings import apply
from cam_jax.evaluation.config import PAPER, Config
from cam_jax.evaluation.suite import DATA, GRADCAM_BY_CONVENTION, PAPER_SUITE, Entry, build
from cam_jax.metrics import Observed, change, localisation, measure
from cam_jax.model import Model


class Explained(NamedTuple):
    """One model's explanations of one batch: every method x target of a `Config`."""

    logits: jax.Array  # (B, C)
    cams: jax.Array  # (methods, targets, B, h, w) raw maps; input-space ones pooled to A's resolution
    injected: jax.Array  # (B, h, w) A's last channel: the map a manipulation wrote there


class Sample(NamedTuple):
    """The first image of a batch as one (model, data) row explains it: what the figures show."""

    cams: jax.Array  # (methods, targets, h, w) raw maps
    top: jax.Array  # () int32, the top class: the one every target explains


def second_class(logits: jax.Array) -> jax.Array:
    """(B,) each image's runner-up class: what the "contrast" target contrasts with."""
    return jnp.argsort(logits, axis=-1)[:, -2].astype(jnp.int32)


def _targets(config: Config, second: jax.Array) -> list[targets.Target]:
    return [targets.get(t, second if t == "contrast" else None) for t in config.targets]


def _cotangents(logits: jax.Array, scores: list[targets.Target]) -> tuple[jax.Array, jax.Array]:
    """(classes (T, B), dS/dlogits (T, B, C)) for every target, each image's top class."""
    pairs = [cotangent(logits, None, score) for score in scores]
    return jnp.stack([c for c, _ in pairs]), jnp.stack([d for _, d in pairs])


def _cams(model: Model, x: jax.Array, run: Pass, classes: jax.Array, grads: tuple[jax.Array, ...],
          scores: list[targets.Target], config: Config) -> jax.Array:
    """(methods, targets, B, h, w) from a head pass, the classes (T, B) and dS/dA as blocks of channels,
    each (T, B, h, w, K_i)."""
    maps = []
    for name in config.methods:
        method = METHODS[name]
        if method.kind == "weighting":
            weighting = GRADCAM_BY_CONVENTION[config.convention] if name == "gradcam" else method.fn
            maps.append(jax.vmap(lambda g, w=weighting: jax.nn.relu(apply(w, run.a, g)))(grads))
        elif method.kind == "head":
            maps.append(method.fn(model, run.a, run.context, run.logits, classes, tuple(scores)))
        else:  # an input-space map (B, H, W), ScoreCAM's or a defence's, compared at A's resolution (area average)
            per_target = [run_methods(model, x, c, (name,), score, {})[name].cam
                          for c, score in zip(classes, scores, strict=True)]
            maps.append(jnp.stack([at_resolution(cam, run.a.shape[1:3]) for cam in per_target]))
    return jnp.stack(maps)


def at_resolution(cam: jax.Array, size: tuple[int, int]) -> jax.Array:
    """(B, H, W) maps at (B, *size), area-averaged (antialiased linear): how the matrix compares an
    input-space map with A's."""
    return jax.image.resize(cam, (*cam.shape[:-2], *size), "linear", antialias=True)


def explain_model(model: Model, x: jax.Array, second: jax.Array, config: Config = PAPER) -> Explained:
    """One model on its own: one trunk pass, one head backward per target, every method of the config.

    Args:
      x: (B, H, W, 3) normalised images; second: (B,) second classes for the "contrast" target.
    """
    run = head_pass(model, *model.encode(x))
    scores = _targets(config, second)
    classes, dy = _cotangents(run.logits, scores)
    grads = jax.vmap(run.backward)(dy)
    return Explained(run.logits, _cams(model, x, run, classes, grads, scores, config), run.a[..., -1])


def _extends(model: Model, original: Model):
    """`model.split()` when its base is `original` itself (the same module and params object), else None."""
    parts = model.split()
    if parts is None or parts.base.module != original.module or parts.base.params is not original.params:
        return None
    return parts


def explain_models(models: Mapping[str, Model], x: jax.Array, config: Config = PAPER) -> dict[str, Explained]:
    """Every model of `models` ("original" and what was built from it) on one batch, sharing the
    original's trunk and head backward with each model that extends it by a branch (module docstring)."""
    original = models["original"]
    run_o = head_pass(original, *original.encode(x))
    second = second_class(run_o.logits)
    scores = _targets(config, second)
    classes_o, dy_o = _cotangents(run_o.logits, scores)
    grads_o = jax.vmap(run_o.backward)(dy_o)
    out = {"original": Explained(run_o.logits, _cams(original, x, run_o, classes_o, grads_o, scores, config),
                                 run_o.a[..., -1])}
    for name, model in models.items():
        if name == "original":
            continue
        parts = _extends(model, original)
        if parts is None:
            out[name] = explain_model(model, x, second, config)
            continue
        s = parts.branch(x)
        run = extend(run_o, parts.g, s)
        classes, dy = _cotangents(run.logits, scores)
        # dS/dy is a function of the logits: where they are the original's, so is it (a second copy of
        # the softmax's derivative in the same program was measured to round differently).
        dy = jnp.where((run.logits == run_o.logits).all(-1)[None, :, None], dy_o, dy)

        def backward(dy, dy_ref, grads_ref, s=s, g=parts.g):
            base = run_o._replace(backward=relative(run_o.backward, dy_ref, grads_ref))
            return extend(base, g, s).backward(dy)

        grads = jax.vmap(backward)(dy, dy_o, grads_o)
        out[name] = Explained(run.logits, _cams(model, x, run, classes, grads, scores, config), s)
    return out


def _measure(e: Explained, reference: Explained | None, goal: jax.Array | None, labels: jax.Array,
             masks: jax.Array | None, config: Config, score_change: str) -> dict[str, jax.Array]:
    """{metric: (methods, targets, normalizations, B)} of one (model, data) row (`metrics.measure`)."""
    cams = e.cams
    if goal is not None and goal.ndim == 3:  # the injected map, the same for every cell
        goal = jnp.broadcast_to(goal, cams.shape)
    observed = lambda cam, ref, want: measure(  # noqa: E731
        Observed(e.logits, labels, cam, masks, None if reference is None else reference.logits, ref, want,
                 change.dy_inf if score_change == "max" else change.dy_mean), config.normalizations)
    return jax.vmap(jax.vmap(observed))(cams, None if reference is None else reference.cams, goal)


def evaluate(explained: Mapping[tuple[str, str], Explained], labels: jax.Array, masks: jax.Array | None,
             suite: tuple[Entry, ...] = PAPER_SUITE, config: Config = PAPER) -> dict[tuple[str, str], dict]:
    """Per-image metrics for every (model, data) row: {metric: (methods, targets, normalizations, B)},
    NaN where a figure does not apply; `explained` holds each (model, data)'s `Explained`.

    Each entry's reference on each data is the map written into A^{K+1} ("injected": ones, the smiley,
    F(x)) or the original's own explanation by the same method and target ("original": T4 on clean
    images). "l1_original" compares with the original's explanation by the same method and target.
    Localisation uses the object masks on both clean and sticker images.
    """
    out = {}
    for data in DATA:
        entries = [e for e in suite if data in e.references]
        if data == "sticker" and not entries:
            continue
        original = explained[("original", data)]
        out[("original", data)] = _measure(original, None, None, labels, masks, config, "max")
        for e in entries:
            mine = explained[(e.name, data)]
            goal = original.cams if e.references[data] == "original" else mine.injected
            out[(e.name, data)] = _measure(mine, original, goal, labels, masks, config, e.score_change)
    if masks is not None:  # what a map that knows nothing scores: a random point, uniform mass
        out[("chance", "clean")] = {"pointing": localisation.pointing_chance(masks),
                                    "mass": masks.mean(axis=(-2, -1))}
    return out


def samples(explained: Mapping[tuple[str, str], Explained]) -> dict[tuple[str, str], Sample]:
    """Each row's explanation of the batch's first image (`Sample`)."""
    return {row: Sample(e.cams[:, :, 0], jnp.argmax(e.logits[0]).astype(jnp.int32)) for row, e in explained.items()}


def maps(explained: Mapping[tuple[str, str], Explained], config: Config) -> dict[tuple[str, str], jax.Array]:
    """Each row's raw maps (methods, targets, B, h, w) when the config measures quality metrics, else {}."""
    return {row: e.cams for row, e in explained.items()} if config.metrics else {}


def _names(suite: tuple[Entry, ...], data: str) -> list[str]:
    entries = [e.name for e in suite if data in e.references]
    return ["original", *entries] if data == "clean" or entries else []


def fused_step(config: Config = PAPER, suite: tuple[Entry, ...] = PAPER_SUITE):
    """jit((model, clean, sticker, labels, masks) -> (per-image metrics, samples, `maps`)), one trunk pass per
    data."""

    def step(model, clean, sticker, labels, masks):
        models, inputs = build(model, config, suite), {"clean": clean, "sticker": sticker}
        explained = {}
        for data in DATA:
            if names := _names(suite, data):
                out = explain_models({n: models[n] for n in names}, inputs[data], config)
                explained.update({(n, data): v for n, v in out.items()})
        return evaluate(explained, labels, masks, suite, config), samples(explained), maps(explained, config)

    return jax.jit(step)


def unfused_step(config: Config = PAPER, suite: tuple[Entry, ...] = PAPER_SUITE):
    """The same with each model jitted and run on its own: one trunk pass per (model, data)."""
    one = jax.jit(explain_model, static_argnames="config")
    second_of = jax.jit(lambda model, x: second_class(model(x)))
    finish = jax.jit(lambda explained, labels, masks: (evaluate(explained, labels, masks, suite, config),
                                                         samples(explained), maps(explained, config)))

    def step(model, clean, sticker, labels, masks):
        models, inputs = build(model, config, suite), {"clean": clean, "sticker": sticker}
        explained = {}
        for data in DATA:
            if names := _names(suite, data):
                second = second_of(models["original"], inputs[data])
                explained.update({(n, data): one(models[n], inputs[data], second, config) for n in names})
        return finish(explained, labels, masks)

    return step
