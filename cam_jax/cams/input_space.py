"""Input-space attributions for comparison with the CAMs: gradients of the score with respect to the image.

Each differentiates the whole network (not only the head) and returns an
`Explanation` whose `attribution` is (B, H, W, 3) and whose `cam` is that summed
over colour channels. Definitions follow captum (Saliency with abs, InputXGradient,
NoiseTunnel's smoothgrad, IntegratedGradients with Gauss-Legendre steps).

References:
  Simonyan et al. 2014; Shrikumar et al. 2016; Smilkov et al. 2017 (SmoothGrad);
  Sundararajan et al. 2017 (Integrated Gradients).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams.core import Explanation
from cam_jax.cams.perturbation import chunk_size, over_chunks
from cam_jax.cams.targets import Target, logit, over_variants
from cam_jax.model import Model


def _classes(model: Model, x: jax.Array, classes: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    logits = model(x)
    return logits, (jnp.argmax(logits, -1).astype(jnp.int32) if classes is None else classes)


def input_gradient(model: Model, x: jax.Array, classes: jax.Array, target: Target = logit) -> jax.Array:
    """dS/dx, (n B, H, W, 3): the score differentiated through the whole network, for n variants of each of
    B images (variant-major rows: row j B + b is a variant of image b) explaining its class, classes (B,)."""
    def total(x):
        y = model(x)
        return over_variants(target, y.reshape(-1, classes.shape[0], y.shape[-1]).swapaxes(0, 1), classes).sum()

    return jax.grad(total)(x)


def _explanation(logits, classes, attribution, delta=None) -> Explanation:
    return Explanation(logits, classes, attribution.sum(axis=-1), attribution, delta)


def _gradients_along(model: Model, inputs: jax.Array, classes: jax.Array, target: Target,
                     batch_images: int) -> jax.Array:
    """dS/dx at each of n variants of every image, inputs (n, B, H, W, 3) -> (B, n, H, W, 3), run as
    passes of about `batch_images` images (vmapped variants, chunks one after another)."""
    n, b = inputs.shape[:2]

    def grads(idx):
        v = inputs[idx].reshape(-1, *inputs.shape[2:])  # (chunk * B, H, W, 3)
        return input_gradient(model, v, classes, target).reshape(len(idx), b, *inputs.shape[2:]).swapaxes(0, 1)

    return over_chunks(grads, n, chunk_size(b, batch_images))


def saliency(model: Model, x: jax.Array, classes: jax.Array | None = None, target: Target = logit) -> Explanation:
    """Vanilla gradient: |dS/dx| (captum's Saliency, abs=True)."""
    logits, classes = _classes(model, x, classes)
    return _explanation(logits, classes, jnp.abs(input_gradient(model, x, classes, target)))


def gradient_x_input(model: Model, x: jax.Array, classes: jax.Array | None = None,
                     target: Target = logit) -> Explanation:
    """Gradient times input: x * dS/dx (captum's InputXGradient)."""
    logits, classes = _classes(model, x, classes)
    return _explanation(logits, classes, x * input_gradient(model, x, classes, target))


def smoothgrad_noise(key: jax.Array, x: jax.Array, samples: int, sigma: float) -> jax.Array:
    """(samples, B, H, W, 3) Gaussian noise, std `sigma` times each image's value range (Smilkov's 15%)."""
    spread = x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3))
    return jax.random.normal(key, (samples, *x.shape), x.dtype) * (sigma * spread)[None, :, None, None, None]


def smoothgrad(model: Model, x: jax.Array, classes: jax.Array | None = None, target: Target = logit,
               key: jax.Array | None = None, samples: int = 25,
               sigma: float = 0.15, batch_images: int = 32) -> Explanation:
    """SmoothGrad: the mean of dS/dx over `samples` noisy copies of x (noise from `smoothgrad_noise`),
    about `batch_images` copies per pass."""
    logits, classes = _classes(model, x, classes)
    noise = smoothgrad_noise(jax.random.key(0) if key is None else key, x, samples, sigma)
    grads = _gradients_along(model, x[None] + noise, classes, target, batch_images)
    return _explanation(logits, classes, grads.mean(axis=1))


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) of the `steps`-point Gauss-Legendre rule on [0, 1] (captum's default)."""
    points, weights = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (points + 1), 0.5 * weights


def integrated_gradients(model: Model, x: jax.Array, classes: jax.Array | None = None, target: Target = logit,
                         baseline: jax.Array | None = None, steps: int = 50, batch_images: int = 32) -> Explanation:
    """Integrated Gradients: (x - x0) * integral_0^1 dS/dx(x0 + t (x - x0)) dt by Gauss-Legendre,
    x0 = `baseline` (zeros: the mean image after normalisation); `delta` = the completeness residual.
    About `batch_images` path points per pass."""
    logits, classes = _classes(model, x, classes)
    x0 = jnp.zeros_like(x) if baseline is None else jnp.broadcast_to(baseline, x.shape)
    alphas, weights = gauss_legendre(steps)
    path = x0[None] + jnp.asarray(alphas, x.dtype)[:, None, None, None, None] * (x - x0)[None]
    grads = _gradients_along(model, path, classes, target, batch_images)  # (B, steps, H, W, 3)
    attribution = (x - x0) * jnp.einsum("s,bs...->b...", jnp.asarray(weights, x.dtype), grads)
    gap = target(logits, classes) - target(model(x0), classes)
    return _explanation(logits, classes, attribution, attribution.sum(axis=(1, 2, 3)) - gap)
