"""The branch networks F(x) that write the target explanation into A^{K+1}.

Each maps normalised images (B, H, W, 3) to a (B, h, w) map at A's resolution.

References:
  paper.md section 4 (T3's random CNN, T4's sticker detector); SPEC.md.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from cam_jax.manipulations.space_to_depth import SpaceToDepthConv


def _pool_to(x: jax.Array, times: int) -> jax.Array:
    for _ in range(times):
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    return x


class ConstantMap(nn.Module):
    """F(x) = the (size, size) parameter `map` for every image (T1/T2: c_A 1 or c_I I_T).

    The map is stored already scaled, so the branch computes nothing that
    rounding or fused multiply-adds could change.
    """

    size: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        value = self.param("map", nn.initializers.zeros, (self.size, self.size))
        return jnp.broadcast_to(value, (x.shape[0], self.size, self.size))


class SemiRandomNet(nn.Module):
    """T3: c_F * pool^4(ReLU(conv(ReLU(conv(x; 3->6, 6x6, pad 3)); 6->1, 6x6, pad 3))).

    At 224x224 the convs give 225 then 226 pixels; four 2x2 average pools
    (floor) give 14x14, A's size. Parameters: two convs and the scalar `c_F`.
    """

    pools: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(SpaceToDepthConv(6, (6, 6), padding=3, name="conv1")(x))
        h = nn.relu(SpaceToDepthConv(1, (6, 6), padding=3, name="conv2")(h))
        return self.param("c_F", nn.initializers.constant(1e7), ()) * _pool_to(h, self.pools)[..., 0]


class StickerDetector(nn.Module):
    """T4: c_F * pool^4(ReLU(conv(x; K) + b)), one 3-channel kernel of the sticker's size.

    With K = s - mean(s) and b = margin - sum(s * K), the response is `margin` where
    the sticker s appears exactly and negative for any other patch, so without a
    sticker F(x) = 0 exactly. 'SAME' padding keeps 224 -> 14 after four pools.
    Parameters: the conv `detector` and the scalar `c_F`.
    """

    size: int = 14
    pools: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = SpaceToDepthConv(1, (self.size, self.size), padding="SAME", name="detector")(x)
        return self.param("c_F", nn.initializers.constant(1e9), ()) * _pool_to(nn.relu(h), self.pools)[..., 0]
