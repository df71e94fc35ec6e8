"""The audit's checks: one module each, exporting `check(model, probe) -> Finding`, its THRESHOLD and the
CLEAN_RANGE its score took on the honest population; a new check is its module plus one line here.

`CHECKS` read the model alone; `REFERENCE_CHECKS` also read a trusted checkpoint of the same architecture
(`audit_model(..., reference=)`), whose measurements the probe carries."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

from cam_jax.audit.checks import (
    activation_dominance,
    class_invariance,
    constant_channel,
    finite_differences,
    gradient_dominance,
    intervention,
    reference_deletion,
    reference_locality,
    reference_shift,
    weight_outliers,
)
from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe
from cam_jax.model import Model


class Check(NamedTuple):
    """A check's function, the score above which it flags a model, and its honest models' (min, max)."""

    fn: Callable[[Model, Probe], Finding]
    threshold: float
    clean_range: tuple[float, float]


def _check(module: ModuleType) -> Check:
    return Check(module.check, module.THRESHOLD, module.CLEAN_RANGE)


CHECKS: dict[str, Check] = {
    "constant_channel": _check(constant_channel),
    "activation_dominance": _check(activation_dominance),
    "class_invariance": _check(class_invariance),
    "gradient_dominance": _check(gradient_dominance),
    "finite_differences": _check(finite_differences),
    "weight_outliers": _check(weight_outliers),
    "intervention": _check(intervention),
}

REFERENCE_CHECKS: dict[str, Check] = {
    "reference_deletion": _check(reference_deletion),
    "reference_shift": _check(reference_shift),
    "reference_locality": _check(reference_locality),
}
