"""Vision Transformers (ViT-B/16 ... ViT-H/14) in Flax linen, in torchvision's layout, split into `encode` and `head`.

A is the output of the last encoder block's first LayerNorm (`encoder.layers[-1].ln_1` in torchvision)
at the patch tokens, as a (g, g) grid with the hidden size as channels: pytorch-grad-cam's recipe for a
ViT (target layer `blocks[-1].norm1`, a `reshape_transform` that drops the class token). The head is
the rest of the network: the last block's attention and MLP, the final LayerNorm and the classifier,
read at the class token. Besides A it reads that token's residual stream as it enters the last block,
the context of `Model.encode`: explanations hold it fixed, as a hook on `ln_1` does in torch. Only the
class token's output reaches the logits, so the head runs the last block for that token alone.

Parameter names follow torchvision's state_dict (`encoder_layer_11/self_attention/in_proj_kernel` for
`encoder.layers.encoder_layer_11.self_attention.in_proj_weight`, transposed).

References:
  Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021); torchvision.models.vision_transformer.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from cam_jax.models import fields
from cam_jax.models.conv import Conv
from cam_jax.models.dense import Dense

# arch -> (patch, layers, heads, hidden, mlp), torchvision's
SIZES = {
    "vit_b_16": (16, 12, 12, 768, 3072),
    "vit_b_32": (32, 12, 12, 768, 3072),
    "vit_l_16": (16, 24, 16, 1024, 4096),
    "vit_l_32": (32, 24, 16, 1024, 4096),
    "vit_h_14": (14, 32, 16, 1280, 5120),
}
LN_EPS = 1e-6  # torchvision's LayerNorm epsilon in ViTs


def layer_norm() -> nn.LayerNorm:
    # The two-pass variance torch computes: the one-pass E[x^2] - E[x]^2 loses digits on the residual stream.
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False)


class Attention(nn.Module):
    """torch's `nn.MultiheadAttention` (packed q, k, v projection; `in_proj_kernel` is its `in_proj_weight.T`).

    Attributes:
      hidden: the model width D; heads: attention heads (D divisible by them).
    """

    hidden: int
    heads: int

    @nn.compact
    def __call__(self, queries: jax.Array, tokens: jax.Array) -> jax.Array:
        """queries (B, Q, D) attend to tokens (B, T, D) -> (B, Q, D)."""
        d = self.hidden
        kernel = self.param("in_proj_kernel", nn.initializers.lecun_normal(), (d, 3 * d))
        bias = self.param("in_proj_bias", nn.initializers.zeros, (3 * d,))
        q = queries @ kernel[:, :d] + bias[:d]
        kv = tokens @ kernel[:, d:] + bias[d:]

        def split(t):  # (B, T, D) -> (B, heads, T, D / heads)
            return t.reshape(*t.shape[:2], self.heads, -1).transpose(0, 2, 1, 3)

        q, k, v = split(q), split(kv[..., :d]), split(kv[..., d:])
        weights = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(q.shape[-1]).astype(q.dtype), axis=-1)
        out = (weights @ v).transpose(0, 2, 1, 3).reshape(*queries.shape[:2], d)
        return Dense(d, name="out_proj")(out)


class EncoderBlock(nn.Module):
    """torchvision's EncoderBlock: x + attention(ln_1(x)), then + mlp(ln_2(.)) (GELU, exact)."""

    hidden: int
    heads: int
    mlp: int

    def setup(self):
        self.ln_1 = layer_norm()
        self.self_attention = Attention(self.hidden, self.heads)
        self.ln_2 = layer_norm()
        self.mlp_0 = Dense(self.mlp)
        self.mlp_3 = Dense(self.hidden)

    def feed_forward(self, x: jax.Array) -> jax.Array:
        """x + mlp(ln_2(x)), x (..., D)."""
        return x + self.mlp_3(nn.gelu(self.mlp_0(self.ln_2(x)), approximate=False))

    def __call__(self, x: jax.Array) -> jax.Array:
        """(B, T, D) -> (B, T, D)."""
        n = self.ln_1(x)
        return self.feed_forward(x + self.self_attention(n, n))

    def first_token(self, x0: jax.Array, n: jax.Array) -> jax.Array:
        """The block's output at the first token alone (B, D), from that token's input x0 (B, D) and
        ln_1 of every token n (B, T, D)."""
        return self.feed_forward(x0 + self.self_attention(n[:, :1], n)[:, 0])


class ViT(nn.Module):
    """A Vision Transformer with NHWC input, torchvision's layout: patch embedding by a strided conv,
    a class token, learned position embeddings, pre-norm encoder blocks, a linear classifier.

    Attributes:
      patch: side of a patch in pixels (16 for ViT-B/16).
      layers: encoder blocks; heads: attention heads; hidden: the width D; mlp: the MLP's hidden width.
      num_classes: number of logits.
      input_size: side of the square input, a multiple of `patch` (fixed by the position embeddings).
    """

    patch: int = 16
    layers: int = 12
    heads: int = 12
    hidden: int = 768
    mlp: int = 3072
    num_classes: int = 1000
    input_size: int = 224

    def __post_init__(self):
        # Fields may come from a weight file's header: checked before anything is traced or allocated.
        fields.check(self, {"patch": fields.integer(1, 64), "layers": fields.integer(1, fields.MAX_LAYERS),
                            "heads": fields.integer(1, 256), "hidden": fields.integer(1, fields.MAX_WIDTH),
                            "mlp": fields.integer(1, 4 * fields.MAX_WIDTH),
                            "num_classes": fields.integer(1, fields.MAX_CLASSES),
                            "input_size": fields.input_size(self.patch)})
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        super().__post_init__()

    @property
    def cam_size(self) -> int:
        """Side of A's grid of patch tokens (14 for ViT-B/16 at 224x224)."""
        return self.input_size // self.patch

    @property
    def channels(self) -> int:
        """K, the channels of A: the hidden size."""
        return self.hidden

    def setup(self):
        self.conv_proj = Conv(self.hidden, (self.patch, self.patch), (self.patch, self.patch), padding="VALID",
                              name="conv_proj")
        self.class_token = self.param("class_token", nn.initializers.zeros, (1, 1, self.hidden))
        self.pos_embedding = self.param("pos_embedding", nn.initializers.normal(0.02),
                                        (1, self.cam_size**2 + 1, self.hidden))
        self.blocks = [EncoderBlock(self.hidden, self.heads, self.mlp, name=f"encoder_layer_{i}")
                       for i in range(self.layers)]
        self.ln = layer_norm()
        self.head_dense = Dense(self.num_classes, name="head")

    def tokens(self, x: jax.Array) -> jax.Array:
        """(B, H, W, 3) normalised images -> (B, 1 + g*g, D), the residual stream entering the last block
        (class token first, patches in row-major order as torchvision flattens them)."""
        patches = self.conv_proj(x)
        b = patches.shape[0]
        t = jnp.concatenate([jnp.broadcast_to(self.class_token, (b, 1, self.hidden)).astype(patches.dtype),
                             patches.reshape(b, -1, self.hidden)], axis=1) + self.pos_embedding
        for block in self.blocks[:-1]:
            t = block(t)
        return t

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(B, H, W, 3) -> (A (B, g, g, D), the class token entering the last block (B, D))."""
        t = self.tokens(x)
        n = self.blocks[-1].ln_1(t[:, 1:])  # a LayerNorm acts on each token alone
        return n.reshape(t.shape[0], self.cam_size, self.cam_size, self.hidden), t[:, 0]

    def features(self, x: jax.Array) -> jax.Array:
        """(B, H, W, 3) normalised images -> A, (B, g, g, D)."""
        return self.encode(x)[0]

    def head(self, a: jax.Array, context: jax.Array | None = None) -> jax.Array:
        """A (B, g, g, D) and the class token entering the last block (B, D) -> logits (B, num_classes)."""
        if context is None:
            raise ValueError("a ViT's head reads the class token besides A: pass the context Model.encode returns")
        if a.shape[-1] != self.hidden:
            raise ValueError(f"A must have {self.hidden} channels for this head, got {a.shape[-1]}")
        last = self.blocks[-1]
        n = jnp.concatenate([last.ln_1(context)[:, None], a.reshape(a.shape[0], -1, self.hidden)], axis=1)
        return self.head_dense(self.ln(last.first_token(context, n)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(*self.encode(x))


def build(arch: str = "vit_b_16", *, num_classes: int = 1000, input_size: int = 224, width: float = 1.0,
          layers: int | None = None) -> ViT:
    """ViT-B/16 ... ViT-H/14, optionally narrower by `width` (fewer heads of the same size) or shallower.

    Example:
      >>> module = build("vit_b_16", num_classes=10, input_size=64, width=1 / 12, layers=2)
      >>> module.heads, module.hidden, module.mlp, module.cam_size
      (1, 64, 256, 4)
    """
    if arch not in SIZES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(SIZES)}")
    if not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width}")
    patch, depth, heads, hidden, mlp = SIZES[arch]
    narrow = max(1, round(heads * width))
    return ViT(patch=patch, layers=depth if layers is None else layers, heads=narrow, hidden=narrow * hidden // heads,
               mlp=narrow * mlp // heads, num_classes=num_classes, input_size=input_size)


def arch_name(module: ViT) -> str | None:
    """"vit_b_16" ... from the patch size and depth, which tell torchvision's sizes apart (any width, as a
    ResNet's name holds for any width), None if none fits."""
    found = (module.patch, module.layers)
    return next((arch for arch, size in SIZES.items() if size[:2] == found), None)
