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

from cam_jax.cams.core import cotangent, gradients, opaque_pass
from cam_jax.cams.weightings import grad_cam
from cam_jax.model import Model, check_images

MAX_CLASSES = 16  # the classes whose gradients are compared (all of them below this)
BATCH = 32  # images per pass: the memory bound, whatever the number of images
MIN_IMAGES = 4  # with 2, one pair of alike images decides every comparison (a clean model on noise flagged)
MIN_SPREAD = 0.05  # the least the images may differ, per pixel, as a share of their values' spread


class Reference(NamedTuple):
    """A trusted checkpoint of the probed model's architecture, and what it computes on the same images.

    Attributes:
      model: the reference `Model`.
      a: (B, h, w, K) its A; context: what its head reads besides A, or None.
      cam: (B, h, w) its GradCAM before the ReLU for the probed model's top classes.
    """

    model: Model
    a: jax.Array
    context: jax.Array | None
    cam: jax.Array


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
      context: (B, ...) what the head reads besides A (`Model.encode`), or None.
      reference: a trusted checkpoint's `Reference` on the same images (`probe(..., reference=)`), or None.
    """

    a: jax.Array
    logits: jax.Array
    top: jax.Array
    top_grads: jax.Array
    class_grads: jax.Array
    grad_rms: jax.Array
    context: jax.Array | None = None
    reference: Reference | None = None


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
    """The Probe of one batch, with grad_rms's per-image sums of squares (B, K) in its place."""
    a, context = model.encode(images)
    run = opaque_pass(model.head, a, 0, context)  # the head as it is, whatever built it
    top, dy = cotangent(run.logits)
    (top_grads,) = run.backward(dy)
    onehots = jnp.stack([jnp.zeros_like(run.logits).at[:, c].set(1) for c in classes])
    per_class = jax.vmap(lambda onehot: run.backward(onehot)[0])(onehots)
    return Probe(run.a, run.logits, top, top_grads, per_class.sum(axis=(2, 3)), (per_class**2).sum(axis=(0, 2, 3)),
                 context)


@jax.jit
def _reference(reference: Model, images: jax.Array, classes: jax.Array
               ) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    """`reference`'s (A, context, GradCAM before its ReLU for `classes`), its head differentiated as it is."""
    g = gradients(reference, images, classes, opaque=True)
    return g.a, g.context, grad_cam(g.a, g.grads[0])


def same_architecture(model: Model, reference: Model) -> None:
    """Raise a ValueError unless `model` and `reference` are one module with parameters of the same shapes."""
    if model.module != reference.module:
        raise ValueError(f"the reference is another architecture ({type(reference.module).__name__} against "
                         f"{type(model.module).__name__}, or other settings): reference mode compares versions of "
                         "one network")
    shapes = [jax.tree.map(lambda v: (v.shape, str(v.dtype)), m.params) for m in (model, reference)]
    if jax.tree.structure(shapes[0]) != jax.tree.structure(shapes[1]) or shapes[0] != shapes[1]:
        raise ValueError("the reference's parameters differ from the model's in names or shapes: reference mode "
                         "compares versions of one network (a filter added or removed is another architecture)")


def check_varied(images: np.ndarray) -> None:
    """Refuse images that are (nearly) all the same, or (nearly) flat each: the checks compare images with
    each other and positions within them; on copies of one image every channel of A looks constant, and
    on flat colours every direction of A moves alike, an honest model's included."""
    x = np.asarray(images, np.float64)
    spread, scale = float(x.std(axis=0).mean()), float(x.std())
    if spread <= MIN_SPREAD * scale or scale == 0:
        raise ValueError(f"the {x.shape[0]} images are (nearly) the same (they differ by {spread:.2g} per pixel, "
                         f"{spread / scale if scale else 0:.2g} of their values' spread; at least {MIN_SPREAD} "
                         "needed): an audit compares images with each other, pass varied ones")
    within = float(np.median(x.std(axis=(1, 2)).mean(axis=-1)))  # each image's own spread over its pixels
    if within <= MIN_SPREAD * scale:
        raise ValueError(f"the images are (nearly) flat: each varies by {within:.2g} over its pixels (median), "
                         f"{within / scale:.2g} of their values' spread; at least {MIN_SPREAD} needed): an audit "
                         "reads where a map puts its mass, pass images with content")


def probe(model: Model, images: jax.Array, reference: Model | None = None) -> Probe:
    """One forward and one head backward per probed class on `images` (B, H, W, 3), B >= MIN_IMAGES varied
    (`check_varied`), normalised; in passes of `BATCH` images. With `reference` (a model of the same
    architecture, else a ValueError), also its `Reference`: one more forward and backward."""
    check_images(images, model.input_size)
    if reference is not None:
        same_architecture(model, reference)
    images = np.asarray(images)
    check_varied(images)  # first: copies of one image are refused as such, however many
    if images.shape[0] < MIN_IMAGES:
        raise ValueError(f"an audit compares images with each other: pass at least {MIN_IMAGES} images, "
                         f"got {images.shape[0]}")
    classes = probed_classes(model.num_classes)
    count = images.shape[0]
    batch = min(BATCH, count)
    parts = []
    for first in range(0, count, batch):
        chunk = images[first:first + batch]
        padded = jnp.asarray(np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)]))  # one shape
        part, n = jax.device_get(_probe(model, padded, classes)), len(chunk)
        theirs = None if reference is None else jax.device_get(_reference(reference, padded, jnp.asarray(part.top)))
        parts.append(Probe(part.a[:n], part.logits[:n], part.top[:n], part.top_grads[:n], part.class_grads[:, :n],
                           part.grad_rms[:n], None if part.context is None else part.context[:n],
                           None if theirs is None else tuple(None if v is None else v[:n] for v in theirs)))
    a, logits, top, top_grads, grad_sq = (np.concatenate([getattr(p, f) for p in parts])
                                          for f in ("a", "logits", "top", "top_grads", "grad_rms"))
    class_grads = np.concatenate([p.class_grads for p in parts], axis=1)

    def joined(values):
        return None if values[0] is None else jnp.asarray(np.concatenate(values))

    context = joined([p.context for p in parts])
    theirs = None if reference is None else Reference(
        reference, *(joined([p.reference[i] for p in parts]) for i in range(3)))
    h, w = a.shape[1:3]
    grad_rms = np.sqrt(grad_sq.sum(axis=0) / (len(classes) * count * h * w))
    return Probe(*(jnp.asarray(v) for v in (a, logits, top, top_grads, class_grads, grad_rms)), context, theirs)


def channel_rms(a: jax.Array) -> np.ndarray:
    """(K,) root mean square of A (B, h, w, K) per channel, in float64."""
    return np.sqrt(np.mean(np.asarray(a, np.float64) ** 2, axis=(0, 1, 2)))


def live(rms: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """(K,) bool: channels whose rms is above `floor` of the median non-zero channel's (a dead ReLU channel
    is not evidence). The median, not the largest: one huge channel must not make the others look dead."""
    nonzero = rms[rms > 0]
    return rms > floor * (float(np.median(nonzero)) if nonzero.size else np.inf)
