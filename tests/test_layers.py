"""The models' own convolution, dense product and max-pool against jax's: same values, same derivatives.

`models.conv.conv_general_dilated` and `models.dense.dot_general` only rewrite how
the input gradient is handed to XLA, and `models.pooling.max_pool_2x2` only how the
pool is computed; the references are `lax.conv_general_dilated`, `lax.dot_general`
and `nn.max_pool` differentiated by jax itself. Structural checks pin what the
rewrites are for: inside `lax.map` the input gradient's convolution reads its
kernel in the canonical `01io` layout, and a dense layer's input gradient is an
(in, N) product.
"""

from __future__ import annotations

import flax.linen as nn
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from jax import lax

from cam_jax.models.conv import conv_general_dilated
from cam_jax.models.dense import ROWS, dot_general
from cam_jax.models.pooling import max_pool_2x2

DN = ("NHWC", "HWIO", "NHWC")


def _both(stride, padding, dilation, groups):
    def conv(fn):
        return lambda x, k: fn(x, k, stride, padding, rhs_dilation=dilation, dimension_numbers=DN,
                               feature_group_count=groups)
    return conv(conv_general_dilated), conv(lax.conv_general_dilated)


@given(
    size=st.integers(8, 16),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.sampled_from(["SAME", "VALID", ((1, 2), (0, 1))]),
    groups=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_conv_derivatives_are_jaxs(size, kernel, stride, dilation, padding, groups, seed):
    """Value, input and kernel gradients, a second derivative and a forward-mode tangent, against
    `lax.conv_general_dilated` differentiated by jax (strided transposes sum in another order: rtol 1e-5)."""
    keys = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(keys[0], (2, size, size, 4))
    k = jax.random.normal(keys[1], (kernel, kernel, 4 // groups, 6))
    mine, ref = _both((stride, stride), padding, (dilation, dilation), groups)

    def check(f):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), f(mine), f(ref))

    check(lambda c: c(x, k))
    check(lambda c: jax.grad(lambda x, k: jnp.sin(c(x, k)).sum(), argnums=(0, 1))(x, k))
    check(lambda c: jax.grad(lambda k: (jax.grad(lambda x: (c(x, k) ** 2).sum())(x) ** 2).sum())(k))
    check(lambda c: jax.jvp(c, (x, k), (jax.random.normal(keys[2], x.shape), jax.random.normal(keys[3], k.shape))))


def _kernel_labels_in_a_loop(conv) -> list[str]:
    k = jnp.ones((3, 3, 8, 8))
    grad = jax.grad(lambda x: (conv(x, k, (1, 1), "SAME", dimension_numbers=DN) ** 2).sum())
    hlo = jax.jit(lambda v: lax.map(grad, v)).lower(jnp.ones((2, 1, 8, 8, 8))).compile().as_text()
    return [line.split("dim_labels=")[1].split(",")[0] for line in hlo.splitlines() if "convolution(" in line]


def test_the_input_gradient_reads_a_canonical_kernel_inside_a_loop():
    """The reason the function exists: jax's own transpose leaves XLA CPU a `01oi` kernel inside a
    while loop (its slow generic convolution); ours gives `01io` for the forward and the backward."""
    assert any("_01oi->" in labels for labels in _kernel_labels_in_a_loop(lax.conv_general_dilated))
    labels = _kernel_labels_in_a_loop(conv_general_dilated)
    assert len(labels) == 2 and all("_01io->" in lab for lab in labels), labels


@given(
    lead=st.sampled_from([(1,), (2,), (8,), (64,), (65,), (2, 3)]),
    seed=st.integers(0, 2**16),
)
def test_dense_derivatives_are_jaxs(lead, seed):
    """Value, input and kernel gradients, a second derivative and a forward-mode tangent of a dense
    product with 1 to 65 rows (inside and outside `ROWS`), against `lax.dot_general` differentiated by jax."""
    keys = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(keys[0], (*lead, 40))
    w = jax.random.normal(keys[1], (40, 24))
    dn = (((x.ndim - 1,), (0,)), ((), ()))

    def check(f):  # sums in another order: 1e-7 of the largest entry measured, small entries relatively more
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max()),
                     f(lambda x, w: dot_general(x, w, dn)), f(lambda x, w: lax.dot_general(x, w, dn)))

    check(lambda d: d(x, w))
    check(lambda d: jax.grad(lambda x, w: jnp.sin(d(x, w)).sum(), argnums=(0, 1))(x, w))
    check(lambda d: jax.grad(lambda w: (jax.grad(lambda x: (d(x, w) ** 2).sum())(x) ** 2).sum())(w))
    check(lambda d: jax.jvp(d, (x, w), (jax.random.normal(keys[2], x.shape), jax.random.normal(keys[3], w.shape))))


def _input_gradient_dots(dot, rows: int) -> list[str]:
    w = jnp.ones((40, 24))
    grad = jax.grad(lambda x, w: (dot(x, w, (((1,), (0,)), ((), ()))) ** 2).sum())
    hlo = jax.jit(grad).lower(jnp.ones((rows, 40)), w).compile().as_text()
    return sorted(line.split("=")[1].split()[0].split("{")[0] for line in hlo.splitlines() if " dot(" in line)


def test_the_input_gradient_of_a_few_rows_is_an_in_by_rows_product():
    """The reason the function exists: jax's own transpose hands XLA an (N, in) product, which XLA CPU
    runs at half the speed of (in, N) for a few rows; ours gives (in, N) within `ROWS`, jax's outside."""
    assert _input_gradient_dots(lax.dot_general, 8) == ["f32[8,24]", "f32[8,40]"]
    assert _input_gradient_dots(dot_general, 8) == ["f32[40,8]", "f32[8,24]"]
    assert 1 not in ROWS and _input_gradient_dots(dot_general, 1) == _input_gradient_dots(lax.dot_general, 1)


@given(
    size=st.tuples(st.integers(2, 9), st.integers(2, 9)),
    levels=st.integers(1, 4),
    nan=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_max_pool_is_nn_max_pool_ties_and_nan_included(size, levels, nan, seed):
    """Few distinct values make ties in most windows: the gradient must go where select_and_scatter
    sends it (the first maximum); odd sizes drop the last row or column as nn.max_pool's VALID does.
    A window holding NaN pools to NaN; its gradient is compared nowhere (ours sends none back)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, levels, size=(2, *size, 3)).astype(np.float32)
    if nan:
        a[0, rng.integers(size[0]), rng.integers(size[1]), 1] = np.nan
    g = rng.normal(size=(2, size[0] // 2, size[1] // 2, 3)).astype(np.float32)

    def ref(v):
        return nn.max_pool(v, (2, 2), strides=(2, 2))

    pooled = np.asarray(ref(a))
    np.testing.assert_array_equal(max_pool_2x2(a), pooled)
    g = np.where(np.isnan(pooled), 0.0, g)
    ours, theirs = (jax.vjp(f, a)[1](g)[0] for f in (max_pool_2x2, ref))
    np.testing.assert_array_equal(ours, theirs)
