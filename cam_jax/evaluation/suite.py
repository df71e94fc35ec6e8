"""The evaluation as data: which models are compared, what each one's explanation should show, which rows.

An `Entry` is one manipulated model: how it is built from the original, the
data it is evaluated on with the reference its map is compared with on each ("injected": the map the
manipulation wrote into A^{K+1}; "original": the original model's own
explanation, for a backdoor on clean images), the table it appears in and the
paper's figures for it. A new manipulation (or a fine-tuned attack) is one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from cam_jax.audit import audit_model, excluded
from cam_jax.cams.weightings import Weighting, grad_cam, grad_cam_authors
from cam_jax.data import stickers
from cam_jax.evaluation import population
from cam_jax.evaluation.config import PAPER, Config
from cam_jax.manipulations import adaptive, constant_flat, constant_image, editable, semi_random, sticker_backdoor
from cam_jax.model import Model
from cam_jax.models.vgg import VGG

DATA = ("clean", "sticker")
Figures = tuple[float | None, float | None, float | None]  # the paper's accuracy, mean ||dy||_inf, L1


class Entry(NamedTuple):
    """One manipulated model of the suite.

    Attributes:
      name: its key in results.json and the tables ("T1").
      title: how figures and the README name it ("T1 constant").
      build: (original model, config, input size) -> the manipulated model.
      references: data ("clean" | "sticker") -> "injected" | "original", the map its
        explanation is compared with on that data.
      table: 1 (clean images only) or 2 (clean and sticker images), as in the paper.
      paper: data -> the paper's (accuracy, mean ||dy||_inf, L1), where it reports them.
      score_change: "max" (||y_o - y_n||_inf, SPEC.md) or "mean" (over classes, as the
        authors' table reported T3).
    """

    name: str
    title: str
    build: Callable[[Model, Config], Model]
    references: Mapping[str, str]
    table: int
    paper: Mapping[str, Figures]
    score_change: str = "max"


def sticker(config: Config, input_size: int) -> np.ndarray:
    """(s, s, 3) uint8: the smiley sticker pasted on images of `input_size` pixels and detected by T4."""
    return stickers.sticker_pixels(stickers.smiley(config.sticker_pixels(input_size)))


PAPER_SUITE: tuple[Entry, ...] = (
    Entry("T1", "T1 constant", lambda m, c: constant_flat(m, exact=c.exact), {"clean": "injected"}, 1,
          {"clean": (0.71594, 0.01713, 0.00513)}),
    Entry("T2", "T2 smiley", lambda m, c: constant_image(m, exact=c.exact), {"clean": "injected"}, 1,
          {"clean": (0.71594, 0.00454, 0.01079)}),
    Entry("T3", "T3 semi-random", lambda m, c: semi_random(m, seed=c.seed), {"clean": "injected"}, 1,
          {"clean": (0.71592, 0.00000, 0.05932)}),
    Entry("T4", "T4 sticker", lambda m, c: sticker_backdoor(m, sticker=sticker(c, m.input_size)),
          {"clean": "original", "sticker": "injected"}, 2,
          {"clean": (0.71592, 0.00000, 0.00000), "sticker": (0.69048, 0.00000, 0.00006)}),
)
# The authors' code where the paper is vague (SPEC.md): T3's branch drawn with PyTorch's default
# initialisation (random biases) and its score change averaged over classes, T4's c_F = 1e10.
AUTHORS_SUITE: tuple[Entry, ...] = (
    *PAPER_SUITE[:2],
    PAPER_SUITE[2]._replace(build=lambda m, c: semi_random(m, seed=c.seed, torch_init=True), score_change="mean"),
    PAPER_SUITE[3]._replace(build=lambda m, c: sticker_backdoor(m, sticker=sticker(c, m.input_size), c_F=1e10)),
)
SUITES = {"paper": PAPER_SUITE, "authors": AUTHORS_SUITE}
# The bit-exact T1/T2 beside the paper's, for the vulnerability matrix (in neither of the paper's tables).
EXACT_ENTRIES: tuple[Entry, ...] = (
    Entry("T1-exact", "T1 constant (exact)", lambda m, c: constant_flat(m, exact=True), {"clean": "injected"}, 0, {}),
    Entry("T2-exact", "T2 smiley (exact)", lambda m, c: constant_image(m, exact=True), {"clean": "injected"}, 0, {}),
)
# GradCAM as each convention computes it: the paper's map after the ReLU; the authors' gradients
# before it and values after it, on a VGG whose A is taken before the ReLU.
GRADCAM_BY_CONVENTION: Mapping[str, Weighting] = {"paper": grad_cam, "authors": grad_cam_authors}


def original(model: Model, config: Config) -> Model:
    """The model as the convention explains it: unchanged for the paper; for the authors' code, a VGG
    whose A is conv5_3 before its ReLU (their hook), the ReLU moved into the head."""
    if config.convention == "paper":
        return model
    if not isinstance(model.module, VGG):
        raise ValueError(f"the authors' convention is defined for VGG, not {type(model.module).__name__}")
    return model.replace(module=model.module.clone(cam_pre_relu=True))


def attacked_entries(attacked: Mapping[str, Model]) -> tuple[Entry, ...]:
    """One entry "FT-<name>" per model attacked by fine-tuning (`scripts/finetune_attack.py`), in no
    paper table: its own weights, explained on clean and stickered images and compared with the
    original's explanation there (a learned attack has no one target map)."""
    return tuple(Entry(f"FT-{name}", f"{name} (fine-tuned)", lambda m, c, a=model: original(a, c),
                       {"clean": "original", "sticker": "original"}, 0, {}) for name, model in attacked.items())


def adaptive_entries(model: Model, config: Config) -> tuple[Entry, ...]:
    """One entry "A-<name>" per attack written against the audit (`manipulations.adaptive`: `ATTACKS`, and
    on a VGG the weight edits of `VERSIONS`), compared on clean images with the original's explanation.
    Built here from `model`, not in the compiled step: some size their constants on concrete values."""
    base = original(model, config)
    attacks = {**adaptive.ATTACKS, **(adaptive.VERSIONS if isinstance(base.module, VGG) else {})}
    built = {name: attack(base) for name, attack in attacks.items()}
    return tuple(Entry(f"A-{name}", f"{name} (adaptive)", lambda m, c, a=attacked: a, {"clean": "original"}, 0, {})
                 for name, attacked in built.items())


# The original model's rows: its accuracy on each data (paper: ImageNet validation, VGG-16).
ORIGINAL_PAPER: Mapping[str, Figures] = {"clean": (0.71592, None, None), "sticker": (0.69048, None, None)}


def model_names(suite: tuple[Entry, ...] = PAPER_SUITE) -> tuple[str, ...]:
    """"original" and every entry's name, in order."""
    return ("original", *(e.name for e in suite))


def rows(suite: tuple[Entry, ...] = PAPER_SUITE) -> tuple[tuple[str, str], ...]:
    """(model, data) of every row: each model on clean images, then the original and the entries on stickers."""
    out = [("original", "clean")] + [(e.name, "clean") for e in suite if "clean" in e.references]
    stickered = [(e.name, "sticker") for e in suite if "sticker" in e.references]
    return tuple(out + ([("original", "sticker")] + stickered if stickered else []))


def paper_figures(suite: tuple[Entry, ...] = PAPER_SUITE) -> dict[tuple[str, str], Figures]:
    """(model, data) -> the paper's figures, for the rows it reports."""
    out = {("original", data): figures for data, figures in ORIGINAL_PAPER.items()}
    return {**out, **{(e.name, data): figures for e in suite for data, figures in e.paper.items()}}


def build(model: Model, config: Config = PAPER, suite: tuple[Entry, ...] = PAPER_SUITE) -> dict[str, Model]:
    """{"original": model, entry name: manipulated model} for every entry, under the config's convention.

    Raises:
      ValueError: the paper's T1/T2 (weight edits of a VGG's or ResNet's last conv and first dense layer)
        asked of a model that has no such layers (a ViT): its T1/T2 are the exact ones.
    """
    if not config.exact and not editable(model):
        raise ValueError(f"the paper's T1/T2 edit the last conv and first dense layer of a VGG or ResNet; a "
                         f"{type(model.module).__name__} has neither: evaluate it with exact=True (--exact), the "
                         "T1/T2 that append a channel beside A")
    model = original(model, config)
    return {"original": model, **{e.name: e.build(model, config) for e in suite}}


AUDIT_IMAGES = 16  # generated shapes each recommended row's audit reads


def recommended_entries(entries: tuple[Entry, ...], model: Model, config: Config) -> tuple[Entry, ...]:
    """One entry "<name>+rec" per entry: its model with the channels of A its audit flags left out of every
    explanation (`audit.excluded`), compared on every data with the original's explanation (the
    recommendation's aim is the map the manipulation hid). Each is audited here, on AUDIT_IMAGES generated
    shapes, so that the evaluation's compiled step knows the channels; one whose audit refuses those images
    has no such row."""
    x = population.audit_images(model, AUDIT_IMAGES)
    base = original(model, config)
    flagged = {}
    for e in entries:
        try:
            flagged[e.name] = audit_model(e.build(base, config), x).channels
        except ValueError:  # the audit refuses the images for this model: no recommendation to read
            continue
    return tuple(Entry(f"{e.name}+rec", f"{e.title}, as the audit recommends",
                       lambda m, c, e=e: excluded(e.build(m, c), flagged[e.name]),
                       {data: "original" for data in e.references}, 0, {}) for e in entries if e.name in flagged)


def of(config: Config, attacked: Mapping[str, Model] | None = None, model: Model | None = None
       ) -> tuple[Entry, ...]:
    """The entries `config` evaluates: its convention's suite, the exact T1/T2 in the matrix, a row per
    model attacked by fine-tuning, with `config.adaptive` the attacks written against the audit, and with
    `config.recommend` each of those as the audit recommends (`model`, the original, is what both start
    from)."""
    if model is None and (config.recommend or config.adaptive):
        raise ValueError("config.recommend and config.adaptive start from the original: pass the original model")
    entries = (SUITES[config.convention] + (EXACT_ENTRIES if config.matrix else ()) + attacked_entries(attacked or {})
               + (adaptive_entries(model, config) if config.adaptive else ()))
    if not config.recommend:
        return entries
    return entries + recommended_entries(entries, model, config)


ROWS = rows()
