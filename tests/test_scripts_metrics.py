"""scripts/metrics.py end to end, in this process, on a small saved model and generated shapes."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax import load_weights
from cam_jax.cams.methods import explainer
from cam_jax.data import images, shapes
from cam_jax.metrics.quality import assess
from cam_jax.testing import script, write_tiny_weights


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics")
    weights = write_tiny_weights(folder / "w.npz")
    batch = shapes.batch(1, range(3), size=64)
    np.save(folder / "X.npy", batch.pixels)
    np.save(folder / "S.npy", batch.masks)
    maps = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    np.save(folder / "M.npy", maps)
    return folder, weights, batch, maps


def run(argv, capsys):
    code = script("metrics").main([str(a) for a in argv] + ["--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_maps_from_any_library(files, capsys):
    folder, weights, batch, maps = files
    out = folder / "out.json"
    code, stdout, err = run(["--weights", weights, "--images", folder / "X.npy", "--maps", folder / "M.npy",
                             "--metric", "deletion", "sparseness", "--option", "steps=4", "--json", out], capsys)
    assert code == 0, err
    report = json.loads(out.read_text())
    model, _ = load_weights(weights)
    x = jnp.asarray(images.normalize(batch.pixels))
    curve = np.asarray(assess("deletion", model, x, maps, steps=4, key=jax.random.fold_in(jax.random.key(0), 0)))
    entry = report["metrics"]["deletion"]
    np.testing.assert_allclose(entry["curves"], curve, rtol=1e-5)
    area = (curve.sum(1) - (curve[:, 0] + curve[:, -1]) / 2) / (curve.shape[1] - 1)
    np.testing.assert_allclose(entry["per_image"], area, rtol=1e-5)
    assert entry["mean"] == pytest.approx(area.mean(), rel=1e-5) and entry["higher_is_better"] is False
    assert report["settings"]["options"]["deletion"] == {"steps": 4} and report["settings"]["n_images"] == 3
    assert len(report["metrics"]["sparseness"]["per_image"]) == 3 and "deletion" in stdout


def test_method_all_and_skips(files, capsys):
    folder, weights, batch, _ = files
    out = folder / "all.json"
    code, stdout, err = run(["--weights", weights, "--images", folder / "X.npy", "--method", "gradcam",
                             "--metric", "localisation", "random_logit", "--masks", folder / "S.npy", "--json", out],
                            capsys)
    assert code == 0, err
    report = json.loads(out.read_text())
    model, _ = load_weights(weights)
    maps = explainer("gradcam")(model, jnp.asarray(images.normalize(batch.pixels)), None)
    expected = assess("auc", None, jnp.zeros((3, 64, 64, 3)), maps, masks=batch.masks)
    np.testing.assert_allclose(report["metrics"]["auc"]["per_image"], np.asarray(expected), rtol=1e-5)
    assert set(report["metrics"]) >= {"pointing_game", "auc", "random_logit"} and report["skipped"] == {}
    code, stdout, err = run(["--weights", weights, "--images", folder / "X.npy", "--maps", folder / "M.npy",
                             "--metric", "robustness", "complexity"], capsys)
    assert code == 0 and "skipped max_sensitivity" in stdout


@pytest.mark.parametrize("change,message", [
    ({"--maps": "bad_maps.npy"}, "--maps must be"),
    ({"--images": "bad_images.npy"}, "uint8"),
    ({"--maps": "pickle.npy"}, "not a readable .npy"),
    ({"--metric": "pointing_game"}, "needs --masks"),
    ({"--metric": "max_sensitivity"}, "needs --method"),
    ({"--metric": "nope"}, "unknown metric"),
    ({"--option": "patch=7"}, "takes the options|taken by none"),
    ({"--option": "steps=0"}, "steps must be"),
])
def test_bad_input_exits_2(files, capsys, change, message):
    folder, weights, batch, maps = files
    np.save(folder / "bad_maps.npy", maps[:, :32])
    np.save(folder / "bad_images.npy", batch.pixels.astype(np.float32))
    with open(folder / "pickle.npy", "wb") as f:
        np.lib.format.write_array(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    args = {"--weights": weights, "--images": folder / "X.npy", "--maps": folder / "M.npy", "--metric": "deletion"}
    args.update({k: folder / v if k in ("--maps", "--images") else v for k, v in change.items()})
    code, _, err = run([a for k, v in args.items() for a in (k, v)], capsys)
    assert code == 2
    assert any(part in err for part in message.split("|")), err
