"""What every audit check reads: A, the logits and dy_c/dA for a few classes, from one jitted pass.

The model is treated as a black box with two halves (`features`, `head`): the
gradients are `jax.vjp` of `model.head` as it is, not of any structure the audit
might know about, so a manipulation is seen the way a downloaded file would be.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams.core import cotangent, opaque_pass
from cam_jax.model import Model, check_images

MAX_CLASSES = 16  # the classes whose gradients are compared (all of them below this)


class Probe(NamedTuple):
    """A model's internals on B unlabelled images.

    Attributes:
      a: (B, h, w, K) A, the map CAMs weigh.
      logits: (B, C).
      top: (B,) int32, each image's top class.
      top_grads: (B, h, w, K) d y_top / dA.
      class_grads: (C', B, K) d y_c / dA summed over positions (GradCAM's weights times h w), for the
        C' classes `probed_classes` picks.
      grad_rms: (K,) root mean square of d y_c / dA per channel over classes, images and positions.
    """

    a: jax.Array
    logits: jax.Array
    top: jax.Array
    top_grads: jax.Array
    class_grads: jax.Array
    grad_rms: jax.Array


def probed_classes(num_classes: int) -> tuple[int, ...]:
    """Up to MAX_CLASSES classes spread evenly over [0, num_classes).

    Example:
      >>> probed_classes(4), len(probed_classes(1000))
      ((0, 1, 2, 3), 16)
    """
    picks = np.linspace(0, num_classes - 1, min(num_classes, MAX_CLASSES)).round().astype(int)
    return tuple(int(c) for c in np.unique(picks))


@functools.partial(jax.jit, static_argnames="classes")
def _probe(model: Model, images: jax.Array, classes: tuple[int, ...]) -> Probe:
    run = opaque_pass(model.head, model.features(images))  # the head as it is, whatever built it
    top, dy = cotangent(run.logits)
    (top_grads,) = run.backward(dy)
    onehots = jnp.stack([jnp.zeros_like(run.logits).at[:, c].set(1) for c in classes])
    per_class = jax.vmap(lambda onehot: run.backward(onehot)[0])(onehots)
    return Probe(run.a, run.logits, top, top_grads, per_class.sum(axis=(2, 3)),
                 jnp.sqrt(jnp.mean(per_class**2, axis=(0, 1, 2, 3))))


def probe(model: Model, images: jax.Array) -> Probe:
    """One forward and one head backward per probed class on `images` (B, H, W, 3), B >= 2, normalised."""
    check_images(images, model.input_size)
    if images.shape[0] < 2:
        raise ValueError("an audit compares images with each other: pass at least 2 images")
    return _probe(model, jnp.asarray(images), probed_classes(model.num_classes))


def channel_rms(a: jax.Array) -> np.ndarray:
    """(K,) root mean square of A (B, h, w, K) per channel, in float64."""
    return np.sqrt(np.mean(np.asarray(a, np.float64) ** 2, axis=(0, 1, 2)))


def live(rms: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """(K,) bool: channels whose rms is above `floor` of the median non-zero channel's (a dead ReLU channel
    is not evidence). The median, not the largest: one huge channel must not make the others look dead."""
    nonzero = rms[rms > 0]
    return rms > floor * (float(np.median(nonzero)) if nonzero.size else np.inf)
