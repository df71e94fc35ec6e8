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
import numpy as np

from cam_jax.audit.probing import BATCH
from cam_jax.audit.verdict import Report
from cam_jax.cams.core import Explanation, gradients
from cam_jax.cams.weightings import WEIGHTINGS, apply
from cam_jax.manipulations.combinators import Wrapper, wrap
from cam_jax.model import Model, check_images, encode_of, head_of


class Excluded(Wrapper):
    """The base with A's `channels` shown to no explanation and kept in the function: A holds them as zero,
    and the head takes them back from the images (its context), so the logits are the base's and dS/dA at
    the other channels is the base's own. Any explanation method then reads the model without them.

    Attributes:
      channels: the left-out channels of the base's A.
    """

    channels: tuple[int, ...] = ()

    def _left_out(self, k: int) -> np.ndarray:
        return np.isin(np.arange(k), np.asarray(self.channels, int))

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        a, _ = encode_of(self.base, x)
        return jnp.where(self._left_out(a.shape[-1]), jnp.zeros((), a.dtype), a), x

    def head(self, a: jax.Array, context: jax.Array | None = None) -> jax.Array:
        if context is None:
            raise ValueError("an Excluded model's head reads the images as its context: call head(a, x)")
        full, inner = encode_of(self.base, context)
        return head_of(self.base, jnp.where(self._left_out(a.shape[-1]), full, a), inner)

    def line(self, channels: int) -> str:
        return f"{type(self).__name__}: A channels {list(self.channels)} read by the head, shown to no explanation"


def excluded(model: Model, channels: tuple[int, ...]) -> Model:
    """`model` with A's `channels` left out of every explanation (`Excluded`), the same function.

    Example:
      >>> from cam_jax import semi_random
      >>> t3 = semi_random(model)
      >>> fixed = excluded(t3, (32,))
      >>> bool((fixed(images) == t3(images)).all()), bool((fixed.features(images)[..., 32] == 0).all())
      (True, True)
    """
    channels = tuple(int(k) for k in channels)
    count = jax.eval_shape(model.features, jax.ShapeDtypeStruct((1, model.input_size, model.input_size, 3),
                                                                jnp.float32)).shape[-1]
    if any(not 0 <= k < count for k in channels):
        raise ValueError(f"channels {list(channels)} are not all channels of A, which has {count}")
    return wrap(model, Excluded(model.module, channels), {})


class Recommendation(NamedTuple):
    """What to trust: the method, the channels of A left out, and the explanation it gives."""

    method: str
    excluded: tuple[int, ...]
    explanation: Explanation
    advice: str


@functools.partial(jax.jit, static_argnames="method")
def _explained(model: Model, images: jax.Array, method: str) -> Explanation:
    g = gradients(model, images, opaque=True)  # the head as it is, as the audit saw it
    return Explanation(g.logits, g.classes, jax.nn.relu(apply(WEIGHTINGS[method], g.a, g.grads)))


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
    left_out = report.channels
    fixed = excluded(model, left_out)
    # In passes of probing.BATCH images, as the audit's own pass: memory bounded whatever the count.
    parts = [_explained(fixed, jnp.asarray(images[i:i + BATCH]), method) for i in range(0, len(images), BATCH)]
    explanation = jax.tree.map(lambda *v: jnp.concatenate(v), *parts)
    if not report.manipulated:
        advice = f"no check flags this model: {method} as it is"
    elif left_out:
        advice = (f"{method} without A channel(s) {list(left_out)}, which the flagged checks point at; the other "
                  "channels and their gradients are what the model's own classifier uses")
    else:
        flags = ", ".join(name for name, c in report.checks.items() if c.flagged)
        advice = f"the flags ({flags}) point at no channel of A: {method} as it is, to be read with care"
        if any(name.startswith("reference") for name, c in report.checks.items() if c.flagged):
            advice += ("; the map disagrees with the function where the reference's did not (a fine-tuned lie), "
                       "or the model is no version of the reference (reference_shift says which): a method the "
                       "fine-tuning attacks moved least, saliency_beta, or the reference's own map")
    return Recommendation(method, left_out, explanation, advice)
