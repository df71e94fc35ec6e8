"""`audit_model`: every check on one model, each score against its clean range, and a verdict.

Each check is an independent function (model, probe) -> `Finding` (`cam_jax.audit.checks`), with
the threshold above which a score flags the model. A model is flagged when any check's score
passes its threshold; the combined score (for ROC curves) is the largest score / threshold.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax

from cam_jax.audit.checks import CHECKS, REFERENCE_CHECKS, Check
from cam_jax.audit.probing import probe
from cam_jax.model import Model


class CheckResult(NamedTuple):
    """One check's score, where it points, its threshold and the range it took on honest models."""

    score: float
    threshold: float
    clean_range: tuple[float, float]
    where: str
    channel: int | None

    @property
    def flagged(self) -> bool:
        return bool(self.score > self.threshold)


class Report(NamedTuple):
    """The audit of one model.

    Attributes:
      checks: check name -> `CheckResult`.
      branches: the manipulation wrappers found in the model's code, outermost first
        (`Model.describe`; empty for a plain architecture, as in any weight file).
      seconds: wall time of the audit.
    """

    checks: dict[str, CheckResult]
    branches: tuple[str, ...]
    seconds: float

    @property
    def manipulated(self) -> bool:
        return any(c.flagged for c in self.checks.values())

    @property
    def combined(self) -> float:
        """max over checks of score / threshold: > 1 exactly when the model is flagged."""
        return max(c.score / c.threshold for c in self.checks.values())

    @property
    def channels(self) -> tuple[int, ...]:
        """The channels of A the flagged checks point at."""
        return tuple(sorted({c.channel for c in self.checks.values() if c.flagged and c.channel is not None}))

    def to_dict(self) -> dict[str, Any]:
        return {"manipulated": self.manipulated, "combined": self.combined, "channels": list(self.channels),
                "branches": list(self.branches), "seconds": self.seconds,
                "checks": {name: {**c._asdict(), "clean_range": list(c.clean_range), "flagged": c.flagged}
                           for name, c in self.checks.items()}}

    def text(self) -> str:
        """The report as lines a person reads."""
        lines = [f"verdict: {'MANIPULATED' if self.manipulated else 'clean'} "
                 f"(combined score {self.combined:.2f}; above 1 flags)"]
        for name, c in self.checks.items():
            lo, hi = c.clean_range
            mark = "FLAG" if c.flagged else "ok  "
            lines.append(f"  {mark} {name:22s} {c.score:8.3f}  threshold {c.threshold:g}, honest models "
                         f"{lo:.3g}..{hi:.3g}  {c.where}")
        lines += [f"  branch in the code: {b}" for b in self.branches]
        return "\n".join(lines)


def audit_model(model: Model, images: jax.Array, checks: dict[str, Check] | None = None,
                reference: Model | None = None) -> Report:
    """Run every check of `CHECKS` (and of `REFERENCE_CHECKS` given a reference), or `checks`, on `model`
    with unlabelled `images`.

    Args:
      model: any `Model`.
      images: (B, H, W, 3), B >= 4 (`probing.MIN_IMAGES`), normalised as `model.preprocess` says (16 or
        more recommended).
      reference: a trusted checkpoint of `model`'s architecture (the weights it claims to be a version of),
        or None. A ValueError if its architecture differs.

    Example:
      >>> from cam_jax import constant_flat
      >>> from cam_jax.data import images as preprocessing, shapes
      >>> x = jnp.asarray(preprocessing.normalize(shapes.batch(shapes.TEST_SEED, range(8)).pixels))
      >>> audit_model(model, x).manipulated                # the bundled default
      False
      >>> report = audit_model(constant_flat(model), x)
      >>> report.manipulated, report.channels
      (True, (32,))
    """
    start = time.perf_counter()
    measured = probe(model, images, reference)
    if checks is None:
        checks = CHECKS if reference is None else {**CHECKS, **REFERENCE_CHECKS}
    results = {}
    for name, check in checks.items():
        finding = check.fn(model, measured)
        channel = None if finding.channel is None else int(finding.channel)
        results[name] = CheckResult(float(finding.score), check.threshold, tuple(check.clean_range), finding.where,
                                    channel)
    return Report(results, model.describe(), time.perf_counter() - start)
