"""The evaluation: a declared suite of models, the fused step, the runner, metrics, tables, figures, report."""

from cam_jax.evaluation import benchmark as benchmark
from cam_jax.evaluation import figures as figures
from cam_jax.evaluation import metrics as metrics
from cam_jax.evaluation import report as report
from cam_jax.evaluation import runner as runner
from cam_jax.evaluation import step as step
from cam_jax.evaluation import suite as suite
from cam_jax.evaluation import tables as tables
from cam_jax.evaluation.suite import PAPER_SUITE as PAPER_SUITE
from cam_jax.evaluation.suite import Entry as Entry
from cam_jax.evaluation.suite import Settings as Settings

__all__ = [
    "PAPER_SUITE",
    "Entry",
    "Settings",
    "benchmark",
    "figures",
    "metrics",
    "report",
    "runner",
    "step",
    "suite",
    "tables",
]
