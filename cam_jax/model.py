"""A model is a module plus its variables; both halves (features, head) are exposed for explanations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

PREPROCESSINGS = ("torchvision", "caffe")


@struct.dataclass
class Model:
    """An immutable (module, params) pair; a pytree whose only leaves are the variables.

    `module` is any linen module with methods `features(x) -> A` and
    `head(A) -> logits` and attributes `input_size`, `cam_size` and
    `num_classes`: `VGG`, `ResNet`, `ViT`, a user's network cut at a layer
    (`cam_jax.models.cut`) and every manipulation combinator. Because the
    module is static pytree metadata, a `Model` passes straight through `jax.jit`.

    A head may also read a *context*: values computed before the cut, besides A, that
    the layers after it read (a ViT's class token, which the last block's attention
    mixes with the patch tokens that make A). Such a module defines
    `encode(x) -> (A, context)` and `head(A, context)`; explanations differentiate
    the head with the context held, as a hook on the cut layer does in torch.

    `collections` holds variables other than parameters that the module reads
    (a user network's `batch_stats`); the architectures cam_jax builds fold
    batch norm into their convolutions and leave it empty.

    `preprocess` names how the weights expect images normalised ("torchvision"
    or "caffe", `cam_jax.data.images.normalize`); loading reads it from the weight
    file and every manipulation keeps it, so what depends on the input's scale
    (T4's sticker detector) cannot disagree with the data.

    A module may also define the optional methods a wrapper needs (`split`, `stock`,
    `describe` and the attribute `appended`, below); nothing outside a wrapper's own
    package inspects what it wraps.
    """

    module: nn.Module = struct.field(pytree_node=False)
    params: Any
    collections: dict[str, Any] = struct.field(default_factory=dict)
    preprocess: str = struct.field(pytree_node=False, default="torchvision")

    def __post_init__(self):
        if self.preprocess not in PREPROCESSINGS:
            raise ValueError(f"unknown preprocess {self.preprocess!r}; use one of {PREPROCESSINGS}")

    @property
    def variables(self) -> dict[str, Any]:
        """What `module.apply` takes: {"params": ..., **collections}."""
        return {"params": self.params, **self.collections}

    def features(self, images: jax.Array) -> jax.Array:
        """(B, H, W, 3) normalised images -> A, (B, h, w, K)."""
        return self.module.apply(self.variables, images, method="features")

    def encode(self, images: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """(B, H, W, 3) normalised images -> (A (B, h, w, K), context (B, ...) or None): A and what else
        the head reads (the module's optional `encode`; None for a CNN, whose head reads A alone)."""
        return self.module.apply(self.variables, images, method=encode_of)

    def head(self, a: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """A, (B, h, w, K) -> logits (B, num_classes), dropout off; `context` from `encode` for a module that
        has one."""
        return self.module.apply(self.variables, a, context, method=head_of)

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.head(*self.encode(images))

    @property
    def input_size(self) -> int:
        return self.module.input_size

    @property
    def cam_size(self) -> int:
        return self.module.cam_size

    @property
    def num_classes(self) -> int:
        return self.module.num_classes

    @property
    def appended(self) -> int:
        """Channels a wrapper appended to A (the module's `appended`, else 0): explanations weigh them as a
        block of their own, so the channels before them are weighed by the expression that explains the base."""
        return getattr(self.module, "appended", 0)

    def split(self) -> Split | None:
        """`Split(base, branch, g)` when the module extends a base by one channel A^{K+1} = branch(x) and a
        scalar g(A^{K+1}) added to every logit (its optional method `split(variables)`); else None.

        An explanation can then run the base's own head and backward and add the branch's: the base's
        block of dS/dA comes from the very expression that explains the base.
        """
        split = getattr(self.module, "split", None)
        if split is None:
            return None
        module, variables, branch, g = split(self.variables)
        base = self.replace(module=module, params=variables["params"],
                            collections={k: v for k, v in variables.items() if k != "params"})
        return Split(base, branch, g)

    def stock(self) -> Model:
        """This function as a weight file of a stock architecture stores it (the module's optional
        `stock(params) -> (module, params)`; the model itself when it has none)."""
        stock = getattr(self.module, "stock", None)
        if stock is None:
            return self
        module, params = stock(self.params)
        return self.replace(module=module, params=params)

    def describe(self) -> tuple[str, ...]:
        """One line per wrapper around the stock network, outermost first (the module's optional
        `describe(channels)`, channels being A's count); empty for a stock network."""
        describe = getattr(self.module, "describe", None)
        if describe is None:
            return ()
        channels = jax.eval_shape(self.features, jax.ShapeDtypeStruct((1, self.input_size, self.input_size, 3),
                                                                      jnp.float32)).shape[-1]
        return tuple(describe(channels))


def encode_of(module: nn.Module, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """A bound module's `encode(x)`, or (`features(x)`, None) for a module without a context: what
    wrappers call on the module they wrap."""
    own = getattr(module, "encode", None)
    return own(x) if own is not None else (module.features(x), None)


def head_of(module: nn.Module, a: jax.Array, context: jax.Array | None) -> jax.Array:
    """A bound module's `head(a)`, given `context` only when there is one (a CNN's head takes A alone)."""
    if context is None:
        return module.head(a)
    return module.head(a, context)


class Split(NamedTuple):
    """A model as a base extended by a branch: A = [A_base, branch(x)], y = y_base + g(A^{K+1}).

    Attributes:
      base: the `Model` extended.
      branch: x (B, H, W, 3) -> (B, h, w), the appended channel.
      g: (B, h, w) -> (B,), added to every logit.
    """

    base: Model
    branch: Callable[[jax.Array], jax.Array]
    g: Callable[[jax.Array], jax.Array]


def check_images(images: Any, input_size: int) -> None:
    """Raise a `ValueError`/`TypeError` saying what is wrong with a batch of images.

    Expects (B, input_size, input_size, 3) floating point, finite values. Values
    are checked only for concrete arrays (not inside a caller's `jit`).
    """
    shape = getattr(images, "shape", None)
    dtype = getattr(images, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(f"images must be an array, got {type(images).__name__}")
    if len(shape) != 4:
        raise ValueError(
            f"images must have rank 4 (B, H, W, 3), got shape {tuple(shape)}"
            + ("; add a batch axis with images[None]" if len(shape) == 3 else "")
        )
    if shape[3] != 3 and shape[1] == 3:
        raise ValueError(f"images look channels-first {tuple(shape)}; cam_jax expects NHWC (B, H, W, 3)")
    if tuple(shape[1:]) != (input_size, input_size, 3):
        raise ValueError(f"images must be (B, {input_size}, {input_size}, 3) for this model, got {tuple(shape)}")
    if shape[0] == 0:
        raise ValueError("images is an empty batch")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"images must be floating point (normalised as in preprocessing), got {dtype}; "
            "uint8 pixels need cam_jax.images.normalize first"
        )
    if not isinstance(images, jax.core.Tracer) and not bool(np.isfinite(np.asarray(images)).all()):
        raise ValueError("images contain NaN or infinite values")


def check_classes(classes: Any, batch: int, num_classes: int, name: str = "classes") -> jax.Array | None:
    """`classes` as (B,) int32 after checking shape, dtype and range; None stays None.

    Out-of-range or negative classes are an error (a gather would clamp them and
    explain another class without a word); integer ids of any width are accepted
    and checked before they are narrowed to int32.
    """
    if classes is None:
        return None
    if isinstance(classes, jax.core.Tracer):  # inside a caller's jit: the shape and dtype are what can be checked
        if classes.shape != (batch,) or not jnp.issubdtype(classes.dtype, jnp.integer):
            raise ValueError(f"{name} must be ({batch},) integers to match the batch, got {classes.shape} "
                             f"{classes.dtype}")
        return classes.astype(jnp.int32)
    values = np.asarray(classes)
    if values.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},) to match the batch, got {values.shape}")
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = values[(values < 0) | (values >= num_classes)][0]
        raise ValueError(f"{name} must be in [0, {num_classes}) for this model, got {bad}")
    return jnp.asarray(values, jnp.int32)
