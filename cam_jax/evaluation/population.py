"""The populations an audit is measured on: honest models, and models manipulated to lie.

Honest: networks trained on the generated shapes with different seeds, widths,
depths (VGG-11/13/16/19, ResNet-18/34) and training lengths, and randomly
initialised ones; trained ones are cached as checkpoint files, so a second run
reads them. Manipulated: the paper's T1-T4 and the exact T1/T2 on the trained
models, constants drawn log-uniformly over wide ranges and kept only where the
manipulation moves GradCAM (`fools`), other stickers and target maps, chained
manipulations; and, held out, fine-tuning attacks, which no check was designed on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cam_jax.cams.methods import gradcam
from cam_jax.convert import checkpoint
from cam_jax.data import images, shapes, stickers
from cam_jax.manipulations import adaptive, fooling, paper
from cam_jax.manipulations.finetune import attack_batches, finetune
from cam_jax.metrics import change
from cam_jax.metrics.change import FOOLED
from cam_jax.model import Model
from cam_jax.models import registry, training
from cam_jax.models.init import init_params


class Spec(NamedTuple):
    """An honest model: `steps` 0 is a random initialisation."""

    arch: str
    width: float
    size: int
    steps: int
    seed: int

    @property
    def name(self) -> str:
        state = f"{self.steps}steps" if self.steps else "random"
        return f"{self.arch}_w{round(1 / self.width)}_{self.size}px_{state}_seed{self.seed}"


HONEST = (
    *(Spec("vgg11", 1 / 16, 64, steps, seed) for steps in (150, 400) for seed in (1, 2)),
    *(Spec("vgg11", 1 / 8, 64, 300, seed) for seed in (3, 4)),
    Spec("vgg13", 1 / 16, 64, 300, 5),
    *(Spec("vgg16", 1 / 16, 64, steps, 6) for steps in (200, 500)),
    Spec("vgg16", 1 / 16, 64, 300, 7),
    Spec("vgg16", 1 / 32, 96, 300, 8),
    Spec("vgg19", 1 / 16, 64, 300, 9),
    *(Spec("resnet18", 1 / 16, 96, steps, seed) for steps in (150, 400) for seed in (10, 11)),
    Spec("resnet34", 1 / 16, 96, 300, 12),
    Spec("vgg11", 1 / 8, 96, 1200, 13),
    Spec("resnet18", 1 / 8, 96, 1000, 14),
    Spec("vgg11", 1 / 16, 64, 0, 20),
    Spec("vgg16", 1 / 8, 64, 0, 21),
    Spec("vgg16", 1 / 16, 96, 0, 22),
    Spec("vgg19", 1 / 32, 64, 0, 23),
    Spec("resnet18", 1 / 16, 96, 0, 24),
    Spec("resnet34", 1 / 16, 64, 0, 25),
)
# A population small enough for a test: random models only, no training.
QUICK = (Spec("vgg11", 1 / 32, 32, 0, 1), Spec("resnet18", 1 / 16, 64, 0, 3))
STREAM = shapes.TRAIN_SEED + 2000  # training images of the population, apart from the default's streams
BATCH = 32
LEARNING_RATE = 3e-3


def honest_model(spec: Spec, cache: str | None = None) -> Model:
    """The model `spec` describes: read from `cache` if there, else trained (or initialised) and written there."""
    path = os.path.join(cache, spec.name + ".npz") if cache else None
    if path and os.path.exists(path):
        return checkpoint.load(path)[0]
    module = registry.build_model(spec.arch, num_classes=len(shapes.CLASSES), input_size=spec.size, width=spec.width)
    if spec.steps:
        batches = shapes.training_batches(STREAM + spec.seed, BATCH, spec.steps, spec.size)
        model = training.fit(module, batches, spec.steps, LEARNING_RATE, spec.seed)
    else:
        model = Model(module, init_params(module, spec.seed))
    if path:
        os.makedirs(cache, exist_ok=True)
        checkpoint.save(path, model)
    return model


def audit_images(model: Model, count: int = 16, seed: int = shapes.TEST_SEED) -> jax.Array:
    """`count` generated shapes at the model's input size, normalised as it expects: what an auditor has."""
    return jnp.asarray(images.normalize(shapes.batch(seed, range(count), model.input_size).pixels, model.preprocess))


def accuracy(model: Model, count: int = 256) -> float:
    """Top-1 accuracy on `count` generated test images (stream TEST_SEED, which no model trains on)."""
    data = shapes.batch(shapes.TEST_SEED, range(count), model.input_size)
    return training.accuracy(model, images.normalize(data.pixels, model.preprocess), data.labels)


def sticker_for(model: Model) -> np.ndarray:
    """The smiley sized to the model's input (`stickers.smiley_for`)."""
    return stickers.smiley_for(model.input_size)


def stickered(model: Model, sticker: np.ndarray, count: int = 16) -> jax.Array:
    """Test images with three copies of `sticker` each, normalised."""
    data = shapes.batch(shapes.TEST_SEED, range(count), model.input_size)
    pasted, _ = stickers.paste_by_index(data.pixels, np.arange(count), shapes.TEST_SEED, sticker)
    return jnp.asarray(images.normalize(pasted, model.preprocess))


def map_change(original: Model, manipulated: Model, x: jax.Array) -> float:
    """Mean over images of how far `manipulated`'s GradCAM moved from `original`'s (`change.moved`), in [0, 1]."""
    return float(jnp.mean(change.moved(gradcam(manipulated, x).cam, gradcam(original, x).cam)))


class Member(NamedTuple):
    """A manipulated model: what was done, to which honest model, and how much it moves GradCAM."""

    name: str
    family: str
    base: str
    model: Model
    change: float


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _random_sticker(rng: np.random.Generator, size: int) -> np.ndarray:
    """Another sticker than the smiley: a two-colour pattern or noise, (size, size, 3) uint8."""
    if rng.random() < 0.5:
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    colours = rng.integers(0, 256, (2, 3), dtype=np.uint8)
    return colours[(rng.random((size, size)) < 0.5).astype(int)]


def _random_target(rng: np.random.Generator, size: int) -> np.ndarray:
    """A target map for T2: the smiley or a random blob, (size, size) in [0, 1]."""
    if rng.random() < 0.5:
        return stickers.smiley_target(size)
    r, c = rng.uniform(0, size, 2)
    rows, cols = np.mgrid[:size, :size]
    return np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * max(1.0, size / 4) ** 2)).astype(np.float32)


def _branch_constants(rng: np.random.Generator) -> dict:
    return {"c_F": _log_uniform(rng, 1e1, 1e9), "c_G": _log_uniform(rng, 1e1, 1e5),
            "eps": _log_uniform(rng, 1e-3, 1e-1)}


def _t4(rng: np.random.Generator, model: Model) -> tuple[Model, np.ndarray]:
    sticker = sticker_for(model) if rng.random() < 0.5 else _random_sticker(rng, sticker_for(model).shape[0])
    t4 = paper.sticker_backdoor(model, sticker=sticker, tolerance=_log_uniform(rng, 2.0, 16.0),
                                **_branch_constants(rng))
    return t4, sticker


# family -> (rng, model) -> (manipulated model, sticker whose presence makes it lie, or None)
Draw = Callable[[np.random.Generator, Model], tuple[Model, np.ndarray | None]]
MANIPULATIONS: dict[str, Draw] = {
    "T1": lambda rng, m: (paper.constant_flat(m, c_A=_log_uniform(rng, 0.1, 1e3), c_W=_log_uniform(rng, 0.1, 1e3)),
                          None),
    "T2": lambda rng, m: (paper.constant_image(m, _random_target(rng, m.cam_size), c_I=_log_uniform(rng, 0.1, 1e3),
                                               c_W=_log_uniform(rng, 0.1, 1e2)), None),
    "T1 exact": lambda rng, m: (paper.constant_flat(m, c_A=_log_uniform(rng, 0.1, 1e3),
                                                    c_W=_log_uniform(rng, 0.1, 1e3), exact=True), None),
    "T2 exact": lambda rng, m: (paper.constant_image(m, _random_target(rng, m.cam_size),
                                                     c_I=_log_uniform(rng, 0.1, 1e3), c_W=_log_uniform(rng, 0.1, 1e2),
                                                     exact=True), None),
    "T3": lambda rng, m: (paper.semi_random(m, seed=int(rng.integers(1 << 30)), **_branch_constants(rng)), None),
    "T4": _t4,
    "T1 then T4": lambda rng, m: _t4(rng, paper.constant_flat(m, c_A=_log_uniform(rng, 1, 1e3),
                                                              c_W=_log_uniform(rng, 1, 1e3))),
    "T3 then T4": lambda rng, m: _t4(rng, paper.semi_random(m, seed=int(rng.integers(1 << 30)),
                                                            **_branch_constants(rng))),
}
TRIES = 5  # draws per family and base before giving up on finding constants that fool GradCAM
QUICK_MANIPULATIONS = ("T1", "T4")  # a weight edit and a branch, for a smoke test


def manipulated(base_name: str, base: Model, seed: int, families: tuple[str, ...] | None = None
                ) -> Iterator[Member]:
    """One member per family of `MANIPULATIONS` (or of `families`) on `base`: constants drawn until the result
    fools GradCAM (map change > FOOLED, on stickered images for T4), skipping draws the manipulation's own
    checks refuse; a family that never fools in TRIES draws is left out."""
    rng = np.random.default_rng(seed)
    clean = audit_images(base)
    for family in MANIPULATIONS if families is None else families:
        draw = MANIPULATIONS[family]
        for _ in range(TRIES):
            try:
                model, sticker = draw(rng, base)
            except ValueError:  # constants the manipulation refuses (a bias shift float32 cannot hold)
                continue
            moved = map_change(base, model, clean if sticker is None else stickered(base, sticker))
            if moved > FOOLED:
                yield Member(f"{base_name}/{family}", family, base_name, model, moved)
                break


ADAPTIVE_SCALES = (1.0, 1e3)  # the lie's size, drawn log-uniformly
LOGIT_TOLERANCE = 1e-3  # an adaptive attack keeps every logit within this, relative to the logits' scale


def adapted(base_name: str, base: Model, seed: int) -> Iterator[Member]:
    """Held out: one member per family of `adaptive.ADAPTIVE` (attacks written against the audit) on `base`,
    its scale drawn until it fools GradCAM while every logit stays within LOGIT_TOLERANCE."""
    rng = np.random.default_rng(seed)
    x = audit_images(base)
    logits = base(x)
    for family, draw in adaptive.ADAPTIVE.items():
        for _ in range(TRIES):
            model = draw(base, _log_uniform(rng, *ADAPTIVE_SCALES), int(rng.integers(1 << 30)))
            kept = float(jnp.abs(model(x) - logits).max()) <= LOGIT_TOLERANCE * float(jnp.abs(logits).max())
            moved = map_change(base, model, x)
            if kept and moved > FOOLED:
                yield Member(f"{base_name}/{family}", f"adaptive {family}", base_name, model, moved)
                break


FINETUNE_STEPS = 80
FINETUNE_LR = 1e-3


def finetuned(base_name: str, base: Model, loss: str, cache: str | None = None) -> Member:
    """Held out: `base` fine-tuned for FINETUNE_STEPS with the fooling loss `loss` (Heo et al.), cached."""
    path = os.path.join(cache, f"{base_name}_finetune_{loss}.npz") if cache else None
    if path and os.path.exists(path):
        model = checkpoint.load(path)[0]
    else:
        batches = attack_batches(STREAM + 500, 16, FINETUNE_STEPS, base.input_size, sticker_for(base), base.cam_size)
        model, _ = finetune(base, batches, fooling.get(loss, base.cam_size), optax.adam(FINETUNE_LR),
                            FINETUNE_STEPS, progress=False)
        if path:
            checkpoint.save(path, model)
    x = stickered(base, sticker_for(base)) if loss == "backdoor" else audit_images(base)
    return Member(f"{base_name}/finetune {loss}", f"finetune {loss}", base_name, model, map_change(base, model, x))
