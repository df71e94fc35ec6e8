"""Targets: the scalar per image that an explanation differentiates, as a function of the logits.

Each is (logits (B, C), classes (B,)) -> scores (B,); `cams.core` differentiates its sum through the
head once (each image's score reads only its own logits). The contrastive target needs a second
class per image, so it is built where that class is known (`contrast`). Names as
`scripts/explain.py --target` spells them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Target = Callable[[jax.Array, jax.Array], jax.Array]


def _pick(values: jax.Array, classes: jax.Array) -> jax.Array:
    return jnp.take_along_axis(values, classes[:, None], axis=-1)[:, 0]


def logit(logits: jax.Array, classes: jax.Array) -> jax.Array:
    """y^c, the class score before softmax (the paper's and GradCAM's)."""
    return _pick(logits, classes)


def softmax(logits: jax.Array, classes: jax.Array) -> jax.Array:
    """p^c = softmax(y)^c."""
    return _pick(jax.nn.softmax(logits, axis=-1), classes)


def log_softmax(logits: jax.Array, classes: jax.Array) -> jax.Array:
    """log p^c = y^c - logsumexp(y)."""
    return _pick(jax.nn.log_softmax(logits, axis=-1), classes)


def contrast_mean(logits: jax.Array, classes: jax.Array) -> jax.Array:
    """y^c - mean_k y^k: what makes c stand out from all classes."""
    return _pick(logits, classes) - logits.mean(axis=-1)


def contrast(second: jax.Array) -> Target:
    """y^c - y^k for a second class k per image, (B,): why c rather than k."""
    def score(logits: jax.Array, classes: jax.Array) -> jax.Array:
        return _pick(logits, classes) - _pick(logits, second)

    return score


# name -> target; "contrast" is built from its second classes (`get`).
TARGETS: dict[str, Target | None] = {
    "logit": logit,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "contrast_mean": contrast_mean,
    "contrast": None,
}


def get(name: str, second: jax.Array | None = None) -> Target:
    """The target called `name`; "contrast" takes the (B,) second classes `second`.

    Raises:
      ValueError: an unknown name (the names are listed), or `second` given for another target or
        missing for "contrast".
    """
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {sorted(TARGETS)}")
    if (name == "contrast") != (second is not None):
        raise ValueError("pass contrast=... exactly when target='contrast'")
    return contrast(second) if name == "contrast" else TARGETS[name]


def over_variants(target: Target, logits: jax.Array, classes: jax.Array) -> jax.Array:
    """`target` on logits (B, n, C) of n variants of each image, each explaining its image's class: (B, n)."""
    return jax.vmap(target, in_axes=(1, None), out_axes=1)(logits, classes)
