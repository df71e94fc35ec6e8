"""scripts/explain.py end to end on a small converted model and generated image files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cam_jax import Model, explain_many, gradcam, init_params
from cam_jax.convert import checkpoint
from cam_jax.data import images
from cam_jax.models import build_model
from cam_jax.testing import script


def explain(argv, capsys):
    """scripts/explain.py in this process (the first call of each test runs it as a command): (code, out, err)."""
    code = script("explain").main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_writes_logits_maps_and_overlays(tmp_path, capsys):
    module = build_model("vgg16", num_classes=4, input_size=64, width=1 / 16)
    model = Model(module, init_params(module, seed=1))
    weights = tmp_path / "w.npz"
    checkpoint.save(weights, model, arch="vgg16", preprocess="torchvision", class_names=list("abcd"))
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(90, 70), (64, 64)]):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    out = tmp_path / "out"
    cmd = [sys.executable, "scripts/explain.py", *paths, "--weights", str(weights), "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "img0.png: class" in result.stdout
    x = np.stack([images.load(p, 64) for p in paths])
    expected = gradcam(model, x)
    for i in range(2):
        np.testing.assert_allclose(np.load(out / f"img{i}_logits.npy"), np.asarray(expected.logits[i]), atol=1e-5)
        np.testing.assert_allclose(np.load(out / f"img{i}_gradcam.npy"), np.asarray(expected.cam[i]), atol=1e-5)
        assert Image.open(out / f"img{i}_gradcam.png").size[0] > 100
    code, _, err = explain([*paths, "--weights", tmp_path / "none.npz", "--out", out], capsys)
    assert code == 2 and "no weight file" in err
    # Several methods: a map per method (the same as the library's) and one figure with a panel each.
    code, _, err = explain([*cmd[2:], "--method", "gradcam++", "--method", "layercam", "--target", "softmax"], capsys)
    assert code == 0, err
    expected = explain_many(model, x, ["gradcam++", "layercam"], target="softmax")
    for i in range(2):
        for method in ("gradcam++", "layercam"):
            np.testing.assert_allclose(np.load(out / f"img{i}_{method}.npy"), np.asarray(expected[method].cam[i]),
                                       atol=1e-5)
        assert Image.open(out / f"img{i}_methods.png").size[0] > 200
    # Two inputs with the same stem would overwrite each other's outputs: refused before any work.
    (tmp_path / "again").mkdir()
    twin = tmp_path / "again" / "img0.png"
    twin.write_bytes(open(paths[0], "rb").read())
    code, _, err = explain([paths[0], twin, *cmd[4:]], capsys)
    assert code == 2 and "share the file stem 'img0'" in err


def test_resize_crop_matches_torchvision_recipe():
    """Shorter side to 256 then centre 224: a 512x300 image keeps its centre column band."""
    pixels = np.zeros((300, 512, 3), np.uint8)
    pixels[:, 256 - 10 : 256 + 10] = 255  # a bright vertical band at the centre
    out = images.resize_crop(Image.fromarray(pixels))
    assert out.shape == (224, 224, 3)
    # 512 * 256/300 = 437 wide; the 20-pixel band becomes ~17 pixels at the crop's centre
    bright = np.where(out[112, :, 0] > 128)[0]
    assert abs(bright.mean() - 111.5) < 1.5 and 14 <= len(bright) <= 19


def test_explain_resnet50_pth_matches_torch(tmp_path, capsys):
    """scripts/explain.py --arch resnet50 on a torchvision-layout .pth: maps and logits as torch computes them,
    directly and after scripts/convert_weights.py."""
    torch = pytest.importorskip("torch")
    from cam_jax.models.resnet import BLOCKS
    from cam_jax.testing import torch_cam, torch_resnet

    net = torch_resnet(BLOCKS["resnet50"][1], True, width=8, num_classes=10, seed=3)
    pth = tmp_path / "resnet50-random.pth"
    torch.save(net.state_dict(), pth)
    npz = tmp_path / "resnet50.npz"
    assert script("convert_weights").main([str(pth), "--out", str(npz), "--arch", "resnet50"]) == 0
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):
        p = tmp_path / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 255, (260, 300, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    x = np.stack([images.load(p, 224) for p in paths])
    ref_logits, _, ref_cam = torch_cam(net.features, net.head, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    for weights in (pth, npz):
        out = tmp_path / f"out_{weights.suffix[1:]}"
        code, _, err = explain([*paths, "--weights", weights, "--arch", "resnet50", "--out", out], capsys)
        assert code == 0, err
        for i in range(2):
            np.testing.assert_allclose(np.load(out / f"photo{i}_logits.npy"), ref_logits[i],
                                       atol=1e-4 * np.abs(ref_logits).max())
            cam = np.load(out / f"photo{i}_gradcam.npy")
            assert cam.shape == (7, 7) and ref_cam[i].max() > 0
            np.testing.assert_allclose(cam, ref_cam[i], atol=1e-4 * ref_cam[i].max())
    code, _, err = explain([paths[0], "--weights", pth, "--arch", "resnet18", "--out", tmp_path / "x"], capsys)
    assert code == 2 and "looks like resnet50" in err
