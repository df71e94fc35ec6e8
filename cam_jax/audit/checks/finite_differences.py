"""Autograd against finite differences at A: a head whose gradient does not describe the function.

The paper's T3/T4 add G = eps mod(c_G sum A^{K+1}, 1) to every logit: autograd
reports dG/dA^{K+1} = eps c_G, but G itself is bounded by eps and, once c_G sum
exceeds 2**24 in float32, exactly 0. Moving A along a channel then changes the
score by far less (or other) than the gradient predicts. A ReLU/max-pool head
is piecewise linear, so for an honest head the two agree wherever a small step
crosses no kink. The step is the same at every pixel of the channel: A after
a ReLU is 0 at many pixels, and a max-pool over tied zeros has no derivative
along a direction that breaks the tie (the score would move by |d|, not by the
gradient times d); a uniform step keeps ties tied, so along it the max-pool is linear.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe, channel_rms, live
from cam_jax.model import Model

IMAGES = 4  # images per channel: 2 head passes each
REL_STEP = 1e-3  # step per pixel, relative to the channel's rms plus the median channel's
NOISE_ULPS = 64  # score differences below this many float32 spacings of the score count as equal
SINGLE_OUT = 10  # a channel is named when its error is this many times the median channel's
CHUNK = 64  # channels per batched head pass (the memory bound)
THRESHOLD = 0.3  # a finite difference 30 % off the gradient
CLEAN_RANGE = (0.000, 0.015)  # the honest population of scripts/audit_eval.py (docs/REPRODUCTION.md)


@functools.partial(jax.jit, static_argnames="chunk")
def directional(model: Model, a: jax.Array, grads: jax.Array, top: jax.Array, steps: jax.Array,
                context: jax.Array | None = None, chunk: int = CHUNK) -> tuple[jax.Array, jax.Array]:
    """(autograd, central difference), each (K, B): the change of y_top along d_k, a uniform step on channel k.

    Args:
      a, grads: (B, h, w, K) A and d y_top/dA.
      top: (B,) the class whose logit is the score.
      steps: (K,) the step size per pixel on each channel.
      context: what the head reads besides A (`Model.encode`), or None.
    """
    channels = a.shape[-1]

    def score(x):
        return jnp.take_along_axis(model.head(x, context), top[:, None], axis=1)[:, 0]

    def along(k):
        d = jnp.broadcast_to(steps[k] * jax.nn.one_hot(k, channels, dtype=a.dtype), a.shape)
        return jnp.sum(grads * d, axis=(1, 2, 3)), (score(a + d) - score(a - d)) / 2

    return jax.lax.map(along, jnp.arange(channels), batch_size=chunk)


def check(model: Model, probe: Probe) -> Finding:
    """The largest, over channels, median over images of |autograd - finite difference| / max(|either|, noise).

    0 where the gradient predicts the function, 1 where it is unrelated to it.
    """
    n = min(IMAGES, probe.a.shape[0])
    a, grads, top = probe.a[:n], probe.top_grads[:n], probe.top[:n]
    rms = channel_rms(a)
    # The median, not A's rms: one huge channel (T3's) must not make the other channels' steps huge.
    typical = float(np.median(rms[live(rms)])) if live(rms).any() else 1.0
    steps = jnp.asarray(REL_STEP * (rms + typical), a.dtype)
    context = None if probe.context is None else probe.context[:n]
    auto, fd = (np.asarray(v, np.float64) for v in directional(model, a, grads, top, steps, context))
    logit = np.abs(np.take_along_axis(np.asarray(probe.logits[:n], np.float64), np.asarray(top)[:, None], 1)[:, 0])
    noise = NOISE_ULPS * np.spacing(np.float32(np.maximum(logit, 1.0))).astype(np.float64)
    err = np.median(np.abs(auto - fd) / np.maximum(np.maximum(np.abs(auto), np.abs(fd)), noise), axis=1)
    k = int(np.argmax(err))
    typical_err = float(np.median(err))
    if err[k] <= SINGLE_OUT * max(typical_err, 1e-3):  # most channels disagree: the head, not one channel
        return Finding(float(err[k]), f"no single channel: median over channels {typical_err:.2g}, worst A channel {k} "
                                      f"{err[k]:.2g}", None)
    return Finding(float(err[k]), f"A channel {k}: autograd predicts {np.median(auto[k]):.3g}, the function moves "
                                  f"{np.median(fd[k]):.3g} (median of {n} images)", k)
