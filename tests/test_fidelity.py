"""The authors' own choices (SPEC.md, "What the authors' code actually computes"), each against the fact."""

from __future__ import annotations

import json

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from cam_jax import convert, gradcam
from cam_jax.cams.weightings import grad_cam_authors
from cam_jax.data import images, stickers
from cam_jax.evaluation.config import AUTHORS
from cam_jax.evaluation.suite import AUTHORS_SUITE, original
from cam_jax.manipulations import branches, detector_params, semi_random
from cam_jax.models.vgg import STAGES
from cam_jax.testing import make_torch_vgg, random_model, script

torch = pytest.importorskip("torch")

AUTHORS_SMILEY = ["1111111", "1101011", "1111111", "1110111", "1011101", "1100011", "1111111"]


def test_smiley_is_the_authors_drawing():
    """Their 7x7 file: eyes at columns 2 and 4, nose at column 3, mouth below; the sticker repeats it 2x2."""
    np.testing.assert_array_equal(stickers.SMILEY_7, [[int(c) for c in row] for row in AUTHORS_SMILEY])
    sticker = stickers.smiley(14)
    np.testing.assert_array_equal(sticker[2:4, 4:6], 0)  # the left eye: row 1, column 2 of the 7x7
    np.testing.assert_array_equal(sticker[::2, ::2], stickers.SMILEY_7)


def test_t2_target_is_the_uint8_resize_min_max_normalised():
    """The 7x7 smiley as uint8 0/255, resized bilinearly to 14x14 (torch, half-pixel, on uint8 values),
    rounded: 64..255; then (v - 64) / 191."""
    source = torch.tensor(stickers.SMILEY_7 * 255.0)[None, None]
    resized = torch.nn.functional.interpolate(source, size=(14, 14), mode="bilinear", align_corners=False)
    pixels = torch.round(resized)[0, 0].numpy()
    assert pixels.min() == 64 and pixels.max() == 255
    np.testing.assert_allclose(stickers.smiley_target(14), (pixels - 64) / 191, atol=1e-7)


@given(corner=st.tuples(st.integers(14, 209), st.integers(14, 209)))
def test_a_sticker_lands_in_the_cell_the_authors_geometry_gives(corner):
    """Padding 7 on every side and flooring pools: a sticker with its corner at p fires in cell
    floor((p + 7) / 16) of the 14x14 map, and nowhere else."""
    sticker = stickers.sticker_pixels(stickers.smiley())
    pixels = np.full((1, 224, 224, 3), 128, np.uint8)
    pixels[0, corner[0]:corner[0] + 14, corner[1]:corner[1] + 14] = sticker
    detector = branches.StickerDetector(14, 16)
    params = {**detector_params(sticker), "c_F": jnp.float32(1.0)}
    fired = np.asarray(detector.apply({"params": params}, jnp.asarray(images.normalize(pixels))))[0]
    assert fired.shape == (14, 14)
    assert list(zip(*np.nonzero(fired), strict=True)) == [((corner[0] + 7) // 16, (corner[1] + 7) // 16)]


def test_authors_gradcam_convention_against_torch_with_an_in_place_relu(tmp_path):
    """Their hook: the gradient at conv5_3's output (before the ReLU), the stored map overwritten by
    the in-place ReLU that follows; ours: grad_cam_authors on a VGG whose A is taken before the ReLU."""
    stages = tuple(tuple(w // 16 for w in s) for s in STAGES["vgg16"])
    net = make_torch_vgg(stages, 64, 10, 64, seed=2)
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(layer.weight)
    net.features[-2] = torch.nn.ReLU(inplace=True)
    torch.save(net.state_dict(), tmp_path / "vgg.pth")
    model, _ = convert.load_torchvision(tmp_path / "vgg.pth")
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    stored, grads = [], []

    def hook(module, inputs, output):
        stored.append(output)  # the same storage the in-place ReLU then overwrites
        output.register_hook(grads.append)

    net.features[-3].register_forward_hook(hook)
    logits = net(torch.from_numpy(x))
    classes = logits.argmax(1)
    logits.gather(1, classes[:, None]).sum().backward()
    a, g = stored[0].detach(), grads[0]
    assert (a >= 0).all()  # overwritten: values after the ReLU
    expected = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1)).numpy()
    pre = original(model, AUTHORS)
    ours = gradcam(pre, x.transpose(0, 2, 3, 1), weighting=grad_cam_authors)
    assert expected.max() > 0
    np.testing.assert_allclose(np.asarray(ours.cam), expected, atol=1e-4 * expected.max())
    # Neither the pre-ReLU nor the post-ReLU convention alone gives their map.
    post = gradcam(model, x.transpose(0, 2, 3, 1))
    assert np.abs(np.asarray(post.cam) - expected).max() > 1e-2 * expected.max()


def test_t3_branch_drawn_as_torch_draws_it():
    """PyTorch's default Conv2d init: weights and biases uniform in +-1/sqrt(fan_in), biases not zero."""
    model = random_model("vgg11", num_classes=3, input_size=32, width=1 / 16)
    branch = semi_random(model, seed=3, torch_init=True).params["branch"]
    for name, fan_in in (("conv1", 6 * 6 * 3), ("conv2", 6 * 6 * 6)):
        bound = fan_in**-0.5
        kernel, bias = np.asarray(branch[name]["kernel"]), np.asarray(branch[name]["bias"])
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.8 * bound, name  # 108 or 216 draws
        assert (np.abs(bias) <= bound).all() and (bias != 0).all(), name
    flax_drawn = semi_random(model, seed=3).params["branch"]
    assert not np.asarray(flax_drawn["conv1"]["bias"]).any()  # the default: flax's zero biases
    assert AUTHORS_SUITE[2].score_change == "mean"


def test_eval_under_the_authors_convention(tmp_path, capsys):
    """--convention authors runs end to end; T3's score change is the mean over classes (<= eps)."""
    from cam_jax.convert import checkpoint
    from cam_jax.data import shapes

    weights = tmp_path / "tiny.npz"
    checkpoint.save(weights, random_model("vgg16", num_classes=4, input_size=64, width=1 / 16), arch="vgg16",
                    preprocess="torchvision", class_names=list(shapes.CLASSES))
    out = tmp_path / "authors"
    code = script("eval").main(["--no-progress", "--weights", str(weights), "--convention", "authors", "--limit", "4",
                                "--batch-size", "4", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["convention"] == "authors"
    rows = {(r["model"], r["data"]): r for r in results["rows"]}
    assert rows[("T3", "clean")]["dy_inf_max"] <= 0.01 and rows[("T4", "clean")]["dy_inf_max"] == 0
