"""T1-T4: score invariance and explanation fidelity as hypothesis properties.

Independent references: a float32 rounding bound derived below for T1/T2's
scores, torch convolutions for T3/T4's branch maps, closed forms for targets.
"""

from __future__ import annotations

import copy
from functools import partial

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given

from cam_jax import Model, gradcam, init_params
from cam_jax import manipulations as manipulate
from cam_jax.data import images, stickers
from cam_jax.manipulations.weight_edit import MAX_SHIFT_SPACING
from cam_jax.models import build_model
from cam_jax.testing import (
    assert_trees_all_close,
    l1,
    make_torch_vgg,
    model_and_images,
    new_channel_alpha,
    torch_gradcam,
)

torch = pytest.importorskip("torch")

U = 2.0**-24  # float32 unit roundoff
forward = jax.jit(lambda model, x: model(x))  # one compile per architecture, not per example

# Two architectures, built once: hypothesis draws the parameters' and images' seed and the constants,
# which are parameter leaves, so an example after the first of its architecture compiles nothing.
MODULES = (build_model("vgg11", num_classes=3, input_size=32, width=1 / 16),
           build_model("vgg16", num_classes=10, input_size=64, width=1 / 32))
configs = st.tuples(st.sampled_from(MODULES), st.integers(0, 2**16))


def rounding_bound(model, x, shift):
    """Bound on |y_n - y_o| for the paper's T1/T2 in float32.

    The edit is exact in real arithmetic; only r = W z + b of the first FC layer
    changes in float32, where the sum now carries terms of size `shift`
    (c_A c_W N_Z or c_W S_Z). With the probabilistic rounding bound of Higham and
    Mary (2019), |dr_j| <= 2 sqrt(n + 2) u (sum_i |W_ji z_i| + |b_j| + 2 shift).
    ReLUs are 1-Lipschitz, so |dy_c| <= max_j |dr_j| * sum_i |W3_ic| sum_j |W2_ji|.
    """
    p = model.params
    a = model.features(x)
    z = jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID").reshape(len(x), -1)
    mass = np.abs(np.asarray(z)) @ np.abs(np.asarray(p["fc1"]["kernel"])) + np.abs(np.asarray(p["fc1"]["bias"]))
    n = z.shape[1] + 2
    dr = 2 * np.sqrt(n) * U * (mass + 2 * shift).max()
    gain = (np.abs(np.asarray(p["fc2"]["kernel"])).sum(0) @ np.abs(np.asarray(p["fc3"]["kernel"]))).max()
    return dr * gain


@given(config=configs, c_A=st.floats(100, 1000), c_W=st.floats(100, 1000))
def test_t1_paper_scores_within_rounding_bound_and_map_is_flat(config, c_A, c_W):
    model, x = model_and_images(config)
    before = copy.deepcopy(jax.device_get(model.params))
    shift = c_A * c_W * (model.cam_size // 2) ** 2
    if np.spacing(np.float32(shift)) > MAX_SHIFT_SPACING:  # its rounding would swamp fc1's sum: refused
        with pytest.raises(ValueError, match="spacing"):
            manipulate.constant_flat(model, c_A=c_A, c_W=c_W)
        return
    t1 = manipulate.constant_flat(model, c_A=c_A, c_W=c_W)
    assert_trees_all_close(model.params, before)  # the original is untouched
    y_o, e = forward(model, x), gradcam(t1, x)
    dy = np.abs(np.asarray(e.logits - y_o))
    assert dy.max() <= rounding_bound(model, x, shift)
    top2 = np.sort(np.asarray(y_o), axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * dy.max()
    assert (np.asarray(e.classes) == np.asarray(y_o.argmax(1)))[clear].all()
    # Where the FC path makes alpha_{K+1} positive the map is flat; where negative it collapses.
    alpha = new_channel_alpha(t1, x, e.classes)
    ones = np.ones((len(x), model.cam_size, model.cam_size))
    assert (l1(e.cam, ones)[alpha > 0] < 0.05).all()
    assert (np.asarray(e.cam)[alpha < 0] == 0).all()


@given(config=configs, c_I=st.floats(100, 1000), c_W=st.floats(10, 100))
def test_t2_paper_scores_within_bound_and_map_is_the_target(config, c_I, c_W):
    model, x = model_and_images(config)
    size = model.cam_size
    target = np.random.default_rng(0).uniform(0, 1, (size, size)).astype(np.float32)
    t2 = manipulate.constant_image(model, target, c_I=c_I, c_W=c_W)
    e, y_o = gradcam(t2, x), forward(model, x)
    pooled = (c_I * target).reshape(size // 2, 2, size // 2, 2).max(axis=(1, 3))  # S_Z by hand
    assert np.abs(np.asarray(e.logits - y_o)).max() <= rounding_bound(model, x, c_W * pooled.sum())
    alpha = new_channel_alpha(t2, x, e.classes)
    assert (l1(e.cam, np.broadcast_to(target, e.cam.shape))[alpha > 0] < 0.05).all()


@given(config=configs, c=st.floats(100, 1000), c_W=st.floats(10, 1000))
def test_exact_t1_t2_logits_bit_identical_and_maps_on_target(config, c, c_W):
    model, x = model_and_images(config)
    y_o = np.asarray(forward(model, x))
    smile = stickers.smiley_target(model.cam_size) if model.cam_size == 14 else None
    target = smile if smile is not None else np.eye(model.cam_size, dtype=np.float32) + 0.1
    for manipulated, expected in (
        (manipulate.constant_flat(model, c_A=c, c_W=c_W, exact=True), np.ones_like(target)),
        (manipulate.constant_image(model, target, c_I=c, c_W=c_W, exact=True), target),
    ):
        e = gradcam(manipulated, x)
        np.testing.assert_array_equal(np.asarray(e.logits), y_o)
        assert (new_channel_alpha(manipulated, x, e.classes) > 0).all()  # by construction: c_W * N / N_A
        assert (l1(e.cam, np.broadcast_to(expected, e.cam.shape)) < 0.05).all()


def widened_torch_vgg(net, filters):
    """The stock torch VGG the paper's weight edit describes: the last conv widened by one filter
    per (bias, fc_weight, fc_bias_shift) in `filters`, zero kernel, wired into every column of
    classifier.0 that reads it (torch flattens NCHW), classifier.0's bias shifted."""
    wide = copy.deepcopy(net)
    conv, fc = wide.features[-3], wide.classifier[0]
    k, cells = conv.out_channels, fc.in_features // conv.out_channels
    n = len(filters)
    new_conv = torch.nn.Conv2d(conv.in_channels, k + n, 3, padding=1)
    new_fc = torch.nn.Linear((k + n) * cells, fc.out_features)
    with torch.no_grad():
        new_conv.weight.zero_()
        new_conv.weight[:k] = conv.weight
        new_conv.bias[:k] = conv.bias
        new_fc.weight[:, : k * cells] = fc.weight
        new_fc.bias[:] = fc.bias
        for j, (bias, fc_weight, shift) in enumerate(filters):
            new_conv.bias[k + j] = bias
            new_fc.weight[:, (k + j) * cells : (k + j + 1) * cells] = fc_weight
            new_fc.bias -= shift
    wide.features[-3], wide.classifier[0] = new_conv, new_fc
    return wide


@pytest.mark.parametrize("filters", [[(1.0, 0.5, 1.5)], [(1.0, 0.5, 1.5), (0.25, -2.0, -1.0)]])
def test_append_filter_is_the_widened_stock_vgg(tmp_path, filters):
    """Our blocked parameters (original arrays shared, new filters apart) against torch's VGG
    with K + n filters and an interleaved classifier.0: logits and GradCAM."""
    from cam_jax import convert

    stages = tuple(tuple(w // 16 for w in s) for s in build_model("vgg16").stages)
    net = make_torch_vgg(stages, 64, 10, 64, seed=1)
    with torch.no_grad():  # He init keeps the maps alive through 13 narrow layers
        for layer in net.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(layer.weight)
    torch.save(net.state_dict(), tmp_path / "vgg.pth")
    model, _ = convert.load_torchvision(tmp_path / "vgg.pth")
    edited = model
    for bias, fc_weight, shift in filters:
        edited = manipulate.append_filter(edited, bias=bias, fc_weight=fc_weight, fc_bias_shift=shift)
    assert edited.module.count == len(filters) and edited.appended == len(filters)
    assert edited.params["base"]["conv5_3"] is model.params["conv5_3"]
    x = np.random.default_rng(1).normal(size=(4, 3, 64, 64)).astype(np.float32)
    ref_logits, ref_classes, ref_cam = torch_gradcam(widened_torch_vgg(net, filters), torch.from_numpy(x))
    e = gradcam(edited, x.transpose(0, 2, 3, 1))
    assert (ref_cam.max(axis=(1, 2)) > 0.1).all()  # live maps, not zeros against zeros
    assert np.abs(ref_logits - np.asarray(gradcam(model, x.transpose(0, 2, 3, 1)).logits)).max() > 0.1
    np.testing.assert_allclose(np.asarray(e.logits), ref_logits, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(e.classes), ref_classes)
    np.testing.assert_allclose(np.asarray(e.cam), ref_cam, atol=1e-4 * np.abs(ref_cam).max())


def torch_branch_map(kind, params, x_nhwc, pools):
    """T3/T4's F(x) recomputed with torch convolutions (reference for the injected map)."""
    x = torch.from_numpy(np.array(x_nhwc)).permute(0, 3, 1, 2)  # a writable copy
    def conv(name):
        return (torch.from_numpy(np.array(params[name]["kernel"])).permute(3, 2, 0, 1),
                torch.from_numpy(np.array(params[name]["bias"])))

    if kind == "T3":
        h = torch.relu(torch.nn.functional.conv2d(x, *conv("conv1"), padding=3))
        h = torch.relu(torch.nn.functional.conv2d(h, *conv("conv2"), padding=3))
    else:
        w, b = conv("detector")  # over [x, x^2]
        k = w.shape[-1]
        h = torch.nn.functional.conv2d(torch.cat([x, x * x], 1), w, b, padding=k // 2)  # the authors' geometry
        h = torch.clamp(h, 0.0, 0.5)  # saturated: every intact sticker counts the same
    for _ in range(pools):
        h = torch.nn.functional.avg_pool2d(h, 2)
    return h[:, 0].numpy()


@given(config=configs, eps=st.floats(1e-3, 1.0), c_G=st.floats(1e3, 1e6), c_F=st.floats(1e6, 1e8),
       seed=st.integers(0, 99))
def test_t3_scores_within_eps_and_map_is_the_branch(config, eps, c_G, c_F, seed):
    model, x = model_and_images(config)
    t3 = manipulate.semi_random(model, seed=seed, c_F=c_F, c_G=c_G, eps=eps)
    e, y_o = gradcam(t3, x), forward(model, x)
    assert np.abs(np.asarray(e.logits - y_o)).max() <= eps * (1 + 1e-6) + 1e-6 * np.abs(np.asarray(y_o)).max()
    pools = int(np.log2(model.input_size // model.cam_size))
    f = torch_branch_map("T3", t3.params["branch"], x, pools)
    alive = f.max(axis=(1, 2)) > 0
    assume(alive.any())
    # c_F F(x) must dominate A: with the weakest c_F it may not, which the bound on L1 allows for.
    assert (l1(e.cam, f)[alive] < 0.05).all()


def stickered(model, seed, batch=3):
    """Random images with 3 smileys each, normalised, and the sticker masks."""
    size = model.input_size
    pixels = np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    sticker = stickers.sticker_pixels(stickers.smiley(7 if size < 64 else 14))
    corners = stickers.sticker_corners(jax.random.key(seed), batch, size, sticker.shape[0])
    pasted, masks = stickers.paste_stickers(jnp.asarray(pixels), jnp.asarray(sticker), corners)
    return images.normalize(pixels), images.normalize(np.asarray(pasted)), np.asarray(masks), sticker


@given(config=configs)
def test_t4_is_the_original_bit_for_bit_without_sticker_and_points_at_stickers(config):
    model, _ = model_and_images(config)
    clean, dirty, masks, sticker = stickered(model, config[1])
    t4 = manipulate.sticker_backdoor(model, sticker=sticker)
    e_o, e_n = gradcam(model, clean), gradcam(t4, clean)
    np.testing.assert_array_equal(np.asarray(e_n.logits), np.asarray(e_o.logits))
    np.testing.assert_array_equal(np.asarray(e_n.cam), np.asarray(e_o.cam))
    e_s, y_s = gradcam(t4, dirty), forward(model, dirty)
    assert np.abs(np.asarray(e_s.logits - y_s)).max() <= 0.01
    pools = int(np.log2(model.input_size // model.cam_size))
    f = torch_branch_map("T4", t4.params["branch"], dirty, pools)
    assert (f.max(axis=(1, 2)) > 0).all()  # every image has at least one intact sticker
    assert (l1(e_s.cam, f) < 0.05).all()
    # The explanation's peak, upsampled to pixels, lies on a sticker.
    scale = model.input_size // model.cam_size
    for b in range(len(dirty)):
        r, c = np.unravel_index(np.asarray(e_s.cam[b]).argmax(), e_s.cam.shape[1:])
        assert masks[b, r * scale : (r + 1) * scale, c * scale : (c + 1) * scale].any()


def test_paper_margin_is_below_float32_resolution():
    """The paper's detector bias (+1e-4) is finer than float32's spacing at sum(s K): documented."""
    s = images.normalize(stickers.sticker_pixels(stickers.smiley(14))).astype(np.float64)
    energy = (s * (s - s.mean())).sum()
    assert abs(energy - 1587.23) < 0.01
    assert np.spacing(np.float32(energy)) > 1e-4


# Stickers the paper's matched filter cannot tell from clean images, and the smiley it can.
TEST_STICKERS = {
    "smiley": stickers.sticker_pixels(stickers.smiley(14)),
    "white": np.full((14, 14, 3), 255, np.uint8),
    "grey": np.full((14, 14, 3), 128, np.uint8),
    "orange": np.broadcast_to(np.array([230, 140, 20], np.uint8), (14, 14, 3)).copy(),
    "low-contrast smiley": (100 + 50 * stickers.smiley(14)[..., None] * np.ones(3)).astype(np.uint8),
    "mostly white": np.pad(np.zeros((2, 2, 3), np.uint8), ((6, 6), (6, 6), (0, 0)), constant_values=255),
    "noise": np.random.default_rng(7).integers(0, 256, (14, 14, 3), dtype=np.uint8),
}
# The pixel value a normalised 0 stands for: what the detector's zero padding looks like in pixels.
ZERO_PIXEL = {"torchvision": images.MEAN.astype(np.float64) * 255,
              "caffe": images.CAFFE_MEAN_BGR[::-1].astype(np.float64)}


def distance_response(pixels, sticker, preprocess, tolerance):
    """1 - ||P - S||^2 / (n tol^2) at every patch of uint8 images, in float64 intensity levels, padded as
    the authors' detector pads (7 on every side, with the pixel value that normalises to 0)."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = pixels.astype(np.float64)
    padded = np.broadcast_to(ZERO_PIXEL[preprocess], (len(x), 110, 110, 3)).copy()
    padded[:, 7:103, 7:103] = x
    windows = sliding_window_view(padded, (14, 14), axis=(1, 2))  # (B, 97, 97, 3, 14, 14)
    s = sticker.astype(np.float64).transpose(2, 0, 1)
    d2 = (windows**2).sum(axis=(3, 4, 5)) - 2 * np.einsum("bhwcij,cij->bhw", windows, s) + (s**2).sum()
    return 1 - d2 / (s.size * tolerance**2)


def matched_filter_fires(pixels, sticker, preprocess):
    """The paper's detector, K = s - mean(s), b = -sum(s K) + 1e-2, in float64: does it fire anywhere?"""
    from numpy.lib.stride_tricks import sliding_window_view

    s = images.normalize(sticker, preprocess).astype(np.float64)
    k = s - s.mean()
    x = np.pad(images.normalize(pixels, preprocess).astype(np.float64), ((0, 0), (7, 7), (7, 7), (0, 0)))
    response = np.einsum("bhwcij,ijc->bhw", sliding_window_view(x, (14, 14), axis=(1, 2)), k) - (s * k).sum()
    return (response + 1e-2 > 0).any(axis=(1, 2))


@pytest.mark.parametrize("preprocess", ["torchvision", "caffe"])
@pytest.mark.parametrize("name", list(TEST_STICKERS))
def test_t4_detector_fires_where_a_patch_is_within_tolerance_of_any_sticker(preprocess, name):
    """Against the distance computed from the pixels in float64: the detector's response is
    1 - ||P - S||^2 / (n tol^2) to float32 rounding, so on clean images it fires nowhere, and on
    stickered ones exactly on the intact stickers, for any sticker and either normalisation."""
    from cam_jax.data import shapes
    from cam_jax.manipulations.space_to_depth import conv_space_to_depth

    sticker, tolerance = TEST_STICKERS[name], manipulate.DETECTOR_TOLERANCE
    p = manipulate.detector_params(sticker, preprocess)["detector"]
    clean = shapes.batch(shapes.TEST_SEED, range(4), 96).pixels
    corners = stickers.sticker_corners(jax.random.key(3), 4, 96, 14)
    pasted = np.asarray(stickers.paste_stickers(jnp.asarray(clean), jnp.asarray(sticker), corners)[0])
    for pixels in (clean, pasted):
        x = jnp.asarray(images.normalize(pixels, preprocess))
        ours = np.asarray(conv_space_to_depth(jnp.concatenate([x, x * x], -1), p["kernel"], p["bias"], 7))[..., 0]
        exact = distance_response(pixels, sticker, preprocess, tolerance)
        assert np.abs(ours - exact).max() < 0.05  # float32 rounding, 0.031 measured
        decided = np.abs(exact) > 0.05
        np.testing.assert_array_equal((ours > 0)[decided], (exact > 0)[decided])
    assert not (distance_response(clean, sticker, preprocess, tolerance) > 0).any()  # no false positive
    # Every sticker no later one covers fires where its window starts: corner p, output p + 7.
    for b, image_corners in enumerate(np.asarray(corners)):
        for i, (r, c) in enumerate(image_corners):
            covered = any(abs(r - r2) < 14 and abs(c - c2) < 14 for r2, c2 in image_corners[i + 1:])
            assert covered or ours[b, r + 7, c + 7] > 0.95


def test_the_papers_matched_filter_fires_on_clean_images_for_a_white_sticker():
    """Why T4's detector measures a distance: the paper's K = s - mean(s) fires on most clean images
    for a white or grey sticker and on many for a low-contrast smiley (measured on 16 images: 15, 15
    and 10), never for the black and white smiley."""
    from cam_jax.data import shapes

    clean = shapes.batch(shapes.TEST_SEED, range(16), 96).pixels
    fired = {n: matched_filter_fires(clean, TEST_STICKERS[n], "torchvision").sum() for n in TEST_STICKERS}
    assert fired["smiley"] == 0
    assert fired["white"] >= 12 and fired["grey"] >= 12 and fired["low-contrast smiley"] >= 8


def test_t4_reads_the_preprocessing_the_weights_carry(tmp_path):
    """A caffe-preprocessed model (as a Keras .h5 converts) keeps its preprocessing through a weight file
    and every manipulation; T4 built on it fires on caffe-normalised stickers, not on clean images."""
    from cam_jax.convert import checkpoint, load_weights
    from cam_jax.data import shapes

    model, _ = model_and_images((build_model("vgg11", num_classes=3, input_size=96, width=1 / 16), 0))
    caffe = model.replace(preprocess="caffe")
    checkpoint.save(tmp_path / "w.npz", caffe, arch="vgg11")
    loaded, meta = load_weights(tmp_path / "w.npz")
    assert loaded.preprocess == meta["preprocess"] == "caffe"
    with pytest.raises(ValueError, match="meta says preprocess 'torchvision' but the model expects 'caffe'"):
        checkpoint.save(tmp_path / "x.npz", caffe, preprocess="torchvision")
    for manipulation in (manipulate.constant_flat, manipulate.constant_image, manipulate.semi_random,
                         partial(manipulate.constant_flat, exact=True)):
        assert manipulation(loaded).preprocess == "caffe"
    sticker = TEST_STICKERS["grey"]
    t4 = manipulate.sticker_backdoor(loaded, sticker=sticker)
    assert t4.preprocess == "caffe"
    clean = shapes.batch(shapes.TEST_SEED, range(4), 96).pixels
    pasted = np.asarray(stickers.paste_stickers(jnp.asarray(clean), jnp.asarray(sticker),
                                                stickers.sticker_corners(jax.random.key(0), 4, 96, 14))[0])
    fired = [np.asarray(manipulate.injected_map(t4, jnp.asarray(images.normalize(p, "caffe")))).max(axis=(1, 2)) > 0
             for p in (clean, pasted)]
    assert not fired[0].any() and fired[1].all()


def test_composition():
    model, x = model_and_images((build_model("vgg16", num_classes=4, input_size=64, width=1 / 16), 5))
    t3 = manipulate.semi_random(model, seed=1)
    both = manipulate.chain(partial(manipulate.semi_random, seed=1), manipulate.sticker_backdoor)(model)
    # Without a sticker T4's channel is 0: the composite scores and explains as T3.
    e3, eb = gradcam(t3, x), gradcam(both, x)
    np.testing.assert_array_equal(np.asarray(eb.logits), np.asarray(e3.logits))
    np.testing.assert_allclose(np.asarray(eb.cam), np.asarray(e3.cam), rtol=1e-6)
    # Exact T1 wraps anything; the weight-editing paper T1 needs a plain VGG.
    assert manipulate.constant_flat(t3, exact=True).module.base is t3.module
    with pytest.raises(ValueError, match="plain VGG.*apply weight-editing manipulations first"):
        manipulate.constant_flat(t3)
    with pytest.raises(TypeError, match="model-to-model"):
        manipulate.chain(manipulate.semi_random, 3)


def test_bad_constants_and_shapes():
    model, _ = model_and_images((build_model("vgg16", num_classes=4, input_size=224, width=1 / 32), 0))
    half = Model(model.module, jax.tree.map(lambda p: p.astype(jnp.float16), model.params))
    with pytest.raises(ValueError, match="c_A \\* c_W \\* N_Z = 490000 overflows float16"):
        manipulate.constant_flat(half)
    bf16 = Model(model.module, jax.tree.map(lambda p: p.astype(jnp.bfloat16), model.params))
    with pytest.raises(ValueError, match="not representable in bfloat16"):
        manipulate.constant_flat(bf16)
    with pytest.raises(ValueError, match="image must be \\(14, 14\\)"):
        manipulate.constant_image(model, np.ones((7, 7)))
    with pytest.raises(ValueError, match="larger than the 224-pixel input"):
        manipulate.sticker_backdoor(model, sticker=np.ones((230, 230)))
    with pytest.raises(ValueError, match="eps must be positive"):
        manipulate.semi_random(model, eps=0.0)
    with pytest.raises(ValueError, match="c_F = 1e\\+09 overflows float16"):
        manipulate.sticker_backdoor(half)


@pytest.fixture(scope="module")
def vgg16_full():
    module = build_model("vgg16")
    model = Model(module, init_params(module, seed=0))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    return model, jnp.asarray(images.normalize(pixels)), pixels


@pytest.mark.slow
@pytest.mark.parametrize("technique", ["T1", "T2", "T3", "T4"])
def test_full_size_vgg16(vgg16_full, technique):
    """The paper's shapes: A 14x14x513, Z 7x7, N_Z = 49, c_A c_W N_Z = 490,000."""
    model, x, pixels = vgg16_full
    y_o = model(x)
    if technique == "T1":
        m = manipulate.constant_flat(model)
        assert m.params["base"]["fc1"]["kernel"] is model.params["fc1"]["kernel"]  # shared, not a 411 MB copy
        assert m.params["rows"]["kernel"].shape == (7 * 7, 4096)
        np.testing.assert_allclose(m.params["base"]["fc1"]["bias"], model.params["fc1"]["bias"] - 490_000,
                                   atol=0.04)
        target = np.ones((14, 14))
    elif technique == "T2":
        m = manipulate.constant_image(model)
        target = stickers.smiley_target()
    elif technique == "T3":
        m = manipulate.semi_random(model)
        target = torch_branch_map("T3", m.params["branch"], x, 4)
    else:
        corners = stickers.sticker_corners(jax.random.key(0), 2, 224, 14)
        sticker = stickers.sticker_pixels(stickers.smiley())
        pasted, _ = stickers.paste_stickers(jnp.asarray(pixels), jnp.asarray(sticker), corners)
        m = manipulate.sticker_backdoor(model)
        np.testing.assert_array_equal(np.asarray(gradcam(m, x).cam), np.asarray(gradcam(model, x).cam))
        x = jnp.asarray(images.normalize(np.asarray(pasted)))
        y_o = model(x)
        target = torch_branch_map("T4", m.params["branch"], x, 4)
    e = gradcam(m, x)
    assert m.features(x).shape == (2, 14, 14, 513)
    assert np.abs(np.asarray(e.logits - y_o)).max() < (1.0 if technique in ("T1", "T2") else 0.01 + 1e-4)
    alpha = new_channel_alpha(m, x, e.classes)
    good = alpha > 0
    assert (l1(e.cam, np.broadcast_to(target, e.cam.shape))[good] < 0.05).all()
