"""What a check returns: a score (higher is more suspicious) and where it points."""

from __future__ import annotations

from typing import NamedTuple

SCORE_CAP = 7.0  # -log10 scores stop here: float32 shows no relative spread below 1e-7


class Finding(NamedTuple):
    """One check's result on one model.

    Attributes:
      score: the check's statistic; higher means less like an honest model. Its threshold and the
        range it took on honest models are its module's THRESHOLD and CLEAN_RANGE.
      where: the channel, layer or parameter that gave the score, in words.
      channel: the channel of A it points at, or None when it points at a parameter.
    """

    score: float
    where: str
    channel: int | None = None
