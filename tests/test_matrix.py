"""The vulnerability matrix's findings that hold by construction, each against the original's own explanation.

Which explanation a manipulation cannot touch, and why:
- T4 without a sticker: every method. A^{K+1} = F(x) = 0 and G(0) = 0, so A^{1..K}, the logits
  and dS/dA^{1..K} are the original's; the methods that sum over channels (`weightings.apply`) give
  its map bit for bit at any batch size, the principal-component ones to float rounding.
- EigenCAM under T1 (paper and exact): the injected channel is constant over the pixels, and the
  principal direction is taken after centring each channel, so the channel drops out.
- EigenGradCAM under the exact T1: there dS/dA^{K+1} = c_W at every pixel, so A^{K+1} dS/dA^{K+1}
  is constant too, and dS/dA^{1..K} is the original's (the logits are).
(AblationCAM under T4 with stickers is unchanged in exact arithmetic, as G = eps mod(c_G sum A^{K+1}, 1)
is 0 once c_G sum A^{K+1} >= 2**24, so A^{K+1} gets the weight 0; in float32 that weight is a rounding
error of the score, ~1e-7 relative, times A^{K+1} ~ 1e4 per pixel: the map moves by about 1 %.)
The same maps under the other methods do move (the last test), so these comparisons can fail.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax import manipulations as manipulate
from cam_jax.cams.methods import explain_many
from cam_jax.data import images, shapes, stickers
from cam_jax.evaluation.config import MATRIX_METHODS
from cam_jax.models import build_model
from cam_jax.testing import model_and_images

SIZE = 64
# The weightings that are sums over channels (and AblationCAM's): bit for bit, as the original's block
# of channels is weighed by the original's own expression (`weightings.apply`).
WEIGHTED_SUMS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "ablationcam")


@pytest.fixture(scope="module")
def model():
    return model_and_images((build_model("vgg16", num_classes=4, input_size=SIZE, width=1 / 16), 0), batch=1)[0]


def clean(n: int) -> jnp.ndarray:
    return jnp.asarray(images.normalize(shapes.batch(shapes.TEST_SEED, range(n), SIZE).pixels))


def stickered(n: int) -> jnp.ndarray:
    b = shapes.batch(shapes.TEST_SEED, range(n), SIZE)
    return jnp.asarray(images.normalize(stickers.paste_by_index(b.pixels, np.arange(n), 0,
                                                                stickers.sticker_pixels(stickers.smiley(7)))[0]))


@pytest.mark.parametrize("batch", [1, 3])
def test_t4_without_a_sticker_leaves_every_method_unchanged(model, batch):
    t4 = manipulate.sticker_backdoor(model, sticker=stickers.sticker_pixels(stickers.smiley(7)))
    x = clean(batch)
    for target in ("logit", "softmax"):
        ours = explain_many(model, x, MATRIX_METHODS, target=target)
        theirs = explain_many(t4, x, MATRIX_METHODS, target=target)
        for method in MATRIX_METHODS:
            np.testing.assert_array_equal(np.asarray(theirs[method].logits), np.asarray(ours[method].logits))
            if method in WEIGHTED_SUMS:
                np.testing.assert_array_equal(np.asarray(theirs[method].cam), np.asarray(ours[method].cam),
                                              err_msg=f"{method} {target}")
            else:
                np.testing.assert_allclose(np.asarray(theirs[method].cam), np.asarray(ours[method].cam),
                                           rtol=1e-4, atol=1e-5 * float(ours[method].cam.max()))


def _close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert b.max() > 0, what  # a live map
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * b.max(), err_msg=what)


def test_the_cells_no_manipulation_can_move(model):
    x = clean(3)
    original = explain_many(model, x, ("eigencam", "eigengradcam"))
    for t1 in (manipulate.constant_flat(model), manipulate.constant_flat(model, exact=True)):
        _close(explain_many(t1, x, ("eigencam",))["eigencam"].cam, original["eigencam"].cam, "EigenCAM under T1")
    exact = explain_many(manipulate.constant_flat(model, exact=True), x, ("eigengradcam",))
    _close(exact["eigengradcam"].cam, original["eigengradcam"].cam, "EigenGradCAM under the exact T1")


def test_the_same_manipulations_move_other_methods(model):
    x, s = clean(3), stickered(3)
    t4 = manipulate.sticker_backdoor(model, sticker=stickers.sticker_pixels(stickers.smiley(7)))
    pairs = [(manipulate.constant_flat(model), x, "gradcam"), (manipulate.constant_image(model, exact=True), x,
             "eigencam"), (t4, s, "gradcam")]
    for manipulated, data, method in pairs:
        moved = explain_many(manipulated, data, (method,))[method].cam
        ours = explain_many(model, data, (method,))[method].cam
        assert float(jnp.abs(moved / moved.max() - ours / ours.max()).max()) > 0.2, method
