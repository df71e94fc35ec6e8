"""The paper's four manipulations T1-T4 as pure functions from a model to a new model.

Each takes a `Model` and keyword constants (the paper's values by default) and
returns a new `Model` with the same `features`/`head` interface; the input model
is never modified. Fix constants with `functools.partial` to get a
model-to-model function, and compose those with `chain`:

    >>> from functools import partial
    >>> from cam_jax import gradcam
    >>> from cam_jax.manipulations import chain
    >>> t4 = sticker_backdoor(model)                 # paper's constants
    >>> heat = gradcam(t4, images).cam
    >>> both = chain(partial(semi_random, seed=1), sticker_backdoor)(model)
    >>> both.features(images).shape                  # A gains one channel per manipulation
    (2, 14, 14, 34)

References:
  paper.md sections 3.1-3.4 and 4; SPEC.md "The manipulations".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.data import images, stickers
from cam_jax.manipulations import branches, combinators
from cam_jax.manipulations.weight_edit import append_filter, check_constant, check_shift, dtype_of, pooled_sum
from cam_jax.model import Model


def _scalar(value: float, model: Model) -> jax.Array:
    return jnp.asarray(value, dtype_of(model))


def _exact_constant_channel(model: Model, image: jax.Array, scale: float, c_W: float) -> Model:
    """Exact T1/T2: append the channel scale*image, and add c_W * sum(A^{K+1} - scale*image)
    (exactly 0) to every logit, so y_n == y_o bit for bit while dy/dA^{K+1} = c_W."""
    size = model.cam_size
    value = (scale * image).astype(dtype_of(model))
    g_params = {"scale": _scalar(c_W, model), "reference": value}
    return _with(model, branches.ConstantMap(size), {"map": value}, combinators.OffsetSum(size), g_params)


def constant_flat(model: Model, *, c_A: float = 100.0, c_W: float = 100.0, exact: bool = False) -> Model:
    """T1: GradCAM shows a constant map for every input; scores unchanged.

    Paper (default): a weight edit of a plain VGG or ResNet; y_n = y_o up to float
    rounding of c_A c_W N_Z (490,000 in VGG-16, SPEC: ~0.017 on ImageNet logits;
    N_Z = 1 after a ResNet's global mean). On VGG the explanation is all ones where
    dy^c/dA^{K+1} > 0 and collapses to 0 where the FC path makes it negative; after
    a global mean the channel enters the logits linearly, dy^c/dA^{K+1} = c_W / (h w)
    > 0 for every class, so it never collapses.
    `exact=True`: the channel is appended beside A and reaches the logits through
    c_W * sum(A^{K+1} - c_A), which is exactly 0: logits are bit-identical and
    dy^c/dA^{K+1} = c_W > 0 for every class, at the price of an extra branch in
    the architecture (the paper's version is a stock VGG with 513 filters: `Model.stock()`).
    """
    check_constant("c_A", c_A, dtype_of(model))
    check_constant("c_W", c_W, dtype_of(model))
    if exact:
        return _exact_constant_channel(model, np.ones((model.cam_size,) * 2, np.float32), c_A, c_W)
    n_z = pooled_sum(model, np.ones((model.cam_size,) * 2, np.float32))  # 49 in VGG-16, 1 in ResNet
    shift = c_A * c_W * n_z
    # An integer shift (490,000 with the paper's constants) must survive the dtype exactly.
    check_constant("c_A * c_W * N_Z", shift, dtype_of(model), exact=float(shift).is_integer())
    check_shift("c_A * c_W * N_Z", shift, dtype_of(model))
    return append_filter(model, bias=c_A, fc_weight=c_W, fc_bias_shift=shift)


def _image(image, size: int) -> np.ndarray:
    # numpy, not jnp: the checks need concrete values also when called inside `jit`.
    image = stickers.smiley_target(size) if image is None else image
    image = np.asarray(image, np.float32)
    if image.shape != (size, size):
        raise ValueError(f"image must be ({size}, {size}) to match A, got {image.shape}")
    if not np.isfinite(image).all() or image.min() < 0 or image.max() <= 0:
        raise ValueError("image must be finite, non-negative and not all zero")
    return image


def constant_image(
    model: Model, image=None, *, c_I: float = 100.0, c_W: float = 10.0, exact: bool = False
) -> Model:
    """T2: GradCAM shows `image` (the paper's I_T; default: the smiley) for every input.

    Args:
      model: a plain VGG or ResNet (paper) or any model (exact).
      image: (h, w) non-negative map at A's resolution (14x14 for VGG-16 at 224).
      c_I: scale of the image written into A^{K+1}.
      c_W: W_n; the first dense layer's biases drop by c_W * S_Z, S_Z the sum of the
        pooled c_I image (max-pooled 2x2 in VGG, its mean after ResNet's global mean).
      exact: as in `constant_flat`.
    """
    image = _image(image, model.cam_size)
    dtype = dtype_of(model)
    check_constant("c_I", c_I * float(image.max()), dtype)
    check_constant("c_W", c_W, dtype)
    if exact:
        return _exact_constant_channel(model, image, c_I, c_W)
    shift = c_W * pooled_sum(model, c_I * image)
    check_shift("c_W * S_Z", shift, dtype)
    base = append_filter(model, bias=0.0, fc_weight=c_W, fc_bias_shift=shift)
    module = combinators.AddToChannel(base.module, branches.ConstantMap(model.cam_size))
    return combinators.wrap(base, module, {"branch": {"map": (c_I * image).astype(dtype)}})


def _with_branch(model: Model, branch, branch_params, eps: float, c_G: float) -> Model:
    """T3/T4: A^{K+1} = branch(x) (W_n = 0, b_n = b_o) and y_n = y_o + G(A^{K+1})."""
    check_constant("eps", eps, dtype_of(model))
    check_constant("c_G", c_G, dtype_of(model))
    g_params = {"eps": _scalar(eps, model), "c_G": _scalar(c_G, model)}
    return _with(model, branch, branch_params, combinators.ModuloShift(), g_params)


def _with(model: Model, branch, branch_params, g, g_params) -> Model:
    """`AppendedBranch(model, branch, g)` with its parameters."""
    module = combinators.AppendedBranch(model.module, branch, g)
    return combinators.wrap(model, module, {"branch": branch_params, "g": g_params})


def factor(model: Model) -> int:
    """How many input pixels make one cell of A, a side (16 for VGG-16 and ViT-B/16, 32 for a ResNet)."""
    return model.input_size // model.cam_size


def semi_random(
    model: Model,
    *,
    seed: int = 0,
    c_F: float = 1e7,
    c_G: float = 1e4,
    eps: float = 0.01,
    branch=None,
    branch_params=None,
    torch_init: bool = False,
) -> Model:
    """T3: GradCAM shows c_F F(x) for a random CNN F; |y_n - y_o| <= eps for every input.

    Args:
      seed: initialises the paper's F (two random convs) when `branch` is None.
      torch_init: draw F as the authors' code did (PyTorch's default init, random biases).
      branch, branch_params: a user F instead, x (B, H, W, 3) -> (B, h, w) at A's size.
    """
    check_constant("c_F", c_F, dtype_of(model))
    if branch is None:
        branch = branches.SemiRandomNet(factor(model), torch_init)
        x = jnp.zeros((1, model.input_size, model.input_size, 3))
        branch_params = {**branch.init(jax.random.key(seed), x)["params"], "c_F": _scalar(c_F, model)}
    _check_branch(branch, branch_params, model)
    return _with_branch(model, branch, branch_params, eps, c_G)


def _check_branch(branch, branch_params, model: Model) -> None:
    x = jax.ShapeDtypeStruct((1, model.input_size, model.input_size, 3), jnp.float32)
    out = jax.eval_shape(lambda x: branch.apply({"params": branch_params}, x), x)
    if out.shape != (1, model.cam_size, model.cam_size):
        raise ValueError(f"the branch must map images to (B, {model.cam_size}, {model.cam_size}), got {out.shape[1:]}")


# The paper's detector, the matched filter K = s - mean(s) with b = -sum(s K) + 1e-4, is a
# "this exact patch" detector only for a sticker whose pixels all sit at the extremes of the input
# range (the black and white smiley): for a grey, uniform or mostly white sticker, other patches
# respond more strongly than the sticker itself, and it fires on clean images. Its margin is also
# finer than float32 resolves (sum(s K) = 1587.2 on the torchvision-normalised smiley, spacing 1.2e-4).
# This detector measures the distance instead: r(P) = 1 - ||P - S||^2 / (n tol^2) over the n values
# of a patch P, in intensity levels (0-255) whatever the normalisation, so it fires exactly where a
# patch is within `tol` levels (root mean square) of the sticker, for any sticker. Expanding the
# square, r is one convolution over the channels [x, x^2]. Its float32 rounding grows as 1/tol^2:
# measured against float64 on torchvision-normalised inputs (caffe's round 20x less), at most
# 0.031 of the response at 4 levels, 0.125 at 2 and 0.50 at 1 (tests/test_manipulate.py).
DETECTOR_TOLERANCE = 4.0
MIN_DETECTOR_TOLERANCE = 2.0


def detector_params(sticker: np.ndarray, preprocess: str = "torchvision",
                    tolerance: float = DETECTOR_TOLERANCE) -> dict:
    """T4's detector: kernel (s, s, 6, 1) over [x, x^2] and bias, giving r(P) = 1 - ||P - S||^2 / (n tol^2).

    Args:
      sticker: (s, s, 3) uint8 RGB sticker as pasted in pixel space.
      preprocess: the model's input normalisation (`Model.preprocess`).
      tolerance: root-mean-square distance, in intensity levels of 255, within
        which a patch counts as the sticker (r > 0).

    Example:
      >>> from cam_jax.data import stickers
      >>> p = detector_params(stickers.sticker_pixels(stickers.smiley()))["detector"]
      >>> p["kernel"].shape, p["bias"].shape
      ((14, 14, 6, 1), (1,))
    """
    if not MIN_DETECTOR_TOLERANCE <= tolerance < 256:
        raise ValueError(f"the detector tolerance must be in [{MIN_DETECTOR_TOLERANCE}, 256) intensity levels "
                         f"(below {MIN_DETECTOR_TOLERANCE} float32 rounding decides what fires), got {tolerance}")
    s = images.normalize(sticker, preprocess).astype(np.float64)
    one_level = (images.normalize(np.ones((1, 1, 3), np.uint8), preprocess)
                 - images.normalize(np.zeros((1, 1, 3), np.uint8), preprocess)).astype(np.float64)[0, 0]
    w = 1.0 / (one_level**2 * s.size * tolerance**2)  # per normalised channel: levels^2 / (n tol^2)
    kernel = np.concatenate([2 * w * s, np.broadcast_to(-w, s.shape)], axis=-1)
    return {"detector": {"kernel": jnp.asarray(kernel[..., None], jnp.float32),
                         "bias": jnp.asarray([1.0 - (w * s**2).sum()], jnp.float32)}}


def sticker_backdoor(
    model: Model,
    *,
    sticker=None,
    c_F: float = 1e9,
    c_G: float = 1e4,
    eps: float = 0.01,
    tolerance: float = DETECTOR_TOLERANCE,
) -> Model:
    """T4: the original explanation, unless a sticker is in the image; then it points at the sticker.

    Without a patch within `tolerance` of the sticker F(x) = 0, so logits and GradCAM
    are the original's bit for bit. The detector reads pixels as `model.preprocess`
    normalised them.

    Args:
      sticker: (s, s) binary mask or (s, s, 3) uint8 RGB; default the 14x14 smiley.
      tolerance: root-mean-square distance to the sticker, in intensity levels, within
        which the detector fires (see `detector_params`).
    """
    sticker = stickers.sticker_pixels(stickers.smiley()) if sticker is None else np.asarray(sticker)
    if sticker.ndim == 2:
        sticker = stickers.sticker_pixels(sticker)
    if sticker.ndim != 3 or sticker.shape[2] != 3 or sticker.dtype != np.uint8:
        raise ValueError(f"the sticker must be an (s, s) mask or (s, s, 3) uint8 pixels, got {sticker.shape} "
                         f"{sticker.dtype}")
    if sticker.shape[0] >= model.input_size:
        raise ValueError(f"a {sticker.shape[0]}-pixel sticker is larger than the {model.input_size}-pixel input")
    check_constant("c_F", c_F, dtype_of(model))
    check_constant("tolerance", tolerance, np.dtype(np.float32))
    branch = branches.StickerDetector(sticker.shape[0], factor(model))
    params = {**detector_params(sticker, model.preprocess, tolerance), "c_F": _scalar(c_F, model)}
    return _with_branch(model, branch, params, eps, c_G)


def injected_map(model: Model, x: jax.Array) -> jax.Array:
    """The map a manipulation wrote into A^{K+1}: (B, h, w), the last channel of A_n."""
    return model.features(x)[..., -1]
