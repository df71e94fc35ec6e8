"""Random parameters for any architecture, without compiling a sampler per shape."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def param_shapes(module: nn.Module) -> dict:
    """Abstract parameter tree (shapes and dtypes) that `module` expects, without allocating."""
    x = jax.ShapeDtypeStruct((1, module.input_size, module.input_size, 3), jnp.float32)
    return jax.eval_shape(module.init, jax.random.key(0), x)["params"]


def init_params(module: nn.Module, seed: int = 0) -> dict:
    """Random parameters for `module`: He-normal kernels (fan-in), zero biases, unit BN scales.

    Drawn with numpy on the shapes from `param_shapes`: jax.random would compile
    one sampler per kernel shape, which costs seconds on a CPU for a tiny model.

    Example:
      >>> from cam_jax.models import build_model
      >>> params = init_params(build_model("resnet18", num_classes=3, input_size=32, width=1 / 16))
      >>> params["fc"]["kernel"].shape
      (32, 3)
    """
    rng = np.random.default_rng(seed)

    def draw(path, leaf: jax.ShapeDtypeStruct) -> jax.Array:
        if len(leaf.shape) == 1:
            fill = jnp.ones if path[-1].key == "scale" else jnp.zeros
            return fill(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, param_shapes(module))
