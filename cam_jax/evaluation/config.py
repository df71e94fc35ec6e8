"""What one evaluation runs, as one frozen value checked when it is made, and its presets.

A `Config` names the model, the data, the manipulations' options and the cells (method x target x
normalization) each model is explained in; `evaluate(config)` runs it. The presets are plain values:
`PAPER` (the paper's Tables 1 and 2), `AUTHORS` (the same under the authors' code, SPEC.md) and
`MATRIX` (the vulnerability matrix: every method computed from A, every target, both normalisations).
Being frozen and hashable, a config is also what the compiled evaluation step is specialised on.

Example:
  >>> config = MATRIX.replace(limit=64)
  >>> config.limit, config.matrix, config.index("gradcam", "logit", "max")
  (64, True, (0, 0, 0))
"""

from __future__ import annotations

import dataclasses

from cam_jax.cams.maps import NORMALIZATIONS
from cam_jax.cams.methods import DEFENCES, METHODS
from cam_jax.cams.targets import TARGETS
from cam_jax.cams.weightings import WEIGHTINGS
from cam_jax.metrics.quality import QUALITY
from cam_jax.models.registry import ARCHS

CONVENTIONS = ("paper", "authors")  # the paper's text, or what the authors' code computed (SPEC.md)
DATASETS = ("shapes", "imagenet2012")
# The methods the matrix evaluates by default: every one computed from A and one head backward (any
# other, named in `methods`, costs its own passes through the network).
MATRIX_METHODS: tuple[str, ...] = (*WEIGHTINGS, "ablationcam")
PAPER_CELL = ("gradcam", "logit", "max")


def _names(field: str, given: tuple[str, ...], known) -> None:
    if not isinstance(given, tuple) or not given:
        raise ValueError(f"{field} must be a non-empty tuple of names, got {given!r}")
    for name in given:
        if name not in known:
            raise ValueError(f"unknown {field[:-1]} {name!r}; choose from {', '.join(known)}")
    if len(set(given)) != len(given):
        raise ValueError(f"{field} names one twice: {given}")


@dataclasses.dataclass(frozen=True)
class Config:
    """One evaluation. Every field is checked when the config is made (a `ValueError` naming it).

    Attributes:
      weights: a weight file (cam_jax .npz, torchvision .pth, Keras .h5); None for the bundled default.
      arch: the ImageNet architecture `weights` must hold ("vgg16", "resnet50", ...); None for the
        bundled default model or any file evaluated on its own data.
      attacked: weight files of models attacked by fine-tuning, each a row "FT-<file stem>".
      adaptive: the attacks written against the audit (`manipulations.adaptive`) as rows "A-<name>".
      recommend: each manipulated or attacked model also as the audit recommends reading it, a row
        "<name>+rec": every explanation without the channels of A its audit flags (`audit.excluded`).
      data: "shapes" or "imagenet2012"; None picks imagenet2012 with `arch`, else shapes.
      data_dir: the folder holding ILSVRC2012_img_val.tar (imagenet2012).
      limit: images evaluated, the first ones; None for 512 shapes or all of ImageNet's validation set.
      convention: "paper" or "authors".
      exact: the bit-exact T1/T2 instead of the paper's weight edits.
      seed: sticker placement and T3's random branch.
      sticker_size: pixels; None: 14 at 224 px and above, else 7 (the smiley is drawn in 7x7 cells).
      methods, targets, normalizations: the cells each model is explained in (the first method is
        always "gradcam", the paper's); the paper's cell alone unless `matrix`.
      metrics: quality metrics (`metrics.quality.QUALITY`) measured in every cell of the matrix.
      batch_size: images per step (the memory bound), over all devices.
      fused: explain the models that extend the original from its computation (else one by one).
      distributed: call `jax.distributed.initialize()` first (several hosts).
      progress: show a progress bar.
    """

    weights: str | None = None
    arch: str | None = None
    attacked: tuple[str, ...] = ()
    adaptive: bool = False
    recommend: bool = False
    data: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    convention: str = "paper"
    exact: bool = False
    seed: int = 0
    sticker_size: int | None = None
    methods: tuple[str, ...] = ("gradcam",)
    targets: tuple[str, ...] = ("logit",)
    normalizations: tuple[str, ...] = ("max",)
    metrics: tuple[str, ...] = ()
    batch_size: int = 16
    fused: bool = True
    distributed: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.arch is not None and self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {sorted(ARCHS)}")
        if self.arch is not None and self.weights is None:
            raise ValueError(f"arch {self.arch} needs weights, a file of them (see weights/README.md to get and "
                             "convert them)")
        if self.data is not None and self.data not in DATASETS:
            raise ValueError(f"unknown data {self.data!r}; choose one of {DATASETS}")
        if self.dataset == "imagenet2012" and self.data_dir is None:
            raise ValueError("data imagenet2012 needs data_dir, a folder holding ILSVRC2012_img_val.tar")
        for field in ("limit", "batch_size", "sticker_size"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if self.sticker_size is not None and self.sticker_size % 7:
            raise ValueError(f"sticker_size must be a multiple of 7 (the smiley's cells), got {self.sticker_size}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"unknown convention {self.convention!r}; choose one of {CONVENTIONS}")
        if not isinstance(self.attacked, tuple):
            raise ValueError(f"attacked must be a tuple of file names, got {self.attacked!r}")
        _names("methods", self.methods, METHODS)
        _names("targets", self.targets, TARGETS)
        _names("normalizations", self.normalizations, NORMALIZATIONS)
        if self.metrics:
            _names("metrics", self.metrics, QUALITY)
            if not self.matrix:
                raise ValueError("quality metrics are measured in the matrix's cells: ask for more than the paper's "
                                 "cell (methods, targets or normalizations)")
        if self.methods[0] != "gradcam":
            raise ValueError(f"methods must start with 'gradcam' (the paper's tables read it), got {self.methods}")
        if self.convention == "authors" and self.matrix:
            raise ValueError("the authors' convention describes their GradCAM only: evaluate the paper's cell")

    def replace(self, **changes) -> Config:
        """A copy with `changes`, checked again."""
        return dataclasses.replace(self, **changes)

    @property
    def dataset(self) -> str:
        """The data evaluated on: `data`, or imagenet2012 for an ImageNet `arch`, else shapes."""
        return self.data or ("imagenet2012" if self.arch is not None else "shapes")

    @property
    def matrix(self) -> bool:
        """More than the paper's cell: the vulnerability matrix (and its outputs) is asked for."""
        return (self.methods, self.targets, self.normalizations) != tuple((c,) for c in PAPER_CELL)

    def index(self, method: str, target: str, normalization: str) -> tuple[int, int, int]:
        """Where a cell lies in the per-image arrays (methods, targets, normalizations, B)."""
        return self.methods.index(method), self.targets.index(target), self.normalizations.index(normalization)

    def sticker_pixels(self, input_size: int) -> int:
        """The sticker's side for images of `input_size` pixels."""
        return self.sticker_size or (14 if input_size >= 224 else 7)


def cells(methods: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The matrix's cells for `methods` ("all": `MATRIX_METHODS`, "defences": `methods.DEFENCES`), GradCAM
    first, x every target and normalisation: the fields to give a `Config`."""
    groups = {"all": MATRIX_METHODS, "defences": DEFENCES}
    names = tuple(m for name in methods for m in groups.get(name, (name,)))
    return {"methods": tuple(dict.fromkeys(("gradcam", *names))), "targets": tuple(TARGETS),
            "normalizations": tuple(NORMALIZATIONS)}


PAPER = Config()
AUTHORS = Config(convention="authors")
MATRIX = Config(**cells(("all",)))
PRESETS = {"paper": PAPER, "authors": AUTHORS, "matrix": MATRIX}
