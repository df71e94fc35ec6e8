"""Composition of model-to-model functions (manipulations), as optax chains transformations."""

from __future__ import annotations

import functools
from collections.abc import Callable

from cam_jax.model import Model

Manipulation = Callable[[Model], Model]


def chain(*manipulations: Manipulation) -> Manipulation:
    """Compose model-to-model functions left to right: chain(f, g)(m) == g(f(m))."""
    for m in manipulations:
        if not callable(m):
            raise TypeError(f"chain takes model-to-model functions, got {type(m).__name__}")

    def apply(model: Model) -> Model:
        return functools.reduce(lambda acc, f: f(acc), manipulations, model)

    return apply
