"""The evaluation: fused equals unfused, the trunk is shared, sharding, eval.py end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax import Model, init_params
from cam_jax.convert import checkpoint
from cam_jax.data import imagenet, images, shapes
from cam_jax.evaluation import step as evaluate
from cam_jax.evaluation import suite
from cam_jax.models import build_model
from cam_jax.testing import write_fake_val_tar

SIZE = 64  # small models: eval.py pastes 7-pixel smileys below 224 pixels


@pytest.fixture(scope="module")
def small():
    module = build_model("vgg16", num_classes=len(shapes.CLASSES), input_size=SIZE, width=1 / 16)
    model = Model(module, init_params(module, seed=0))
    b = shapes.batch(shapes.TEST_SEED, range(4), SIZE)
    settings = suite.Settings(sticker_size=7)
    pasted = evaluate.sticker_images(b.pixels, np.arange(4), 0, suite.sticker(settings))
    args = (model, jnp.asarray(images.normalize(b.pixels)), jnp.asarray(images.normalize(pasted)),
            jnp.asarray(b.labels), jnp.asarray(b.masks))
    return settings, args


def test_fused_step_equals_models_run_one_by_one(small):
    settings, args = small
    fused = evaluate.fused_step(settings)(*args)
    unfused = evaluate.unfused_step(settings)(*args)
    assert set(suite.ROWS) <= set(fused)
    for row in suite.ROWS:
        for name in evaluate.METRICS:
            np.testing.assert_allclose(np.asarray(fused[row][name]), np.asarray(unfused[row][name]),
                                       rtol=1e-5, atol=1e-5, err_msg=f"{row} {name}")
    # T4 on clean images is the original: bit for bit on its own (test_manipulate), here within
    # float32 rounding, as XLA may fuse the two heads of the one jitted step differently.
    assert float(jnp.max(fused[("T4", "clean")]["dy_inf"])) <= 1e-6
    assert float(jnp.max(fused[("T4", "clean")]["l1"])) <= 1e-5


def test_fused_step_computes_each_trunk_once(small):
    """13 convs per trunk: sharing leaves 2 trunks (clean, sticker) + T1/T2's 513-filter conv5_3
    + T3's 2 convs + T4's detector twice = 32 at most; unshared it would be 7 * 13 + 6 = 97."""
    settings, args = small
    hlo = evaluate.fused_step(settings).lower(*args).compile().as_text()
    convolutions = len(re.findall(r"\bconvolution\(", hlo))
    assert 26 <= convolutions <= 32, convolutions


def tiny_weights(tmp_path, num_classes=len(shapes.CLASSES), size=SIZE):
    module = build_model("vgg16", num_classes=num_classes, input_size=size, width=1 / 16)
    path = tmp_path / "tiny.npz"
    names = list(shapes.CLASSES) if num_classes == len(shapes.CLASSES) else None
    checkpoint.save(path, Model(module, init_params(module, 1)), arch="vgg16", preprocess="torchvision",
                    **({"class_names": names} if names else {}))
    return path


def run_eval(*args, env=None):
    return subprocess.run([sys.executable, "scripts/eval.py", "--no-progress", *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_eval_writes_all_outputs(tmp_path):
    weights = tiny_weights(tmp_path)
    out = tmp_path / "results"
    result = run_eval("--weights", weights, "--limit", 6, "--batch-size", 4, "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["figure1.png", "figure3.png", "report.md", "results.json"]
    results = json.loads((out / "results.json").read_text())
    assert results["n_images"] == 6 and results["dataset"] == "shapes"
    rows = {(r["model"], r["data"]): r for r in results["rows"]}
    assert set(rows) == set(suite.ROWS)
    assert set(rows[("T1", "clean")]) >= {"model", "data", "accuracy", "dy_inf_mean", "dy_inf_max", "l1_mean",
                                          "pointing_game", "mass_in_mask"}
    assert rows[("original", "clean")]["dy_inf_mean"] is None
    assert rows[("T4", "clean")]["dy_inf_max"] <= 1e-6 and rows[("T4", "clean")]["l1_mean"] <= 1e-5
    assert "Table 2" in (out / "report.md").read_text()


def test_sharded_run_gives_the_same_table(tmp_path):
    # --exact: the paper's T1/T2 score changes are float rounding, which any change of compiled
    # program (sharding included) reorders; the exact variants make every figure comparable.
    weights = tiny_weights(tmp_path)
    single = run_eval("--weights", weights, "--exact", "--limit", 6, "--batch-size", 4, "--out", tmp_path / "one")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    sharded = run_eval("--weights", weights, "--exact", "--limit", 6, "--batch-size", 8, "--out", tmp_path / "four",
                       env=env)
    assert single.returncode == 0 and sharded.returncode == 0, sharded.stderr
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    four = json.loads((tmp_path / "four" / "results.json").read_text())
    assert four["device"].startswith("4 x")
    for a, b in zip(one["rows"], four["rows"], strict=True):
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (a["model"], key)
            else:
                assert b[key] == value


@pytest.mark.parametrize(
    "args, message",
    [
        (["--weights", "absent.npz"], "no weight file"),
        (["--limit", "0"], "--limit must be positive"),
        (["--model", "vgg16"], "needs --weights"),
        (["--model", "vgg16", "--weights", "TINY"], "not ImageNet VGG-16"),
        (["--weights", "TINY", "--data", "imagenet2012"], "needs --data-dir"),
    ],
)
def test_bad_arguments_fail_cleanly(tmp_path, args, message):
    weights = tiny_weights(tmp_path)
    out = tmp_path / "out"
    result = run_eval(*[str(weights) if a == "TINY" else a for a in args], "--out", out)
    assert result.returncode == 2 and message in result.stderr
    assert not out.exists()


def test_imagenet_from_a_tiny_val_tar(tmp_path):
    """The real tfds path: a tar laid out like ILSVRC2012_img_val.tar, prepared and read."""
    pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("tensorflow")
    data_dir = tmp_path / "imagenet"
    data_dir.mkdir()
    weights = tiny_weights(tmp_path, num_classes=1000, size=SIZE)
    empty = run_eval("--model", "vgg16", "--weights", weights, "--data-dir", data_dir, "--out", tmp_path / "x")
    assert empty.returncode == 2 and "ILSVRC2012_img_val.tar" in empty.stderr
    write_fake_val_tar(data_dir / imagenet.VAL_TAR, 5)
    loader, n = imagenet.loader(data_dir, SIZE)
    assert n == 5
    batch = loader(range(5))
    assert batch.pixels.shape == (5, SIZE, SIZE, 3) and batch.pixels.dtype == np.uint8
    # Labels come from tfds' validation_labels.txt (images 1-5: n01751748, n09193705, n02105855,
    # n04263257, n03125729), as class indices in labels.txt's order; tfds stores them shuffled.
    from cam_jax.data.labels import imagenet_synsets

    synsets = imagenet_synsets()
    expected = [synsets.index(s) for s in ("n01751748", "n09193705", "n02105855", "n04263257", "n03125729")]
    assert sorted(batch.labels.tolist()) == sorted(expected)
    result = run_eval("--model", "vgg16", "--weights", weights, "--data-dir", data_dir, "--limit", 3,
                      "--batch-size", 2, "--out", tmp_path / "res")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    assert results["dataset"] == "imagenet2012" and results["n_images"] == 3
    assert results["rows"][0]["pointing_game"] is None  # no masks for ImageNet
    # The same path for a ResNet-50 (torchvision layout, random weights, narrow): --arch resnet50 with a .pth.
    torch = pytest.importorskip("torch")
    from cam_jax.models.resnet import BLOCKS
    from cam_jax.testing import torch_resnet

    pth = tmp_path / "resnet50-random.pth"
    torch.save(torch_resnet(BLOCKS["resnet50"][1], True, width=4, num_classes=1000).state_dict(), pth)
    result = run_eval("--arch", "resnet50", "--weights", pth, "--data-dir", data_dir, "--limit", 2,
                      "--batch-size", 2, "--out", tmp_path / "resnet")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "resnet" / "results.json").read_text())
    assert results["arch"] == "resnet50" and results["n_images"] == 2
    rows = {(r["model"], r["data"]): r for r in results["rows"]}
    assert rows[("T3", "clean")]["dy_inf_max"] <= 0.01 and rows[("T4", "clean")]["dy_inf_max"] == 0
    wrong = run_eval("--arch", "resnet18", "--weights", pth, "--data-dir", data_dir, "--out", tmp_path / "x")
    assert wrong.returncode == 2 and "holds resnet50 with 1000 classes, not ImageNet ResNet-18" in wrong.stderr
