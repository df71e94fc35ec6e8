"""The evaluation: a frozen `Config` and its presets, `evaluate(config) -> Results`, `write(results, folder)`;
the suite of manipulated models, the fused step, tables, the vulnerability matrix, figures, the
attacks' assessment, the audit's populations and its detection rates, the benchmark."""

from cam_jax.evaluation.config import AUTHORS as AUTHORS
from cam_jax.evaluation.config import MATRIX as MATRIX
from cam_jax.evaluation.config import PAPER as PAPER
from cam_jax.evaluation.config import PRESETS as PRESETS
from cam_jax.evaluation.config import Config as Config
from cam_jax.evaluation.experiment import Results as Results
from cam_jax.evaluation.experiment import evaluate as evaluate
from cam_jax.evaluation.outputs import write as write
from cam_jax.evaluation.suite import PAPER_SUITE as PAPER_SUITE
from cam_jax.evaluation.suite import Entry as Entry

__all__ = ["AUTHORS", "MATRIX", "PAPER", "PAPER_SUITE", "PRESETS", "Config", "Entry", "Results", "evaluate", "write"]
