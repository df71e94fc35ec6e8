"""Any flax CNN as a `Model`: cut at a named layer, without editing the network's code.

`features` runs the network and returns what the named submodule's `__call__`
returned; `head` runs it again with that output replaced by A, so the layers
after the cut compute the logits from A alone. Everything before the cut then
feeds only the replaced output, and under `jit` XLA drops it as dead code. The
interception is flax's own `nn.intercept_methods` (as penzai's unflaxify
does), the layer chosen by name like captum's `LayerGradCam(forward, layer)`.

`cut` checks the split on a random probe: if the layers after the cut read
anything computed before it other than the cut's output (a skip connection
around it), `head(features(x))` would differ from the network and it refuses.

A token network (a ViT) is cut with `tokens=n`: the layer returns (B, n + g*g, D)
tokens, the first n (a class token) are dropped and the rest make A as a (g, g)
grid (pytorch-grad-cam's `reshape_transform`). Its head reads more than A (the
class token, the residual stream around the layer), so it takes the images as
its context (`Model.encode`): it runs the network on them with the layer's
patch tokens replaced by A. Under one `jit` with `encode`, XLA computes the
layers before the cut once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.model import Model
from cam_jax.models.fields import MAX_INPUT_SIZE


class Cut(nn.Module):
    """A network split at the submodule `layer` into `features` and `head`.

    Attributes:
      network: any linen module mapping (B, H, W, 3) images to (B, num_classes) logits.
      layer: "/"-separated path of the submodule whose output is A, as in the
        network's parameter tree (e.g. "ResNetBlock_15" or "stage4/block2").
      input_size: side of the square input in pixels.
      num_classes, cam_size: the logits' width and A's side (filled in by `cut`).
      call_kwargs: keyword arguments of the network's `__call__`, as sorted pairs
        (e.g. (("train", False),)).
      tokens: -1 for a layer returning a feature map (B, h, w, K); n >= 0 for one returning tokens
        (B, n + g*g, D), of which the first n are left out of A.
    """

    network: nn.Module
    layer: str
    input_size: int
    num_classes: int = 0
    cam_size: int = 0
    call_kwargs: tuple[tuple[str, Any], ...] = ()
    tokens: int = -1

    def _run(self, x: jax.Array, replace: Callable[[Callable], jax.Array] | None = None
             ) -> tuple[jax.Array, list, list]:
        """Logits, the outputs the cut layer produced (or was replaced by: `replace(compute)`, given the
        layer's own computation), and every layer path seen."""
        target = tuple(self.layer.split("/"))
        own = len(self.path) + 1  # this wrapper's place (under combinators too) and its "network"
        captured, seen = [], []

        def interceptor(next_fun, args, kwargs, context):
            if context.method_name != "__call__":
                return next_fun(*args, **kwargs)
            path = tuple(context.module.path[own:])
            seen.append("/".join(path))
            if path != target:
                return next_fun(*args, **kwargs)
            out = next_fun(*args, **kwargs) if replace is None else replace(lambda: next_fun(*args, **kwargs))
            captured.append(out)
            return out

        with nn.intercept_methods(interceptor):
            logits = self.network(x, **dict(self.call_kwargs))
        return logits, captured, seen

    def _only(self, captured: list, seen: list) -> jax.Array:
        if not captured:
            layers = ", ".join(p for p in dict.fromkeys(seen) if p)
            raise ValueError(f"the network has no layer {self.layer!r}; its layers: {layers}")
        if len(captured) > 1:
            raise ValueError(f"layer {self.layer!r} is called {len(captured)} times; cut at a layer called once")
        out = captured[0]
        if self.tokens < 0:
            if not isinstance(out, jax.Array) or out.ndim != 4:
                raise ValueError(f"layer {self.layer!r} must return one (B, h, w, K) array to be cut at (tokens "
                                 "(B, T, D)? cut with tokens=)")
            return out
        grid = math.isqrt(max(out.shape[1] - self.tokens, 0)) if isinstance(out, jax.Array) and out.ndim == 3 else 0
        if not grid or grid * grid != out.shape[1] - self.tokens:
            shape = getattr(out, "shape", type(out).__name__)
            raise ValueError(f"layer {self.layer!r} must return (B, {self.tokens} + g*g, D) tokens to be cut at with "
                             f"tokens={self.tokens}, got {shape}")
        return out[:, self.tokens:].reshape(out.shape[0], grid, grid, out.shape[2])

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """(B, H, W, 3) normalised images -> (A (B, h, w, K), the images for a token network's head, else None)."""
        _, captured, seen = self._run(x)
        return self._only(captured, seen), (x if self.tokens >= 0 else None)

    def features(self, x: jax.Array) -> jax.Array:
        """(B, H, W, 3) normalised images -> A, the cut layer's output (B, h, w, K)."""
        return self.encode(x)[0]

    def head(self, a: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """A -> logits (B, num_classes): the network after the cut layer (for a token network, on the images
        `context` with the layer's patch tokens replaced by A)."""
        if self.tokens < 0:
            blank = jnp.zeros((a.shape[0], self.input_size, self.input_size, 3), a.dtype)
            logits, captured, seen = self._run(blank, lambda compute: a)
        else:
            if context is None:
                raise ValueError("a token network's head reads the images besides A: pass the context Model.encode "
                                 "returns")

            def replace(compute):
                out = compute()
                return jnp.concatenate([out[:, :self.tokens], a.reshape(a.shape[0], -1, a.shape[-1])], axis=1)

            logits, captured, seen = self._run(context, replace)
        self._only(captured, seen)
        return logits

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(*self.encode(x))


def cut(network: nn.Module, variables: dict, layer: str, *, input_size: int, seed: int = 0,
        preprocess: str = "torchvision", tokens: int | None = None, **call_kwargs: Any) -> Model:
    """Wrap a flax network and its variables as a `Model` whose A is the output of `layer`.

    Args:
      network: a linen module, (B, input_size, input_size, 3) -> (B, C) logits.
      variables: its variables as `network.init` returns them ({"params", "batch_stats", ...}).
      layer: the submodule to cut at, "/"-separated as in the parameter tree.
      input_size: side of the square input.
      seed: of the random probe that checks the split.
      preprocess: how the network expects images normalised (`Model.preprocess`).
      tokens: for a token network (a ViT), how many tokens lead the layer's output before the g*g
        patch tokens (1 for a class token); A is the patch tokens as a (g, g) grid.
      **call_kwargs: passed to the network's `__call__` (e.g. train=False).

    Raises:
      ValueError: no such layer, a layer called more than once or not returning a
        feature map, or a split the head does not reproduce (a skip around the cut).

    Example:
      >>> import flax.linen as nn
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         x = nn.relu(nn.Conv(4, (3, 3), name="body")(x))
      ...         return nn.Dense(2, name="out")(x.mean(axis=(1, 2)))
      >>> x = jnp.zeros((1, 8, 8, 3))
      >>> model = cut(Net(), Net().init(jax.random.key(0), x), "body", input_size=8)
      >>> model.features(x).shape, model.num_classes
      ((1, 8, 8, 4), 2)
    """
    if not isinstance(layer, str) or not layer:
        raise ValueError(f"layer must be a submodule's name, '/'-separated, got {layer!r}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or not 0 < input_size <= MAX_INPUT_SIZE:
        raise ValueError(f"input_size must be an integer in [1, {MAX_INPUT_SIZE}], got {input_size!r}")
    if not isinstance(variables, Mapping):
        raise ValueError(f"variables must be what network.init returns, a dict, got {type(variables).__name__}")
    variables = dict(variables)
    if "params" not in variables:
        raise ValueError("variables must be what network.init returns: a dict with 'params'")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0):
        raise ValueError(f"tokens must be the number of tokens before the patch tokens (0 or more), got {tokens!r}")
    wrapped = {name: {"network": value} for name, value in variables.items()}
    probe = Cut(network, layer, input_size, call_kwargs=tuple(sorted(call_kwargs.items())),
                tokens=-1 if tokens is None else tokens)
    x = jax.random.normal(jax.random.key(seed), (2, input_size, input_size, 3))
    a = jax.eval_shape(lambda v, x: probe.apply(v, x, method="features"), wrapped, x)
    logits = jax.eval_shape(lambda v, x: probe.network.apply(variables, x, **call_kwargs), variables, x)
    if a.shape[1] != a.shape[2] or len(logits.shape) != 2:
        raise ValueError(f"expected a square (B, h, h, K) map and (B, C) logits, got {a.shape} and {logits.shape}")
    module = probe.clone(num_classes=logits.shape[1], cam_size=a.shape[1])
    model = Model(module, wrapped.pop("params"), wrapped, preprocess)
    split = jax.jit(lambda m, x: m.head(*m.encode(x)))(model, x)
    whole = jax.jit(lambda x: network.apply(variables, x, **call_kwargs))(x)
    if not np.allclose(np.asarray(split), np.asarray(whole), rtol=1e-4, atol=1e-5 * float(np.abs(whole).max() + 1)):
        raise ValueError(f"the layers after {layer!r} also read values computed before it (a skip connection "
                         "around the cut?): the head of A alone does not give the network's logits; cut at a "
                         "layer whose output alone determines them")
    return model
