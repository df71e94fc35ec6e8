"""For a flagged model: an explanation computed without the channels the audit flagged.

Every manipulation the checks look for (T1-T4, exact or not) leaves the
original channels of A and their gradient as they were and puts the lie in the
channel it adds; leaving the flagged channels out of a gradient-weighted CAM
gives back the original network's explanation.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from cam_jax.audit.probing import BATCH
from cam_jax.audit.verdict import Report
from cam_jax.cams.core import Explanation, gradients
from cam_jax.cams.weightings import WEIGHTINGS
from cam_jax.model import Model, check_images


class Recommendation(NamedTuple):
    """What to trust: the method, the channels of A left out, and the explanation it gives."""

    method: str
    excluded: tuple[int, ...]
    explanation: Explanation
    advice: str


@functools.partial(jax.jit, static_argnames="method")
def _without(model: Model, images: jax.Array, keep: jax.Array, method: str) -> Explanation:
    g = gradients(model, images, opaque=True)  # the head as it is, as the audit saw it
    (grads,) = g.grads
    return Explanation(g.logits, g.classes, jax.nn.relu(WEIGHTINGS[method](g.a * keep, grads * keep)))


def recommend(model: Model, images: jax.Array, report: Report, method: str = "gradcam") -> Recommendation:
    """`method` (a gradient-weighted CAM) on `images` (B, H, W, 3), A's flagged channels left out.

    Example:
      >>> from cam_jax import semi_random
      >>> from cam_jax.audit import audit_model
      >>> from cam_jax.data import images as preprocessing, shapes
      >>> x = jnp.asarray(preprocessing.normalize(shapes.batch(shapes.TEST_SEED, range(4)).pixels))
      >>> t3 = semi_random(model)
      >>> r = recommend(t3, x, audit_model(t3, x))
      >>> r.excluded, r.explanation.cam.shape
      ((32,), (4, 14, 14))
    """
    if method not in WEIGHTINGS:
        raise ValueError(f"recommend takes a gradient-weighted CAM ({', '.join(WEIGHTINGS)}), got {method!r}")
    check_images(images, model.input_size)
    excluded = report.channels
    channels = jax.eval_shape(model.features, images).shape[-1]
    keep = jnp.ones((channels,), jnp.float32).at[jnp.asarray(excluded, jnp.int32)].set(0.0)
    # In passes of probing.BATCH images, as the audit's own pass: memory bounded whatever the count.
    parts = [_without(model, jnp.asarray(images[i:i + BATCH]), keep, method) for i in range(0, len(images), BATCH)]
    explanation = jax.tree.map(lambda *v: jnp.concatenate(v), *parts)
    if not report.manipulated:
        advice = f"no check flags this model: {method} as it is"
    elif excluded:
        advice = (f"{method} without A channel(s) {list(excluded)}, which the flagged checks point at; the other "
                  "channels and their gradients are what the model's own classifier uses")
    else:
        flags = ", ".join(name for name, c in report.checks.items() if c.flagged)
        advice = f"the flags ({flags}) point at no channel of A: {method} as it is, to be read with care"
    return Recommendation(method, excluded, explanation, advice)
