"""VGG in Flax linen, in torchvision's layout, split into `features` and `head`.

GradCAM and every manipulation need the network in two halves: `features`
maps an image to the last conv layer's map A, `head` maps A to the logits.
Linen (not NNX) is used because its `init`/`apply` keep parameters a plain
pytree that pure functions can transform and return; NNX modules are mutable
objects, which works against model-to-model functions.

References:
  Simonyan & Zisserman (2015); torchvision.models.vgg (configs A, B, D, E).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cam_jax.models import fields
from cam_jax.models.batch_norm import BN_EPS
from cam_jax.models.conv import Conv
from cam_jax.models.dense import Dense
from cam_jax.models.pooling import max_pool_2x2

# Conv widths per stage; every stage ends in a 2x2 max-pool (torchvision cfgs A/B/D/E).
STAGES = {
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": (
        (64, 64),
        (128, 128),
        (256, 256, 256, 256),
        (512, 512, 512, 512),
        (512, 512, 512, 512),
    ),
}


def head_pool(a: jax.Array) -> jax.Array:
    """VGG's last 2x2 max-pool, (B, h, w, C) -> (B, h/2, w/2, C): what fc1 reads.

    Unlike the trunk's (`max_pool_2x2`) it stays lax's reduce_window: its backward, select_and_scatter,
    is an op XLA fuses with nothing, so dy/dA is the same array in every program and a branch
    manipulation's channel-weighted maps stay bit for bit the original's wherever they are computed
    (tests/test_evaluate.py). At A's size its cost does not show.
    """
    return nn.max_pool(a, (2, 2), strides=(2, 2))


class VGG(nn.Module):
    """VGG with NHWC input and the classifier's first layer reading NHWC order.

    Attributes:
      stages: conv widths per stage; a 2x2 max-pool follows each stage.
      hidden: width of the two hidden fully connected layers (4096 in VGG-16).
      num_classes: number of logits.
      input_size: side of the square input in pixels; must be divisible by
        2**len(stages). A is (input_size / 2**(len(stages)-1)) pixels a side.
      cam_pre_relu: if True, A is the last conv's output before its ReLU, so GradCAM takes
        both its gradients and its values there (neither the paper's convention nor the
        authors': their code took the gradients there and the values after the ReLU, which
        is `cams.weightings.grad_cam_authors` on this A); by default after the ReLU (the paper).
      dropout_rate: dropout between the fully connected layers, active only
        when `train=True` is passed to `head`.
      batch_norm: conv -> BatchNorm -> ReLU as torchvision's `vgg16_bn`; for
        training only: `fold_batch_norm` turns the result into a plain VGG.
    """

    stages: Sequence[Sequence[int]] = STAGES["vgg16"]
    hidden: int = 4096
    num_classes: int = 1000
    input_size: int = 224
    cam_pre_relu: bool = False
    dropout_rate: float = 0.5
    batch_norm: bool = False

    def __post_init__(self):
        # Fields may come from a weight file's header: checked before anything is traced or allocated.
        stages = self.stages
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not 0 < len(stages) <= 8:
            raise ValueError(f"stages must be a list of 1 to 8 stages (lists of conv widths), got {stages!r}")
        for s, stage in enumerate(stages):
            fields.counts(1, fields.MAX_WIDTH, fields.MAX_LAYERS)(f"stages[{s}]", stage)
        if sum(len(stage) for stage in stages) > fields.MAX_LAYERS:
            raise ValueError(f"stages must hold at most {fields.MAX_LAYERS} convolutions in all")
        fields.check(self, {"hidden": fields.integer(1, fields.MAX_WIDTH),
                            "num_classes": fields.integer(1, fields.MAX_CLASSES),
                            "input_size": fields.input_size(2 ** len(stages)), "cam_pre_relu": fields.flag,
                            "dropout_rate": fields.fraction, "batch_norm": fields.flag})
        super().__post_init__()

    def setup(self):
        self.convs = [
            [Conv(w, (3, 3), padding=1, name=f"conv{s + 1}_{i + 1}") for i, w in enumerate(stage)]
            for s, stage in enumerate(self.stages)
        ]
        if self.batch_norm:
            self.norms = [
                [nn.BatchNorm(momentum=0.9, epsilon=BN_EPS, name=f"bn{s + 1}_{i + 1}") for i in range(len(stage))]
                for s, stage in enumerate(self.stages)
            ]
        self.fcs = [
            Dense(self.hidden, name="fc1"),
            Dense(self.hidden, name="fc2"),
            Dense(self.num_classes, name="fc3"),
        ]
        self.dropout = nn.Dropout(self.dropout_rate)

    @property
    def last_conv(self) -> str:
        """Name of the last conv layer, whose output is A (`conv5_3` in VGG-16)."""
        return f"conv{len(self.stages)}_{len(self.stages[-1])}"

    @property
    def cam_size(self) -> int:
        """Side of A in pixels (14 for VGG at 224x224)."""
        return self.input_size // 2 ** (len(self.stages) - 1)

    @property
    def last_conv_window(self) -> tuple[int, int, int]:
        """(kh, kw, C_in) of the last conv's kernel."""
        widths = [w for stage in self.stages for w in stage]
        return 3, 3, widths[-2] if len(widths) > 1 else 3

    @property
    def first_dense(self) -> tuple[str, int]:
        """(name, units) of the head's first dense layer."""
        return "fc1", self.hidden

    def norm_pairs(self) -> list[tuple[tuple[str], tuple[str]]]:
        """(conv, batch norm) parameter paths, for `fold_batch_norm`."""
        return [((f"conv{s + 1}_{i + 1}",), (f"bn{s + 1}_{i + 1}",))
                for s, stage in enumerate(self.stages) for i in range(len(stage))]

    def trunk(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        """(B, H, W, 3) normalised images -> (A (B, h, w, K), the last conv's input (B, h, w, C_in))."""
        for s, stage in enumerate(self.convs):
            for i, conv in enumerate(stage):
                last = s == len(self.convs) - 1 and i == len(stage) - 1
                h = conv(x)
                if self.batch_norm:
                    h = self.norms[s][i](h, use_running_average=not train)
                if last:
                    return self.last_activation(h), x
                x = nn.relu(h)
            x = max_pool_2x2(x)
        raise ValueError("a VGG needs at least one conv")

    def last_activation(self, z: jax.Array) -> jax.Array:
        """What the last conv's output passes through to become A: its ReLU, or nothing with `cam_pre_relu`."""
        return z if self.cam_pre_relu else nn.relu(z)

    def features(self, x: jax.Array, train: bool = False) -> jax.Array:
        """(B, H, W, 3) normalised images -> A, (B, h, w, K) last conv map."""
        return self.trunk(x, train)[0]

    def dense_input(self, a: jax.Array) -> jax.Array:
        """A (B, h, w, C) -> (B, (h/2) (w/2) C): what the first dense layer reads (the last pool, flattened
        in (row, column, channel) order), for any number of channels."""
        if self.cam_pre_relu:
            a = nn.relu(a)
        return head_pool(a).reshape(a.shape[0], -1)

    def first_dense_layer(self, z: jax.Array) -> jax.Array:
        """fc1: `dense_input(A)` (B, n) -> its output before the ReLU (B, hidden)."""
        return self.fcs[0](z)

    def after_first_dense(self, r: jax.Array, train: bool = False) -> jax.Array:
        """The head after its first dense layer: fc1's output r (B, hidden) -> logits (B, num_classes)."""
        for fc in self.fcs[1:]:
            r = fc(self.dropout(nn.relu(r), deterministic=not train))
        return r

    def head(self, a: jax.Array, train: bool = False) -> jax.Array:
        """A, (B, h, w, K) -> logits (B, num_classes): last pool, flatten, classifier."""
        k = self.stages[-1][-1]
        if a.shape[-1] != k:
            raise ValueError(f"A must have {k} channels for this head, got {a.shape[-1]}")
        return self.after_first_dense(self.first_dense_layer(self.dense_input(a)), train)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.head(self.features(x, train=train), train=train)

    def widened(self, params: dict, conv: dict, rows: jax.Array) -> tuple[VGG, dict]:
        """(module, params) with n more filters in the last conv and fc1's inputs from them.

        Args:
          conv: {"kernel": (kh, kw, C_in, n), "bias": (n,)}, the new filters.
          rows: (side * side * n, hidden), fc1's weights from their pooled maps, rows in (row, column,
            filter) order.

        Example:
          >>> module = build("vgg11", num_classes=4, input_size=32, width=1 / 64)
          >>> from cam_jax.models.init import init_params
          >>> kernel, bias = jnp.zeros((3, 3, 8, 1)), jnp.ones((1,))
          >>> new = {"kernel": kernel, "bias": bias}
          >>> wide, params = module.widened(init_params(module, 0), new, jnp.zeros((1, 64)))
          >>> wide.stages[-1], params["fc1"]["kernel"].shape
          ((8, 9), (9, 64))
        """
        k, n = self.stages[-1][-1], conv["kernel"].shape[-1]
        fc1 = params["fc1"]["kernel"]
        side = round((fc1.shape[0] // k) ** 0.5)
        kernel = jnp.concatenate([fc1.reshape(side, side, k, -1), rows.reshape(side, side, n, -1)], axis=2)
        last = params[self.last_conv]
        widened = {key: jnp.concatenate([last[key], conv[key]], -1) for key in ("kernel", "bias")}
        wide = {**params, self.last_conv: widened,
                "fc1": {**params["fc1"], "kernel": kernel.reshape(side * side * (k + n), -1)}}
        stages = (*self.stages[:-1], (*self.stages[-1][:-1], k + n))
        return self.clone(stages=stages), wide


def build(
    arch: str = "vgg16",
    *,
    num_classes: int = 1000,
    input_size: int = 224,
    width: float = 1.0,
    cam_pre_relu: bool = False,
) -> VGG:
    """VGG-11/13/16/19 module, optionally narrower by `width` (channels and FC units).

    Example:
      >>> module = build("vgg16", num_classes=10, input_size=64, width=0.125)
      >>> module.stages[0], module.hidden
      ((8, 8), 512)
    """
    if arch not in STAGES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(STAGES)}")
    if not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width}")
    factor = 2 ** len(STAGES[arch])
    if input_size % factor:
        raise ValueError(f"input_size must be divisible by {factor}, got {input_size}")

    def scale(n: int) -> int:
        return max(1, round(n * width))

    return VGG(
        stages=tuple(tuple(scale(w) for w in stage) for stage in STAGES[arch]),
        hidden=scale(4096),
        num_classes=num_classes,
        input_size=input_size,
        cam_pre_relu=cam_pre_relu,
    )


def arch_name(module: VGG) -> str | None:
    """"vgg11" ... "vgg19" from the number of convs per stage (any width), None if none fits."""
    counts = tuple(len(stage) for stage in module.stages)
    return next((arch for arch, stages in STAGES.items() if tuple(map(len, stages)) == counts), None)
