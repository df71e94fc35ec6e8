"""Any flax network cut at a named layer, against a hand-split reference, and the cuts it refuses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax import constant_flat, gradcam, semi_random
from cam_jax.models import cut


class ResNetBlock(nn.Module):
    """The block of flax's examples/imagenet/models.py (auto-named submodules, batch norm)."""

    filters: int
    conv: Any
    norm: Any
    act: Callable
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x):
        residual = x
        y = self.conv(self.filters, (3, 3), self.strides)(x)
        y = self.act(self.norm()(y))
        y = self.norm()(self.conv(self.filters, (3, 3))(y))
        if residual.shape != y.shape:
            residual = self.norm(name="norm_proj")(self.conv(self.filters, (1, 1), self.strides, name="conv_proj")(x))
        return self.act(residual + y)


class FlaxExampleResNet(nn.Module):
    """flax's imagenet example ResNet: one `__call__(x, train)`, no features/head split."""

    stage_sizes: Sequence[int]
    num_classes: int
    num_filters: int = 8

    @nn.compact
    def __call__(self, x, train: bool = True):
        conv = partial(nn.Conv, use_bias=False)
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        x = conv(self.num_filters, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="conv_init")(x)
        x = nn.max_pool(nn.relu(norm(name="bn_init")(x)), (3, 3), strides=(2, 2), padding="SAME")
        for i, size in enumerate(self.stage_sizes):
            for j in range(size):
                strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                x = ResNetBlock(self.num_filters * 2**i, conv=conv, norm=norm, act=nn.relu, strides=strides)(x)
        return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


@pytest.fixture(scope="module")
def network():
    net = FlaxExampleResNet(stage_sizes=(2, 2, 2, 2), num_classes=5)
    x = jax.random.normal(jax.random.key(0), (3, 64, 64, 3))
    variables = net.init(jax.random.key(1), x, train=False)
    rng = np.random.default_rng(0)  # non-trivial running statistics, so eval-mode batch norm matters
    stats = jax.tree_util.tree_map_with_path(
        lambda p, s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape) if p[-1].key == "var"
                                 else rng.uniform(-0.1, 0.1, s.shape), s.dtype), variables["batch_stats"])
    return net, {"params": variables["params"], "batch_stats": stats}, x


def hand_split(net, variables, x):
    """Reference: A from flax's own capture of the last block's output, and the head written by hand
    (global mean, the Dense layer's matrix) and differentiated with jax.grad per image."""
    _, state = net.apply(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
    a = state["intermediates"]["ResNetBlock_7"]["__call__"][0]
    dense = variables["params"]["Dense_0"]

    def head(a):
        return a.mean(axis=(1, 2)) @ dense["kernel"] + dense["bias"]

    logits = head(a)
    classes = logits.argmax(-1)
    grads = jnp.stack([jax.grad(lambda ai, i=i: head(ai[None])[0, classes[i]])(a[i]) for i in range(len(x))])
    cam = np.maximum(np.einsum("bhwk,bk->bhw", np.asarray(a), np.asarray(grads.mean(axis=(1, 2)))), 0)
    return np.asarray(a), np.asarray(logits), cam


def test_cut_matches_the_hand_split_reference(network):
    net, variables, x = network
    model = cut(net, variables, "ResNetBlock_7", input_size=64, train=False)
    assert model.num_classes == 5 and model.cam_size == 2 and model.input_size == 64
    a, logits, cam = hand_split(net, variables, x)
    np.testing.assert_allclose(np.asarray(model.features(x)), a, rtol=1e-6, atol=1e-6)
    expl = gradcam(model, x)
    np.testing.assert_allclose(np.asarray(expl.logits), logits, rtol=1e-5, atol=1e-5)
    assert cam.max() > 0
    np.testing.assert_allclose(np.asarray(expl.cam), cam, rtol=1e-4, atol=1e-5 * cam.max())
    np.testing.assert_allclose(np.asarray(expl.logits), np.asarray(net.apply(variables, x, train=False)), rtol=1e-5,
                               atol=1e-5)


def test_manipulations_wrap_a_cut_network(network):
    net, variables, x = network
    model = cut(net, variables, "ResNetBlock_7", input_size=64, train=False)
    np.testing.assert_array_equal(np.asarray(gradcam(constant_flat(model, exact=True), x).logits),
                                  np.asarray(gradcam(model, x).logits))
    t3 = semi_random(model)
    assert np.abs(np.asarray(gradcam(t3, x).logits - model(x))).max() <= 0.01


def test_cuts_it_refuses(network):
    net, variables, _ = network
    with pytest.raises(ValueError, match="no layer 'ResNetBlock_99'.*ResNetBlock_7"):
        cut(net, variables, "ResNetBlock_99", input_size=64, train=False)
    # Inside a block, the residual path skips the cut: the head of A alone is not the network.
    with pytest.raises(ValueError, match="skip connection"):
        cut(net, variables, "ResNetBlock_7/Conv_1", input_size=64, train=False)
    with pytest.raises(ValueError, match="what network.init returns"):
        cut(net, variables["params"], "ResNetBlock_7", input_size=64)


def test_every_method_runs_on_a_cut_network(network):
    """The whole family through the adapter: finite maps at A's size (CAMs) or the image's (input space)."""
    from cam_jax import explain_many

    net, variables, x = network
    model = cut(net, variables, "ResNetBlock_7", input_size=64, train=False)
    out = explain_many(model, x, "all", batch_images=64, samples=2, steps=4)
    for name, e in out.items():
        assert np.isfinite(np.asarray(e.cam)).all(), name
        assert e.cam.shape in ((3, 2, 2), (3, 64, 64)), (name, e.cam.shape)
    np.testing.assert_array_equal(np.asarray(out["gradcam"].classes), np.asarray(out["saliency"].classes))
