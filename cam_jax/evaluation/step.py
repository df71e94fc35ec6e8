"""The evaluation of a suite as one jitted step over a batch: every model x data x target x method.

A cell of the evaluation is (model, data, method, target, normalization). The
paper's Tables 1 and 2 are the cells (gradcam, logit, max); `Grid` asks for more
(the vulnerability matrix).

The fused step explains every model from one trunk pass per data. A model that
extends the original by a branch (T3, T4, the exact T1/T2: A = [A_o, F(x)],
y = y_o + G(F(x))) is explained from the original's own A, logits and head
backward, as one expression: y_n = y_o + G, dS/dA_n^{1..K} = dS/dA_o + J_head^T
(dS_n/dy - dS_o/dy). Where the branch is silent (T4 without a sticker) every
added term is exactly 0, so its figures are the original's bit for bit. The
paper's T1/T2 (a weight edit: a 513-filter conv and a wider fc1) run their own
head; their trunk is the original's by XLA's common subexpression elimination
(`tests/test_evaluate.py` counts the convolutions). `unfused_step` runs each
model on its own.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from cam_jax.cams import targets as targets_module
from cam_jax.cams.engine import head_backward, score_cotangent
from cam_jax.cams.methods import OTHERS
from cam_jax.cams.perturbation import ablated_logits, ablation_from_logits
from cam_jax.cams.weightings import WEIGHTINGS, apply
from cam_jax.evaluation import metrics
from cam_jax.evaluation.suite import DATA, GRADCAM_BY_CONVENTION, PAPER_SUITE, Entry, Settings, build
from cam_jax.manipulations.combinators import branch_of
from cam_jax.model import Model

METRICS = ("correct", "dy_inf", "l1", "l1_original", "pointing", "mass", "collapsed")
# The methods `--methods all` evaluates: every one computed from A and one head backward
# (`--methods NAME` adds any other, at the price of its own passes through the network).
MATRIX_METHODS: tuple[str, ...] = (*WEIGHTINGS, "ablationcam")


class Grid(NamedTuple):
    """Which explanations each model is evaluated with (names as `scripts/explain.py` spells them).

    Per-image metrics come as arrays (methods, targets, normalizations, B) in this order.
    """

    methods: tuple[str, ...] = ("gradcam",)
    targets: tuple[str, ...] = ("logit",)
    normalizations: tuple[str, ...] = ("max",)

    def index(self, method: str, target: str, normalization: str) -> tuple[int, int, int]:
        return self.methods.index(method), self.targets.index(target), self.normalizations.index(normalization)


PAPER_GRID = Grid()


class Explained(NamedTuple):
    """One model's explanations of one batch: every method x target of a `Grid`."""

    logits: jax.Array  # (B, C)
    cams: jax.Array  # (methods, targets, B, h, w) raw maps; input-space ones pooled to A's resolution
    injected: jax.Array  # (B, h, w) A's last channel: the map a manipulation wrote there


def second_class(logits: jax.Array) -> jax.Array:
    """(B,) each image's runner-up class: what the "contrast" target contrasts with."""
    return jnp.argsort(logits, axis=-1)[:, -2].astype(jnp.int32)


def _cotangents(logits: jax.Array, contrast: jax.Array, grid: Grid) -> tuple[jax.Array, jax.Array]:
    """(classes (T, B), dS/dlogits (T, B, C)) for every target of the grid, each image's top class."""
    pairs = [score_cotangent(logits, None, targets_module.get(t), contrast) for t in grid.targets]
    return jnp.stack([c for c, _ in pairs]), jnp.stack([d for _, d in pairs])


def _cams(model: Model, x, a, logits, classes, grads, contrast, grid: Grid, convention: str) -> jax.Array:
    """(methods, targets, B, h, w) from A (B, h, w, K), logits, classes (T, B) and dS/dA as blocks of
    channels (`engine.head_backward`), each (T, B, h, w, K_i)."""
    maps = []
    ablated = ablated_logits(model.head, a) if "ablationcam" in grid.methods else None
    for method in grid.methods:
        if method in WEIGHTINGS:
            weighting = GRADCAM_BY_CONVENTION[convention] if method == "gradcam" else WEIGHTINGS[method]
            maps.append(jax.vmap(lambda g: jax.nn.relu(apply(weighting, a, g)))(grads))  # noqa: B023
            continue
        per_target = []
        for t, target in enumerate(grid.targets):
            score = targets_module.get(target)
            if method == "ablationcam":
                per_target.append(ablation_from_logits(a, logits, ablated, classes[t], score, contrast, model.appended))
            else:  # an input-space map (B, H, W) or ScoreCAM's, compared at A's resolution (area average)
                cam = OTHERS[method](model, x, classes[t], score, contrast).cam
                per_target.append(jax.image.resize(cam, (*cam.shape[:-2], *a.shape[1:3]), "linear", antialias=True))
        maps.append(jnp.stack(per_target))
    return jnp.stack(maps)


def explain_model(model: Model, x: jax.Array, contrast: jax.Array, grid: Grid = PAPER_GRID,
                  convention: str = "paper") -> Explained:
    """One model on its own: one trunk pass, one head backward per target, every method of the grid.

    Args:
      x: (B, H, W, 3) normalised images; contrast: (B,) second classes for the "contrast" target.
      convention: "paper" or "authors": how "gradcam" weighs (`suite.GRADCAM_BY_CONVENTION`).
    """
    a = model.features(x)
    logits, backward = head_backward(model, a)
    classes, dy = _cotangents(logits, contrast, grid)
    grads = jax.vmap(backward)(dy)
    return Explained(logits, _cams(model, x, a, logits, classes, grads, contrast, grid, convention), a[..., -1])


def explain_models(models: Mapping[str, Model], x: jax.Array, grid: Grid = PAPER_GRID,
                   convention: str = "paper") -> dict[str, Explained]:
    """Every model of `models` ("original" and what was built from it) on one batch, sharing the
    original's trunk and head backward with each model that extends it by a branch (module docstring)."""
    original = models["original"]
    a = original.features(x)
    logits, backward = head_backward(original, a)
    backward = jax.vmap(backward)
    contrast = second_class(logits)
    classes_o, dy_o = _cotangents(logits, contrast, grid)
    grads_o = backward(dy_o)
    out = {"original": Explained(logits, _cams(original, x, a, logits, classes_o, grads_o, contrast, grid, convention),
                                 a[..., -1])}
    for name, model in models.items():
        if name == "original":
            continue
        parts = branch_of(model, original)
        if parts is None:
            out[name] = explain_model(model, x, contrast, grid, convention)
            continue
        branch, g = parts
        s = branch(x)
        shift, g_vjp = jax.vjp(g, s)
        logits_n = logits + shift[:, None]
        classes, dy = _cotangents(logits_n, contrast, grid)
        # dS/dy is a function of the logits: where they are the original's, so is it (a second copy of
        # the softmax's derivative in the same program was measured to round differently).
        dy = jnp.where((logits_n == logits).all(-1)[None, :, None], dy_o, dy)
        (grads_s,) = jax.vmap(g_vjp)(dy.sum(-1))  # every logit moves by G: dS/ds = sum_c dS/dy_c dG/ds
        grads = (*map(operator.add, grads_o, backward(dy - dy_o)), grads_s[..., None])
        a_n = jnp.concatenate([a, s[..., None]], -1)
        out[name] = Explained(logits_n, _cams(model, x, a_n, logits_n, classes, grads, contrast, grid, convention), s)
    return out


def evaluate(explained: Mapping[tuple[str, str], Explained], labels: jax.Array, masks: jax.Array | None,
             suite: tuple[Entry, ...] = PAPER_SUITE, grid: Grid = PAPER_GRID) -> dict[tuple[str, str], dict]:
    """Per-image metrics for every (model, data) row: {metric: (methods, targets, normalizations, B)},
    NaN where a figure does not apply; `explained` holds each (model, data)'s `Explained`.

    Each entry's target on each data is the map written into A^{K+1} ("injected":
    ones, the smiley, F(x)) or the original's own explanation by the same method and
    target ("original": T4 on clean images). "l1_original" compares with the
    original's explanation by the same method and target. Localisation uses the
    object masks on both clean and sticker images.
    """
    shape = (len(grid.methods), len(grid.targets), len(grid.normalizations), labels.shape[0])
    nan = jnp.full(shape, jnp.nan)

    def per_map(f, cams):  # f over (B, h, w), for every (method, target)
        return jax.vmap(jax.vmap(f))(cams)

    def row(e: Explained, reference: Explained | None, target, score_change="max"):
        change = metrics.dy_inf if score_change == "max" else metrics.dy_mean
        over_norms = lambda f: jnp.stack([f(n) for n in grid.normalizations], axis=2)  # noqa: E731
        per_image = lambda v: jnp.broadcast_to(v, shape)  # noqa: E731
        out = {
            "correct": per_image(metrics.correct(e.logits, labels).astype(jnp.float32)),
            "dy_inf": nan if reference is None else per_image(change(reference.logits, e.logits)),
            "l1": nan if target is None else over_norms(lambda n: metrics.l1(e.cams, target, n)),
            "l1_original": nan if reference is None else over_norms(lambda n: metrics.l1(e.cams, reference.cams, n)),
            "collapsed": per_image((e.cams.max(axis=(-2, -1)) == 0).astype(jnp.float32)[:, :, None]),
        }
        if masks is None:
            return {**out, "pointing": nan, "mass": nan}
        hit = per_map(lambda c: metrics.pointing_game(c, masks).astype(jnp.float32), e.cams)
        return {**out, "pointing": per_image(hit[:, :, None]),
                "mass": over_norms(lambda n: per_map(lambda c: metrics.mass_in_mask(c, masks, n), e.cams))}

    out = {}
    for data in DATA:
        entries = [e for e in suite if data in e.targets]
        if data == "sticker" and not entries:
            continue
        original = explained[("original", data)]
        out[("original", data)] = row(original, None, None)
        for e in entries:
            mine = explained[(e.name, data)]
            goal = original.cams if e.targets[data] == "original" else mine.injected
            out[(e.name, data)] = row(mine, original, goal, e.score_change)
    if masks is not None:  # what a map that knows nothing scores: a random point, uniform mass
        out[("chance", "clean")] = {"pointing": metrics.pointing_chance(masks), "mass": masks.mean(axis=(-2, -1))}
    return out


def _names(suite: tuple[Entry, ...], data: str) -> list[str]:
    entries = [e.name for e in suite if data in e.targets]
    return ["original", *entries] if data == "clean" or entries else []


def fused_step(settings: Settings = Settings(), suite: tuple[Entry, ...] = PAPER_SUITE, grid: Grid = PAPER_GRID):
    """jit((model, clean, sticker, labels, masks) -> per-image metrics), one trunk pass per data."""

    def step(model, clean, sticker, labels, masks):
        models, inputs = build(model, settings, suite), {"clean": clean, "sticker": sticker}
        explained = {}
        for data in DATA:
            if names := _names(suite, data):
                out = explain_models({n: models[n] for n in names}, inputs[data], grid, settings.convention)
                explained.update({(n, data): v for n, v in out.items()})
        return evaluate(explained, labels, masks, suite, grid)

    return jax.jit(step)


def unfused_step(settings: Settings = Settings(), suite: tuple[Entry, ...] = PAPER_SUITE, grid: Grid = PAPER_GRID):
    """The same metrics with each model jitted and run on its own: one trunk pass per (model, data)."""
    one = jax.jit(explain_model, static_argnames=("grid", "convention"))
    contrast_of = jax.jit(lambda model, x: second_class(model(x)))
    metrics_of = jax.jit(lambda explained, labels, masks: evaluate(explained, labels, masks, suite, grid))

    def step(model, clean, sticker, labels, masks):
        models, inputs = build(model, settings, suite), {"clean": clean, "sticker": sticker}
        explained = {}
        for data in DATA:
            if names := _names(suite, data):
                contrast = contrast_of(models["original"], inputs[data])
                explained.update({(n, data): one(models[n], inputs[data], contrast, grid, settings.convention)
                                  for n in names})
        return metrics_of(explained, labels, masks)

    return step
