"""Vision Transformers in torchvision's layout: conversion against torch on the same random weights (logits,
A at the last ln_1, GradCAM by torch autograd; every CAM, ScoreCAM, AblationCAM and the input-space methods
are compared with torch and captum in tests/test_cams.py), errors that name the key, every method on a ViT,
the paper's manipulations through the generic combinators, a token network cut, and the audit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax import convert, explain_many, gradcam
from cam_jax import manipulations as manipulate
from cam_jax.convert import checkpoint
from cam_jax.data import images, stickers
from cam_jax.testing import (
    assert_trees_all_close,
    random_model,
    script,
    torch_vit,
    torch_vit_cam,
)

torch = pytest.importorskip("torch")

# patch, layers, heads, hidden, mlp: two heads of 16, so that the heads' split is exercised
SMALL = dict(patch=8, layers=2, heads=2, hidden=32, mlp=64, num_classes=5, input_size=32)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(torch net, its .pth, the converted model, images (B, 3, H, W))."""
    net = torch_vit(**SMALL, seed=3)
    path = tmp_path_factory.mktemp("vit") / "vit.pth"
    torch.save(net.state_dict(), path)
    model, meta = convert.load_torchvision(path, heads=2)
    assert meta["arch"] is None and model.cam_size == 4
    x = np.random.default_rng(1).normal(size=(3, 3, 32, 32)).astype(np.float32)
    return net, path, model, x


def test_small_vit_matches_torch(small):
    """Logits, A (the last ln_1 at the patch tokens) and GradCAM with the class token held, as torch computes
    them with a hook on ln_1."""
    net, _, model, x = small
    ref_logits, ref_classes, ref_cam, ref_a = torch_vit_cam(net, x)
    expl = gradcam(model, x.transpose(0, 2, 3, 1))
    scale = np.abs(ref_logits).max()
    np.testing.assert_allclose(np.asarray(expl.logits), ref_logits, atol=1e-4 * scale)
    np.testing.assert_array_equal(np.asarray(expl.classes), ref_classes)
    np.testing.assert_allclose(np.asarray(model.features(x.transpose(0, 2, 3, 1))), ref_a, atol=1e-4)
    assert ref_cam.max() > 0
    np.testing.assert_allclose(np.asarray(expl.cam), ref_cam, atol=1e-4 * ref_cam.max())


def test_vit_conversion_names_what_is_wrong(small, tmp_path):
    net, path, model, x = small
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match="no torchvision size.*pass heads"):
        convert.load_torchvision(path)
    with pytest.raises(ValueError, match="not vit_b_16"):
        convert.load_torchvision(path, arch="vit_b_16")
    with pytest.raises(ValueError, match="position embedding fixes its input at 32 pixels, not 64"):
        convert.load_torchvision(path, heads=2, input_size=64)
    with pytest.raises(ValueError, match="heads applies to a ViT"):
        convert.from_torchvision_state_dict({"layer1.0.conv1.weight": np.zeros((1, 1, 1, 1))}, heads=2)
    with pytest.raises(ValueError, match="hidden \\(32\\) must be divisible by heads \\(3\\)"):
        convert.from_torchvision_state_dict(state, heads=3)
    broken = dict(state)
    broken.pop("encoder.layers.encoder_layer_1.self_attention.out_proj.bias")
    with pytest.raises(ValueError, match="encoder_layer_1.self_attention.out_proj.bias is missing"):
        convert.from_torchvision_state_dict(broken, heads=2)
    key = "encoder.layers.encoder_layer_0.mlp.0.weight"
    broken = {**state, key: state[key][:, :3]}
    with pytest.raises(ValueError, match="encoder_layer_0/mlp_0/kernel has shape"):
        convert.from_torchvision_state_dict(broken, heads=2)
    # Files of older torchvision releases name the MLP's layers linear_1 and linear_2.
    old = {k.replace("mlp.0.", "mlp.linear_1.").replace("mlp.3.", "mlp.linear_2."): v for k, v in state.items()}
    assert_trees_all_close(convert.from_torchvision_state_dict(old, heads=2).params, model.params)
    # The command line: without --heads it names the option, with it the file converts.
    convert_weights = script("convert_weights").main
    assert convert_weights([str(path), "--out", str(tmp_path / "none.npz")]) == 2
    assert convert_weights([str(path), "--out", str(tmp_path / "cli.npz"), "--heads", "2"]) == 0
    assert_trees_all_close(checkpoint.load(tmp_path / "cli.npz")[0].params, model.params)
    # A cam_jax file keeps the config, heads included.
    checkpoint.save(tmp_path / "vit.npz", model)
    loaded, meta = checkpoint.load(tmp_path / "vit.npz")
    assert loaded.module == model.module and meta["family"] == "vit"
    nhwc = x.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(np.asarray(loaded(nhwc)), np.asarray(model(nhwc)))


@pytest.fixture(scope="module")
def vit():
    """A random 1-block ViT-B/16 shape at 1/12 width on 64-pixel images (a 4x4 grid), and 3 images (the
    torch comparisons use 2 blocks)."""
    model = random_model("vit_b_16", 0, num_classes=4, input_size=64, width=1 / 12, layers=1)
    return model, jax.random.normal(jax.random.key(1), (3, 64, 64, 3))


def test_the_defences_run_on_a_vit(vit):
    """The methods tests/test_cams.py does not compare with torch or captum on a ViT: occlusion, the
    beta-smoothed methods and the aggregates (whose members it does compare)."""
    from cam_jax.cams.methods import DEFENCES

    model, x = vit
    out = explain_many(model, x, (*DEFENCES, "saliency"))
    for name, e in out.items():
        assert np.isfinite(np.asarray(e.cam)).all(), name
        assert e.cam.shape in ((3, 4, 4), (3, 64, 64)), (name, e.cam.shape)
    np.testing.assert_array_equal(np.asarray(out["occlusion"].classes), np.asarray(out["saliency"].classes))


def test_the_paper_manipulations_on_a_vit(vit):
    """Through the generic combinators (a channel appended to the token grid): exact T1 and T2 keep every logit
    bit for bit and make GradCAM the injected map; T3 keeps them within eps; T4 is the original without its
    sticker and points at it with one."""
    model, x = vit
    before = np.asarray(model(x))
    t1 = manipulate.constant_flat(model, exact=True)
    np.testing.assert_array_equal(np.asarray(t1(x)), before)
    cam = np.asarray(gradcam(t1, x).cam)
    # flat up to the original A's own share (c_W = 100 times c_A = 100 against a map of about 0.1)
    np.testing.assert_allclose(cam, np.broadcast_to(cam[:, :1, :1], cam.shape), rtol=1e-4)
    target = np.random.default_rng(0).random((4, 4)).astype(np.float32)
    t2 = manipulate.constant_image(model, image=target, exact=True)
    np.testing.assert_array_equal(np.asarray(t2(x)), before)
    got = np.asarray(gradcam(t2, x).cam)
    np.testing.assert_allclose(got / got.max(axis=(1, 2), keepdims=True), np.broadcast_to(target / target.max(),
                                                                                        got.shape), atol=1e-3)
    t3 = manipulate.semi_random(model)
    assert np.abs(np.asarray(t3(x)) - before).max() <= 0.01
    injected = np.asarray(jax.nn.relu(manipulate.injected_map(t3, x)))
    got = np.asarray(gradcam(t3, x).cam)
    np.testing.assert_allclose(got / got.max(axis=(1, 2), keepdims=True),
                               injected / injected.max(axis=(1, 2), keepdims=True), atol=1e-3)
    # T4: the original bit for bit without a sticker; with stickers the 4x4 map points at one.
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    clean = jnp.asarray(images.normalize(pixels))
    t4 = manipulate.sticker_backdoor(model)
    np.testing.assert_array_equal(np.asarray(t4(clean)), np.asarray(model(clean)))
    np.testing.assert_array_equal(np.asarray(gradcam(t4, clean).cam), np.asarray(gradcam(model, clean).cam))
    corners = stickers.sticker_corners(jax.random.key(1), 2, 64, 14)
    smiley = jnp.asarray(stickers.sticker_pixels(stickers.smiley()))
    pasted, masks = stickers.paste_stickers(jnp.asarray(pixels), smiley, corners)
    cam = np.asarray(gradcam(t4, jnp.asarray(images.normalize(np.asarray(pasted)))).cam)
    for b in range(2):
        r, c = np.unravel_index(cam[b].argmax(), (4, 4))
        assert np.asarray(masks)[b, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16].any()


@pytest.mark.slow
def test_full_vit_b_16_matches_torch(tmp_path):
    """torchvision's ViT-B/16 layout: 86,567,656 parameters, A 14x14x768 at 224; logits and GradCAM to 1e-4."""
    net = torch_vit(16, 12, 12, 768, 3072, 1000, 224, seed=0)
    assert sum(p.numel() for p in net.parameters()) == 86_567_656
    torch.save(net.state_dict(), tmp_path / "vit_b_16.pth")
    model, meta = convert.load_torchvision(tmp_path / "vit_b_16.pth")
    assert meta["arch"] == "vit_b_16" and model.cam_size == 14
    x = np.random.default_rng(2).normal(size=(2, 3, 224, 224)).astype(np.float32)
    ref_logits, ref_classes, ref_cam, _ = torch_vit_cam(net, x)
    expl = gradcam(model, x.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(np.asarray(expl.logits), ref_logits, atol=1e-4 * np.abs(ref_logits).max())
    np.testing.assert_array_equal(np.asarray(expl.classes), ref_classes)
    np.testing.assert_allclose(np.asarray(expl.cam), ref_cam, atol=1e-4 * ref_cam.max())


def test_a_flax_token_network_cut_at_ln_1_is_the_vit(vit):
    """`cut(..., tokens=1)` on a plain flax ViT (every block on every token, no features/head split) with the
    ViT's parameters: the same A, logits and GradCAM as the ViT module, whose head runs the last block for
    the class token alone."""
    import flax.linen as nn

    from cam_jax.models import cut
    from cam_jax.models.conv import Conv
    from cam_jax.models.dense import Dense
    from cam_jax.models.vit import EncoderBlock, layer_norm

    model, x = vit
    m = model.module

    class TokenNet(nn.Module):
        def setup(self):
            self.conv_proj = Conv(m.hidden, (m.patch, m.patch), (m.patch, m.patch), padding="VALID")
            self.class_token = self.param("class_token", nn.initializers.zeros, (1, 1, m.hidden))
            self.pos_embedding = self.param("pos_embedding", nn.initializers.zeros, (1, m.cam_size**2 + 1, m.hidden))
            self.blocks = [EncoderBlock(m.hidden, m.heads, m.mlp, name=f"encoder_layer_{i}") for i in range(m.layers)]
            self.ln = layer_norm()
            self.head = Dense(m.num_classes)

        def __call__(self, x):
            p = self.conv_proj(x)
            t = jnp.concatenate([jnp.broadcast_to(self.class_token, (x.shape[0], 1, m.hidden)),
                                 p.reshape(x.shape[0], -1, m.hidden)], axis=1) + self.pos_embedding
            for block in self.blocks:
                t = block(t)
            return self.head(self.ln(t)[:, 0])

    with pytest.raises(ValueError, match="cut with tokens="):  # tokens, not a feature map
        cut(TokenNet(), {"params": model.params}, f"encoder_layer_{m.layers - 1}/ln_1", input_size=64)
    with pytest.raises(ValueError, match=r"must return \(B, 2 \+ g\*g, D\) tokens"):
        cut(TokenNet(), {"params": model.params}, f"encoder_layer_{m.layers - 1}/ln_1", input_size=64, tokens=2)
    token = cut(TokenNet(), {"params": model.params}, f"encoder_layer_{m.layers - 1}/ln_1", input_size=64, tokens=1)
    assert token.cam_size == 4
    np.testing.assert_allclose(np.asarray(token.features(x)), np.asarray(model.features(x)), atol=1e-5)
    ours, theirs = gradcam(token, x), gradcam(model, x)
    np.testing.assert_allclose(np.asarray(ours.logits), np.asarray(theirs.logits), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.cam), np.asarray(theirs.cam), atol=1e-5 * float(theirs.cam.max()))


def test_the_audit_on_a_vit(vit):
    """The audit reads a ViT's A and holds its class token: a random ViT is clean, the exact T1 and T3 on it
    are flagged by their channel (the appended one, A's last), and the recommended map, GradCAM without
    it, is the unmanipulated ViT's GradCAM."""
    from cam_jax.audit import audit_model, recommend
    from cam_jax.evaluation.population import audit_images

    model, _ = vit
    x = audit_images(model, 8)
    assert not audit_model(model, x).manipulated
    honest = np.asarray(gradcam(model, x).cam)
    for attacked in (manipulate.constant_flat(model, exact=True), manipulate.semi_random(model)):
        report = audit_model(attacked, x)
        assert report.manipulated and report.checks["intervention"].score > 0.9
        assert report.channels == (model.module.hidden,)
        np.testing.assert_allclose(np.asarray(recommend(attacked, x, report).explanation.cam), honest,
                                   atol=1e-6 * honest.max())


def test_t3_and_t4_on_14_pixel_patches():
    """ViT-H/14's patches are no power of two: the branches pool 14x14 windows in one step, to A's grid."""
    from cam_jax.models.vit import ViT

    model = random_model("vit_h_14", 0, num_classes=3, input_size=56, width=1 / 16, layers=1)
    assert isinstance(model.module, ViT) and model.cam_size == 4
    x = jax.random.normal(jax.random.key(2), (2, 56, 56, 3))
    t3 = manipulate.semi_random(model)
    assert np.abs(np.asarray(t3(x)) - np.asarray(model(x))).max() <= 0.01
    assert manipulate.injected_map(t3, x).shape == (2, 4, 4)
    t4 = manipulate.sticker_backdoor(model)
    np.testing.assert_array_equal(np.asarray(t4(x)), np.asarray(model(x)))
