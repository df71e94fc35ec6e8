"""The space-to-depth convolution against torch's conv2d on the same weights."""

from __future__ import annotations

import hypothesis.strategies as st
import jax
import numpy as np
import pytest
from hypothesis import given

from cam_jax.manipulations.space_to_depth import SpaceToDepthConv, conv_space_to_depth

torch = pytest.importorskip("torch")


def torch_conv(x, kernel, bias, pads):
    """Reference: explicit zero padding, then torch's VALID cross-correlation (NCHW)."""
    (top, bottom), (left, right) = pads
    xt = torch.nn.functional.pad(torch.from_numpy(x).permute(0, 3, 1, 2), (left, right, top, bottom))
    y = torch.nn.functional.conv2d(xt, torch.from_numpy(kernel).permute(3, 2, 0, 1), torch.from_numpy(bias))
    return y.permute(0, 2, 3, 1).numpy()


@given(
    size=st.tuples(st.integers(5, 40), st.integers(5, 40)),
    kernel=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    channels=st.tuples(st.integers(1, 4), st.integers(1, 7)),
    pads=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
    block=st.sampled_from([1, 2, 3, 4]),
    seed=st.integers(0, 2**16),
)
def test_matches_torch_conv2d(size, kernel, channels, pads, block, seed):
    (h, w), (kh, kw), (c, f) = size, kernel, channels
    pads = ((pads[0], pads[1]), (pads[2], pads[3]))
    if h + sum(pads[0]) < kh or w + sum(pads[1]) < kw:
        return  # no output
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, h, w, c)).astype(np.float32)
    k = rng.normal(size=(kh, kw, c, f)).astype(np.float32)
    b = rng.normal(size=(f,)).astype(np.float32)
    ours = np.asarray(conv_space_to_depth(x, k, b, pads, block))
    ref = torch_conv(x, k, b, pads)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5 * np.sqrt(kh * kw * c) * 4)


def test_same_padding_and_flax_parameters():
    """'SAME' pads (k-1)//2 before and k//2 after, as flax.linen.Conv; init draws the same kernel."""
    import flax.linen as nn

    x = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype(np.float32)
    ours = SpaceToDepthConv(2, (4, 4), padding="SAME")
    flax_conv = nn.Conv(2, (4, 4), padding="SAME")
    params = flax_conv.init(jax.random.key(1), x)
    assert jax.tree.map(np.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(np.shape, params)
    np.testing.assert_array_equal(ours.init(jax.random.key(1), x)["params"]["kernel"], params["params"]["kernel"])
    np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), atol=1e-5)
