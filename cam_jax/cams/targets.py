"""Targets: the scalar per image that an explanation differentiates, as a function of the logits.

Each is (logits (B, C), classes (B,), contrast (B,)) -> scores (B,); the engine
differentiates its sum through the head once (each image's score reads only its
own logits). Names as `scripts/explain.py --target` spells them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Target = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


def _pick(values: jax.Array, classes: jax.Array) -> jax.Array:
    return jnp.take_along_axis(values, classes[:, None], axis=-1)[:, 0]


def logit(logits: jax.Array, classes: jax.Array, contrast: jax.Array | None = None) -> jax.Array:
    """y^c, the class score before softmax (the paper's and GradCAM's)."""
    return _pick(logits, classes)


def softmax(logits: jax.Array, classes: jax.Array, contrast: jax.Array | None = None) -> jax.Array:
    """p^c = softmax(y)^c."""
    return _pick(jax.nn.softmax(logits, axis=-1), classes)


def log_softmax(logits: jax.Array, classes: jax.Array, contrast: jax.Array | None = None) -> jax.Array:
    """log p^c = y^c - logsumexp(y)."""
    return _pick(jax.nn.log_softmax(logits, axis=-1), classes)


def contrast_mean(logits: jax.Array, classes: jax.Array, contrast: jax.Array | None = None) -> jax.Array:
    """y^c - mean_k y^k: what makes c stand out from all classes."""
    return _pick(logits, classes) - logits.mean(axis=-1)


def contrast_class(logits: jax.Array, classes: jax.Array, contrast: jax.Array | None = None) -> jax.Array:
    """y^c - y^k for a second class k per image (`contrast`): why c rather than k."""
    if contrast is None:
        raise ValueError("the target 'contrast' needs the classes to contrast with (contrast=...)")
    return _pick(logits, classes) - _pick(logits, contrast)


TARGETS: dict[str, Target] = {
    "logit": logit,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "contrast_mean": contrast_mean,
    "contrast": contrast_class,
}


def get(name: str) -> Target:
    """The target called `name`; a `ValueError` listing the names otherwise."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {sorted(TARGETS)}")
    return TARGETS[name]
