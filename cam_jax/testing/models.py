"""Random models and images for tests, and comparisons of their outputs."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from cam_jax.model import Model
from cam_jax.models.init import init_params
from cam_jax.models.registry import build_model


def random_model(arch: str, seed: int = 0, **kwargs) -> Model:
    """A randomly initialised model of a registered arch (`build_model`'s keyword arguments).

    Example:
      >>> random_model("vgg11", num_classes=3, input_size=32, width=1 / 16).cam_size
      2
    """
    module = build_model(arch, **kwargs)
    return Model(module, init_params(module, seed))


def model_and_images(config: tuple, batch: int = 3) -> tuple[Model, jax.Array]:
    """(module, seed) -> a randomly initialised `Model` and `batch` standard-normal images for it."""
    module, seed = config
    model = Model(module, init_params(module, seed))
    x = jax.random.normal(jax.random.key(seed), (batch, module.input_size, module.input_size, 3))
    return model, x


def l1(cam, target) -> np.ndarray:
    """SPEC's L1: sum over the h x w pixels of |normalised map - normalised target|, per image."""
    from cam_jax.cams.maps import normalize

    return np.abs(np.asarray(normalize(cam)) - np.asarray(normalize(target))).sum(axis=(-2, -1))


def new_channel_alpha(model: Model, x, classes) -> np.ndarray:
    """alpha_{K+1} = mean over pixels of dy^c/dA^{K+1} for each image, by the head's own vjp."""
    a = model.features(x)
    _, vjp = jax.vjp(model.head, a)
    (g,) = vjp(jax.nn.one_hot(classes, model.num_classes))
    return np.asarray(g[..., -1].mean(axis=(1, 2)))


def assert_trees_all_close(a, b, atol=0.0, rtol=0.0):
    """Assert two pytrees have the same structure and leaves within tolerance."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol)


class Tiny(nn.Module):
    """Two 3x3 convolutions (ReLU) to A at the images' resolution, a mean over pixels and a dense layer:
    a network small enough to run Quantus's per-step loops on, with A as large as the image, so CAM maps
    need no resizing. Its torch twin is `oracles.torch_tiny`. `input_size` 24 gives 576 pixels, a multiple
    of 3 (Quantus steps over colour values: a step of 3 m values is m whole pixels)."""

    input_size: int = 24
    num_classes: int = 5
    width: int = 8

    @property
    def cam_size(self) -> int:
        return self.input_size

    @nn.compact
    def __call__(self, x):
        return self.head(self.features(x))

    @nn.compact
    def features(self, x):
        x = nn.relu(nn.Conv(6, (3, 3), padding=1, name="conv1")(x))
        return nn.relu(nn.Conv(self.width, (3, 3), padding=1, name="conv2")(x))

    @nn.compact
    def head(self, a):
        return nn.Dense(self.num_classes, name="fc")(a.mean(axis=(1, 2)))


def tiny_model(seed: int = 0, **fields) -> Model:
    """A randomly initialised `Tiny` (its fields as keyword arguments), biases non-zero."""
    module = Tiny(**fields)
    x = jax.numpy.zeros((1, module.input_size, module.input_size, 3))
    params = module.init(jax.random.key(seed), x, method="features")["params"]
    a = module.apply({"params": params}, x, method="features")
    params = {**params, **module.init(jax.random.key(seed + 1), a, method="head")["params"]}
    params = jax.tree.map(lambda p: p + 0.05 if p.ndim == 1 else p, params)
    return Model(module, params)
