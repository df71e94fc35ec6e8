"""What evaluation data looks like: a batch of uint8 images with labels and optional object masks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """pixels (B, H, W, 3) uint8 RGB; labels (B,) int32; masks (B, H, W) bool, True on the object, or None."""

    pixels: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None


# The images `indices` of a source, so each process of a multi-host run reads only its share.
Loader = Callable[[Sequence[int]], Batch]
