"""ResNet in torchvision's layout: conversion against torch on the same random weights, errors that
name the key, and the paper's manipulations on a global-average-pool head."""

from __future__ import annotations

import copy

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from cam_jax import Model, convert, explain_many, gradcam, init_params
from cam_jax import manipulations as manipulate
from cam_jax.convert import checkpoint
from cam_jax.data import images, stickers
from cam_jax.models import build_model
from cam_jax.models.resnet import BLOCKS
from cam_jax.testing import assert_trees_all_close, l1, model_and_images, new_channel_alpha, torch_cam, torch_resnet

torch = pytest.importorskip("torch")

U = 2.0**-24  # float32 unit roundoff
SUMS_OVER_CHANNELS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "ablationcam")


def torch_file(tmp_path, arch, width=8, num_classes=10, seed=0):
    bottleneck, blocks = BLOCKS[arch]
    net = torch_resnet(blocks, bottleneck, width, num_classes, seed)
    path = tmp_path / f"{arch}.pth"
    torch.save(net.state_dict(), path)
    return net, path


def compare(net, model, x_nchw, rtol=1e-4):
    """Logits (relative to their scale), classes and GradCAM maps against torch autograd."""
    ref_logits, ref_classes, ref_cam = torch_cam(net.features, net.head, torch.from_numpy(x_nchw))
    expl = gradcam(model, x_nchw.transpose(0, 2, 3, 1))
    scale = np.abs(ref_logits).max()
    assert scale > 1e-2  # not zeros against zeros
    np.testing.assert_allclose(np.asarray(expl.logits), ref_logits, atol=rtol * scale)
    np.testing.assert_array_equal(np.asarray(expl.classes), ref_classes)
    assert ref_cam.max() > 0
    np.testing.assert_allclose(np.asarray(expl.cam), ref_cam, atol=rtol * ref_cam.max())


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_small_resnets_match_torch(tmp_path, arch):
    net, path = torch_file(tmp_path, arch)
    model, meta = convert.load_torchvision(path, input_size=64)
    assert meta["arch"] == arch and meta["preprocess"] == "torchvision"
    x = np.random.default_rng(1).normal(size=(3, 3, 64, 64)).astype(np.float32)
    assert model.features(x.transpose(0, 2, 3, 1)).shape == (3, 2, 2, model.module.channels)
    compare(net, model, x)


@pytest.mark.slow
def test_full_resnet50_matches_torch(tmp_path):
    """torchvision's exact ResNet-50: 25,557,032 parameters, A 7x7x2048 at 224, rel. error < 1e-4."""
    net, path = torch_file(tmp_path, "resnet50", width=64, num_classes=1000)
    assert sum(p.numel() for p in net.parameters()) == 25_557_032
    model, _ = convert.load_torchvision(path, arch="resnet50")
    x = np.random.default_rng(2).normal(size=(2, 3, 224, 224)).astype(np.float32)
    assert model.features(x.transpose(0, 2, 3, 1)).shape == (2, 7, 7, 2048)
    compare(net, model, x)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda sd: sd.pop("layer2.0.downsample.1.running_var"), "layer2.0.downsample.1.running_var is missing"),
        (lambda sd: sd.__setitem__("layer1.0.conv9.weight", sd["layer1.0.conv1.weight"]),
         "unexpected key layer1.0.conv9.weight"),
        (lambda sd: sd.__setitem__("layer3.1.conv2.weight", sd["layer3.1.conv2.weight"][:, :3]),
         "layer3_1/conv2/kernel has shape"),
        (lambda sd: sd.pop("fc.weight"), "fc.weight is missing"),
    ],
)
def test_broken_resnet_state_dict_names_the_key(tmp_path, edit, message):
    net, _ = torch_file(tmp_path, "resnet18")
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    edit(sd)
    with pytest.raises(ValueError, match=message):
        convert.from_torchvision_state_dict(sd)


def test_wrong_resnet_depth_and_family_are_named(tmp_path):
    _, path = torch_file(tmp_path, "resnet18")
    with pytest.raises(ValueError, match=r"basic blocks \(2, 2, 2, 2\) but resnet34 has.*looks like resnet18"):
        convert.load_torchvision(path, arch="resnet34")
    with pytest.raises(ValueError, match="holds a resnet state_dict, not vgg16"):
        convert.load_torchvision(path, arch="vgg16")


def test_resnet_checkpoint_round_trip_and_legacy_vgg_files(tmp_path):
    net, path = torch_file(tmp_path, "resnet50")
    model, meta = convert.load_torchvision(path)
    checkpoint.save(tmp_path / "r.npz", model, **meta)
    loaded, meta2 = checkpoint.load(tmp_path / "r.npz")
    assert loaded.module == model.module and meta2["arch"] == "resnet50" and meta2["family"] == "resnet"
    assert_trees_all_close(loaded.params, model.params)
    # A file in the first, VGG-only format (fields at the top level of the header) still loads.
    import json

    vgg = Model(build_model("vgg11", num_classes=3, input_size=32, width=1 / 16),
                init_params(build_model("vgg11", num_classes=3, input_size=32, width=1 / 16)))
    header = {"format": "cam_jax-vgg/1", "stages": [list(s) for s in vgg.module.stages], "hidden": vgg.module.hidden,
              "num_classes": 3, "input_size": 32, "arch": "vgg11"}
    from flax import traverse_util

    flat = traverse_util.flatten_dict(jax.device_get(vgg.params), sep="/")
    np.savez(tmp_path / "legacy.npz", **{k: np.asarray(v) for k, v in flat.items()},
             __meta__=np.array(json.dumps(header)))
    legacy, _ = checkpoint.load(tmp_path / "legacy.npz")
    assert legacy.module == vgg.module
    assert_trees_all_close(legacy.params, vgg.params)


# Two architectures, built once: hypothesis draws seeds and constants (parameter leaves: no recompile).
MODULES = (build_model("resnet18", num_classes=3, input_size=32, width=1 / 16),
           build_model("resnet50", num_classes=10, input_size=64, width=1 / 16))
configs = st.tuples(st.sampled_from(MODULES), st.integers(0, 2**16))


def gap_rounding_bound(model, x, shift):
    """|y_n - y_o| for the paper's T1/T2 on a global-average-pool head, in float32.

    The edit is exact in real arithmetic: the appended channel's mean z_n enters
    y = W z + b + c_W z_n - shift linearly (N_Z = 1). Only that sum rounds; with the
    probabilistic bound of Higham and Mary (2019) (lambda = 2) over its n = K + 2 terms,
    |dy_c| <= 2 sqrt(n + 2) u (sum_i |W_ic z_i| + |b_c| + 2 shift); the fc is the whole head.
    """
    p = model.params
    z = np.asarray(model.features(x)).mean(axis=(1, 2))
    mass = np.abs(z) @ np.abs(np.asarray(p["fc"]["kernel"])) + np.abs(np.asarray(p["fc"]["bias"]))
    return 2 * np.sqrt(z.shape[1] + 4) * U * (mass + 2 * shift).max()


def closed_form_map(model, x, classes, injected):
    """The manipulated map after a global mean, in closed form: the original's own weighted sum
    sum_k alpha_k A^k (its head is shared and linear, so its gradients are unchanged) plus
    alpha_{K+1} A^{K+1} with alpha_{K+1} = c_W / (h w), then the ReLU."""
    a = model.features(x)
    _, vjp = jax.vjp(model.head, a)
    (g,) = vjp(jax.nn.one_hot(classes, model.num_classes))
    return np.maximum(np.einsum("bhwk,bk->bhw", np.asarray(a), np.asarray(g.mean(axis=(1, 2)))) + injected, 0)


@given(config=configs, c_A=st.floats(100, 1000), c_W=st.floats(100, 1000))
def test_paper_t1_on_gap_head_scores_within_bound_and_never_collapses(config, c_A, c_W):
    model, x = model_and_images(config)
    before = copy.deepcopy(jax.device_get(model.params))
    t1 = manipulate.constant_flat(model, c_A=c_A, c_W=c_W)
    assert_trees_all_close(model.params, before)
    assert t1.params["base"]["fc"]["kernel"] is model.params["fc"]["kernel"]  # shared, not copied
    y_o, e = model(x), gradcam(t1, x)
    assert np.abs(np.asarray(e.logits - y_o)).max() <= gap_rounding_bound(model, x, c_A * c_W)
    # After a global mean the channel enters every logit with slope c_W: alpha = c_W / (h w) > 0, always.
    alpha = new_channel_alpha(t1, x, e.classes)
    np.testing.assert_allclose(alpha, c_W / model.cam_size**2, rtol=1e-5)
    expected = closed_form_map(model, x, e.classes, c_W / model.cam_size**2 * c_A)
    np.testing.assert_allclose(np.asarray(e.cam), expected, rtol=1e-4, atol=1e-4 * expected.max())
    assert (l1(e.cam, np.ones_like(np.asarray(e.cam))) < 0.05).all()


@given(config=configs, c_I=st.floats(100, 1000), c_W=st.floats(10, 100))
def test_paper_t2_on_gap_head_scores_within_bound_and_map_is_the_target(config, c_I, c_W):
    model, x = model_and_images(config)
    size = model.cam_size
    target = np.random.default_rng(0).uniform(0.1, 1, (size, size)).astype(np.float32)
    t2 = manipulate.constant_image(model, target, c_I=c_I, c_W=c_W)
    e = gradcam(t2, x)
    shift = c_W * float((c_I * target).mean())  # S_Z: what the global mean reads of c_I I_T
    assert np.abs(np.asarray(e.logits - model(x))).max() <= gap_rounding_bound(model, x, shift)
    np.testing.assert_allclose(new_channel_alpha(t2, x, e.classes), c_W / size**2, rtol=1e-5)
    # The injected map weighs c_W / (h w) here, against the sum over 4096 FC units of VGG-16's fc1:
    # with c_W = 10 the original's own map still shows through, and on a model whose own map is large
    # it wins (ResNet-50 at width 4, seed 0: 450 against an injected 170). The map is the target where the
    # injected map outweighs the original's tenfold.
    injected = c_W / size**2 * c_I * target
    expected = closed_form_map(model, x, e.classes, injected)
    np.testing.assert_allclose(np.asarray(e.cam), expected, rtol=1e-4, atol=1e-4 * expected.max())
    dominated = np.asarray(gradcam(model, x).cam).max(axis=(1, 2)) <= 0.1 * injected.min()
    assert (l1(e.cam, np.broadcast_to(target, e.cam.shape))[dominated] < 0.15).all()


def test_t3_t4_and_exact_t1_t2_on_resnet():
    model, x = model_and_images((build_model("resnet50", num_classes=5, input_size=224, width=1 / 16), 3), batch=2)
    y_o = np.asarray(model(x))
    for m in (manipulate.constant_flat(model, exact=True), manipulate.constant_image(model, exact=True)):
        np.testing.assert_array_equal(np.asarray(gradcam(m, x).logits), y_o)
    t3 = manipulate.semi_random(model)
    assert np.abs(np.asarray(gradcam(t3, x).logits) - y_o).max() <= 0.01
    # T4: the original bit for bit without a sticker; with stickers the 7x7 map points at one.
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    clean = jnp.asarray(images.normalize(pixels))
    t4 = manipulate.sticker_backdoor(model)
    np.testing.assert_array_equal(np.asarray(gradcam(t4, clean).logits), np.asarray(model(clean)))
    # The map too, bit for bit jitted on its own (batches 1 and 3, two targets), for the methods that
    # sum over channels (`weightings.apply`).
    for b, target in ((1, "softmax"), (3, "logit")):
        x_b = jnp.asarray(images.normalize(rng.integers(0, 256, (b, 224, 224, 3), dtype=np.uint8)))
        ours, theirs = (explain_many(m, x_b, SUMS_OVER_CHANNELS, target) for m in (t4, model))
        for method, e in ours.items():
            np.testing.assert_array_equal(np.asarray(e.cam), np.asarray(theirs[method].cam), err_msg=method)
    sticker = stickers.sticker_pixels(stickers.smiley())
    corners = stickers.sticker_corners(jax.random.key(1), 2, 224, 14)
    pasted, masks = stickers.paste_stickers(jnp.asarray(pixels), jnp.asarray(sticker), corners)
    e = gradcam(t4, jnp.asarray(images.normalize(np.asarray(pasted))))
    assert e.cam.shape == (2, 7, 7)
    for b in range(2):
        r, c = np.unravel_index(np.asarray(e.cam[b]).argmax(), (7, 7))
        assert np.asarray(masks)[b, r * 32:(r + 1) * 32, c * 32:(c + 1) * 32].any()
