"""GradCAM against a closed form, properties, and input checks."""

from __future__ import annotations

import flax.linen as nn
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from cam_jax import Model, gradcam, init_params, normalize, upsample
from cam_jax.cams.weightings import hires_cam
from cam_jax.models import build_model


class LinearCAM(nn.Module):
    """features: A = x (K = 3 channels); head: y = W^T mean_ij(A) + b.

    Closed form: dy^c/dA^k_ij = W[k, c] / N, so alpha_k = W[k, c] / N and
    I^c = ReLU(sum_k W[k, c] x^k / N), with N = H * W.
    """

    num_classes: int = 4
    input_size: int = 6
    cam_size: int = 6

    def setup(self):
        self.fc = nn.Dense(self.num_classes)

    def features(self, x):
        return x

    def head(self, a):
        return self.fc(a.mean(axis=(1, 2)))

    def __call__(self, x):
        return self.head(self.features(x))


def test_closed_form_on_linear_model():
    module = LinearCAM()
    x = jax.random.normal(jax.random.key(0), (5, 6, 6, 3))
    params = module.init(jax.random.key(1), x)["params"]
    model = Model(module, params)
    expl = gradcam(model, x)
    w = np.asarray(params["fc"]["kernel"])
    classes = np.asarray(expl.classes)
    expected = np.maximum(np.einsum("bhwk,kb->bhw", np.asarray(x), w[:, classes]) / 36, 0)
    np.testing.assert_allclose(np.asarray(expl.cam), expected, rtol=1e-5, atol=1e-7)
    # explicit classes are honoured
    chosen = jnp.array([3, 2, 1, 0, 0])
    expl = gradcam(model, x, chosen)
    expected = np.maximum(np.einsum("bhwk,kb->bhw", np.asarray(x), w[:, [3, 2, 1, 0, 0]]) / 36, 0)
    np.testing.assert_allclose(np.asarray(expl.cam), expected, rtol=1e-5, atol=1e-7)
    # HiResCAM on this model is the same map (gradient constant over pixels)
    hires = gradcam(model, x, weighting=hires_cam)
    np.testing.assert_allclose(np.asarray(hires.cam), np.asarray(gradcam(model, x).cam), rtol=1e-5, atol=1e-7)


def test_gradcam_alpha_matches_finite_differences():
    """alpha_k used by the map equals a float64 central difference of y^c along A^k / N."""
    module = build_model("vgg16", num_classes=6, input_size=64, width=1 / 16)
    model = Model(module, init_params(module, seed=2))
    x = jax.random.normal(jax.random.key(3), (1, 64, 64, 3))
    a = np.asarray(model.features(x))
    expl = gradcam(model, x)
    c = int(expl.classes[0])
    with jax.enable_x64(True):
        model64 = Model(module, jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), model.params))
        y = jax.jit(lambda a: model64.head(a)[0, c])
        a64, h = jnp.asarray(a, jnp.float64), 1e-7
        alphas = np.array(
            [(y(a64.at[..., k].add(h)) - y(a64.at[..., k].add(-h))) / (2 * h * 16) for k in range(a.shape[-1])]
        )
    # The map is sum_k alpha_k A^k: rebuild it from the finite-difference alphas.
    expected = np.maximum(np.einsum("bhwk,k->bhw", a, alphas), 0)
    assert np.abs(alphas).max() > 1e-3
    np.testing.assert_allclose(np.asarray(expl.cam), expected, rtol=1e-4, atol=1e-4 * expected.max())


@given(seed=st.integers(0, 2**16), scale=st.floats(0.01, 100.0))
def test_normalised_map_invariant_to_scaling_the_class_row(seed, scale):
    """Scaling the explained class's last-layer weights by c > 0 scales I^c by c."""
    module = build_model("vgg11", num_classes=5, input_size=32, width=1 / 16)
    params = init_params(module, seed=seed)
    x = jax.random.normal(jax.random.key(seed + 1), (2, 32, 32, 3))
    model = Model(module, params)
    base = gradcam(model, x, jnp.array([1, 1]))
    assert float(base.cam.min()) >= 0
    fc3 = params["fc3"]
    scaled = {**params, "fc3": {"kernel": fc3["kernel"].at[:, 1].multiply(scale), "bias": fc3["bias"]}}
    other = gradcam(Model(module, scaled), x, jnp.array([1, 1]))
    np.testing.assert_allclose(np.asarray(other.cam), scale * np.asarray(base.cam), rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(np.asarray(normalize(other.cam)), np.asarray(normalize(base.cam)), atol=1e-4)


def test_normalize_and_upsample():
    cam = jnp.array([[[0.0, 2.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_array_equal(np.asarray(normalize(cam)), [[[0, 1], [0.5, 0]], [[0, 0], [0, 0]]])
    assert upsample(cam, 8).shape == (2, 8, 8)


def test_pre_relu_switch_changes_a_only_before_relu():
    post = build_model("vgg16", num_classes=4, input_size=32, width=1 / 16)
    pre = build_model("vgg16", num_classes=4, input_size=32, width=1 / 16, cam_pre_relu=True)
    params = init_params(post)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    a_post, a_pre = Model(post, params).features(x), Model(pre, params).features(x)
    assert float(a_pre.min()) < 0
    np.testing.assert_allclose(np.asarray(a_post), np.maximum(np.asarray(a_pre), 0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(Model(pre, params)(x)), np.asarray(Model(post, params)(x)), atol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    module = build_model("vgg11", num_classes=3, input_size=32, width=1 / 16)
    return Model(module, init_params(module))


@pytest.mark.parametrize(
    "images, error, message",
    [
        (np.zeros((32, 32, 3), np.float32), ValueError, "rank 4.*images\\[None\\]"),
        (np.zeros((1, 3, 32, 32), np.float32), ValueError, "channels-first"),
        (np.zeros((1, 64, 64, 3), np.float32), ValueError, "must be \\(B, 32, 32, 3\\)"),
        (np.zeros((1, 32, 32, 3), np.uint8), TypeError, "floating point"),
        (np.full((1, 32, 32, 3), np.nan, np.float32), ValueError, "NaN"),
        ([[1.0]], TypeError, "must be an array"),
    ],
)
def test_bad_images(tiny, images, error, message):
    with pytest.raises(error, match=message):
        gradcam(tiny, images)


def test_bad_classes(tiny):
    x = np.zeros((2, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="classes must have shape \\(2,\\)"):
        gradcam(tiny, x, jnp.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        gradcam(tiny, x, jnp.array([0.0, 1.0]))
