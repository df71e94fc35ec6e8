"""ResNet-18/34/50/101/152 in Flax linen, in torchvision's layout, split into `features` and `head`.

`features` is the last stage's output after its final ReLU (7x7x2048 for
ResNet-50 at 224x224), `head` the global average pool and the fc layer.
Parameter names follow torchvision's state_dict (`layer4_2/conv3` for
`layer4.2.conv3`). Batch norm is folded into the convolutions (at conversion,
or by `fold_batch_norm` after training), so a converted ResNet is a chain of
biased convolutions; `batch_norm=True` keeps the norms for training.

References:
  He et al., "Deep Residual Learning" (CVPR 2016); torchvision.models.resnet (v1.5:
  the bottleneck's stride sits on its 3x3 conv).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from cam_jax.models import fields
from cam_jax.models.batch_norm import BN_EPS
from cam_jax.models.conv import Conv
from cam_jax.models.dense import Dense

# arch -> (bottleneck blocks?, blocks per stage)
BLOCKS = {
    "resnet18": (False, (2, 2, 2, 2)),
    "resnet34": (False, (3, 4, 6, 3)),
    "resnet50": (True, (3, 4, 6, 3)),
    "resnet101": (True, (3, 4, 23, 3)),
    "resnet152": (True, (3, 8, 36, 3)),
}
EXPANSION = 4  # a bottleneck's output is 4x its width


def global_mean(a: jax.Array) -> jax.Array:
    """(B, h, w, C) -> (B, 1, 1, C): the head's global average pool."""
    return a.mean(axis=(1, 2), keepdims=True)


class Block(nn.Module):
    """torchvision's BasicBlock (two 3x3 convs) or Bottleneck (1x1, 3x3 with the stride, 1x1).

    `__call__` returns (output after the residual ReLU, the input of its last conv).
    """

    width: int
    stride: int
    bottleneck: bool
    downsample: bool
    batch_norm: bool = False

    def _conv_bn(self, x, name, features, kernel, stride, train):
        pad = kernel // 2
        h = Conv(features, (kernel, kernel), (stride, stride), padding=pad, name=name)(x)
        if self.batch_norm:
            bn = "downsample_bn" if name == "downsample" else f"bn{name[-1]}"
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=BN_EPS, name=bn)(h)
        return h

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        if self.bottleneck:
            h = nn.relu(self._conv_bn(x, "conv1", self.width, 1, 1, train))
            last_in = nn.relu(self._conv_bn(h, "conv2", self.width, 3, self.stride, train))
            h = self._conv_bn(last_in, "conv3", self.width * EXPANSION, 1, 1, train)
        else:
            last_in = nn.relu(self._conv_bn(x, "conv1", self.width, 3, self.stride, train))
            h = self._conv_bn(last_in, "conv2", self.width, 3, 1, train)
        identity = self._conv_bn(x, "downsample", h.shape[-1], 1, self.stride, train) if self.downsample else x
        return nn.relu(h + identity), last_in


class ResNet(nn.Module):
    """ResNet with NHWC input, torchvision's stem (7x7/2 conv, 3x3/2 max-pool) and four stages.

    Attributes:
      blocks: blocks per stage ((3, 4, 6, 3) for ResNet-50).
      bottleneck: Bottleneck blocks (ResNet-50 and deeper) or BasicBlocks.
      width: the stem's and the first stage's width (64 in torchvision); stage s
        has width * 2**s, times 4 at a bottleneck's output.
      num_classes: number of logits.
      input_size: side of the square input in pixels, divisible by 32.
      batch_norm: conv -> BatchNorm as torchvision, for training only:
        `fold_batch_norm` turns the result into the plain network.
    """

    blocks: Sequence[int] = (3, 4, 6, 3)
    bottleneck: bool = True
    width: int = 64
    num_classes: int = 1000
    input_size: int = 224
    batch_norm: bool = False

    def __post_init__(self):
        # Fields may come from a weight file's header: checked before anything is traced or allocated.
        fields.check(self, {"blocks": fields.counts(1, 64, 4), "bottleneck": fields.flag,
                            "width": fields.integer(1, fields.MAX_WIDTH // 32),
                            "num_classes": fields.integer(1, fields.MAX_CLASSES), "input_size": fields.input_size(32),
                            "batch_norm": fields.flag})
        if len(self.blocks) != 4:
            raise ValueError(f"blocks must give the blocks of each of the 4 stages, got {self.blocks!r}")
        super().__post_init__()

    @property
    def cam_size(self) -> int:
        """Side of A in pixels (7 at 224x224)."""
        return self.input_size // 32

    @property
    def channels(self) -> int:
        """K, the channels of A (2048 for ResNet-50)."""
        return self.width * 2 ** (len(self.blocks) - 1) * (EXPANSION if self.bottleneck else 1)

    @property
    def last_conv_window(self) -> tuple[int, int, int]:
        """(kh, kw, C_in) of the last block's last conv."""
        last = self.width * 2 ** (len(self.blocks) - 1)
        return (1, 1, last) if self.bottleneck else (3, 3, last)

    @property
    def first_dense(self) -> tuple[str, int]:
        """(name, units) of the head's first (and only) dense layer."""
        return "fc", self.num_classes

    def block_names(self) -> list[str]:
        return [f"layer{s + 1}_{i}" for s, n in enumerate(self.blocks) for i in range(n)]

    def norm_pairs(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """(conv, batch norm) parameter paths, for `fold_batch_norm`."""
        convs = ("conv1", "conv2", "conv3") if self.bottleneck else ("conv1", "conv2")
        pairs = [(("conv1",), ("bn1",))]
        for s, name in self._blocks():
            pairs += [((name, c), (name, f"bn{c[-1]}")) for c in convs]
            if s:
                pairs.append(((name, "downsample"), (name, "downsample_bn")))
        return pairs

    def _blocks(self):
        """(has a downsample, name) for every block in order."""
        channels = self.width
        for s, n in enumerate(self.blocks):
            width = self.width * 2**s
            for i in range(n):
                out = width * (EXPANSION if self.bottleneck else 1)
                yield (i == 0 and (s > 0 or channels != out)), f"layer{s + 1}_{i}"
                channels = out

    def setup(self):
        self.conv1 = Conv(self.width, (7, 7), (2, 2), padding=3, name="conv1")
        if self.batch_norm:
            self.bn1 = nn.BatchNorm(momentum=0.9, epsilon=BN_EPS, name="bn1")
        self.layers = [
            Block(self.width * 2 ** (int(name[5]) - 1), 2 if name[5] != "1" and name.endswith("_0") else 1,
                  self.bottleneck, downsample, self.batch_norm, name=name)
            for downsample, name in self._blocks()
        ]
        self.fc = Dense(self.num_classes, name="fc")

    def trunk(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        """(B, H, W, 3) normalised images -> (A (B, H/32, W/32, K), the input of the last block's last conv)."""
        x = self.conv1(x)
        if self.batch_norm:
            x = self.bn1(x, use_running_average=not train)
        x = nn.max_pool(nn.relu(x), (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for block in self.layers:
            x, last_in = block(x, train)
        return x, last_in

    def last_activation(self, z: jax.Array) -> jax.Array:
        """What a block's last conv output passes through to become A (after the residual sum): ReLU."""
        return nn.relu(z)

    def features(self, x: jax.Array, train: bool = False) -> jax.Array:
        """(B, H, W, 3) normalised images -> A, (B, H/32, W/32, K)."""
        return self.trunk(x, train)[0]

    def dense_input(self, a: jax.Array) -> jax.Array:
        """A (B, h, w, C) -> (B, C): the global average pool the fc layer reads, for any number of channels."""
        return global_mean(a).reshape(a.shape[0], -1)

    def first_dense_layer(self, z: jax.Array) -> jax.Array:
        """fc: `dense_input(A)` (B, K) -> logits (B, num_classes)."""
        return self.fc(z)

    def after_first_dense(self, r: jax.Array, train: bool = False) -> jax.Array:
        """The head after its first dense layer: fc is the last, so the logits are its output."""
        return r

    def head(self, a: jax.Array, train: bool = False) -> jax.Array:
        """A, (B, h, w, K) -> logits (B, num_classes): global average pool, fc."""
        if a.shape[-1] != self.channels:
            raise ValueError(f"A must have {self.channels} channels for this head, got {a.shape[-1]}")
        return self.after_first_dense(self.first_dense_layer(self.dense_input(a)), train)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.head(self.features(x, train=train), train=train)


def build(arch: str = "resnet50", *, num_classes: int = 1000, input_size: int = 224, width: float = 1.0) -> ResNet:
    """ResNet-18/34/50/101/152 module, optionally narrower by `width` (a multiple of torchvision's 64).

    Example:
      >>> module = build("resnet50", num_classes=10, input_size=64, width=1 / 8)
      >>> module.width, module.channels, module.cam_size
      (8, 256, 2)
    """
    if arch not in BLOCKS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(BLOCKS)}")
    if not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width}")
    if input_size % 32:
        raise ValueError(f"input_size must be divisible by 32, got {input_size}")
    bottleneck, blocks = BLOCKS[arch]
    return ResNet(blocks=blocks, bottleneck=bottleneck, width=max(1, round(64 * width)),
                  num_classes=num_classes, input_size=input_size)


def arch_name(module: ResNet) -> str | None:
    """"resnet18" ... "resnet152" from the block type and counts (any width), None if none fits."""
    found = (module.bottleneck, tuple(module.blocks))
    return next((arch for arch, spec in BLOCKS.items() if spec == found), None)
