"""What a check returns: a score (higher is more suspicious) and where it points."""

from __future__ import annotations

from typing import NamedTuple


class Finding(NamedTuple):
    """One check's result on one model.

    Attributes:
      score: the check's statistic; higher means less like an honest model. Its clean range and
        threshold are in `cam_jax.audit.calibration`.
      where: the channel, layer or parameter that gave the score, in words.
      channel: the channel of A it points at, or None when it points at a parameter.
    """

    score: float
    where: str
    channel: int | None = None
