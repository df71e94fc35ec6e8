"""The evaluation: fused equals unfused, the trunk is shared, sharding, eval.py end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax import Model, explain_many, init_params, load_weights
from cam_jax.cams.maps import NORMALIZATIONS
from cam_jax.data import imagenet, images, shapes, stickers
from cam_jax.evaluation import step as evaluate
from cam_jax.evaluation import suite
from cam_jax.evaluation.config import MATRIX_METHODS, PAPER
from cam_jax.metrics import METRICS
from cam_jax.models import build_model
from cam_jax.testing import script, write_fake_val_tar, write_tiny_weights

SIZE = 64  # small models: eval.py pastes 7-pixel smileys below 224 pixels


@pytest.fixture(scope="module")
def small():
    module = build_model("vgg16", num_classes=len(shapes.CLASSES), input_size=SIZE, width=1 / 16)
    model = Model(module, init_params(module, seed=0))
    b = shapes.batch(shapes.TEST_SEED, range(4), SIZE)
    settings = PAPER.replace(sticker_size=7)
    pasted = stickers.paste_by_index(b.pixels, np.arange(4), 0, suite.sticker(settings, SIZE))[0]
    args = (model, jnp.asarray(images.normalize(b.pixels)), jnp.asarray(images.normalize(pasted)),
            jnp.asarray(b.labels), jnp.asarray(b.masks))
    return settings, args


# One target of each kind the step treats differently (contrast_mean and log_softmax are logit and
# softmax as far as the step goes); three of five keep the compile time of the unfused models down.
TARGETS_ORDER = ("logit", "softmax", "contrast")
MATRIX = PAPER.replace(sticker_size=7, methods=MATRIX_METHODS, targets=TARGETS_ORDER, normalizations=NORMALIZATIONS)
MATRIX_SUITE = suite.PAPER_SUITE + suite.EXACT_ENTRIES
# Sums over channels (`weightings.apply` weighs the original's block of channels by the original's own
# expression): bit for bit; the principal components agree to float rounding.
WEIGHTED = [MATRIX.methods.index(m) for m in ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam",
                                              "ablationcam")]


def test_fused_step_equals_models_run_one_by_one(small):
    """Every cell: 8 methods x 3 targets x 2 normalisations x 9 (model, data) rows."""
    settings, args = small
    fused = evaluate.fused_step(MATRIX, MATRIX_SUITE)(*args)[0]
    unfused = evaluate.unfused_step(MATRIX, MATRIX_SUITE)(*args)[0]
    assert set(suite.rows(MATRIX_SUITE)) <= set(fused)
    for row in suite.rows(MATRIX_SUITE):
        # T1/T2 make maps flat up to float rounding (the injected constant dominates; the paper's edits
        # add and take away c_A c_W N_Z = 490,000), which min-max normalisation blows up to the whole
        # range: any other compiled program gives another pattern. Their max-normalised figures
        # compare, but not the pointing game, whose peak on a flat map the rounding moves.
        flat = row[0] in ("T1", "T2", "T1-exact", "T2-exact")
        cells = np.s_[:, :, :1] if flat else np.s_[:]
        # Under softmax and log-softmax a branch that shifts every logit alike cancels in exact
        # arithmetic (sum_c dS/dy_c = 0), but the float32 residual (~1e-9) times dG/dA^{K+1} and
        # A^{K+1} (T3: 100 and 1e7) is what those maps show: rounding, different in every program.
        noise = [TARGETS_ORDER.index("softmax")] if row[0] != "original" else []
        for name in METRICS:
            if flat and name == "pointing":
                continue
            assert fused[row][name].shape == (8, 3, 2, 4)
            keep = [t for t in range(len(TARGETS_ORDER)) if t not in noise]
            np.testing.assert_allclose(np.asarray(fused[row][name])[cells][:, keep],
                                       np.asarray(unfused[row][name])[cells][:, keep],
                                       rtol=1e-5, atol=1e-5, err_msg=f"{row} {name}")
    # T4 on clean images is the original: its scores and its channel-weighted maps bit for bit, in the
    # fused step (sharing the original's computation) as in the models run one by one.
    for out in (fused, unfused):
        t4 = {name: np.asarray(v) for name, v in out[("T4", "clean")].items()}
        assert (t4["dy_inf"] == 0).all()
        assert (t4["l1"][WEIGHTED] == 0).all() and (t4["l1_original"][WEIGHTED] == 0).all()
        assert t4["l1_original"].max() <= 1e-4
    # The paper's cell of the matrix is the paper's evaluation.
    paper = evaluate.fused_step(settings)(*args)[0]
    cell = MATRIX.index("gradcam", "logit", "max")
    for row in suite.ROWS:
        for name in METRICS:
            np.testing.assert_allclose(np.asarray(fused[row][name][cell]), np.asarray(paper[row][name][0, 0, 0]),
                                       rtol=1e-5, atol=1e-6, err_msg=f"{row} {name}")


def test_fused_step_computes_each_trunk_once(small):
    """13 convs per trunk: sharing leaves 2 trunks (clean, sticker) + T1/T2's 513-filter conv5_3
    + T3's 2 convs + T4's detector twice = 32 at most; unshared it would be 7 * 13 + 6 = 97."""
    settings, args = small
    hlo = evaluate.fused_step(settings).lower(*args).compile().as_text()
    convolutions = len(re.findall(r"\bconvolution\(", hlo))
    assert 26 <= convolutions <= 32, convolutions


def tiny_weights(tmp_path, num_classes=len(shapes.CLASSES), size=SIZE):
    return write_tiny_weights(tmp_path / "tiny.npz", num_classes, size)


def run_eval(*args, env=None):
    return subprocess.run([sys.executable, "scripts/eval.py", "--no-progress", *map(str, args)],
                          capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """One eval.py run (in this process) on the tiny weights that several tests read: 6 images in batches
    of 4, --exact (the paper's T1/T2 score changes are float rounding, which another program, a sharded
    one included, reorders) and two methods beside GradCAM."""
    folder = tmp_path_factory.mktemp("eval")
    weights, out = tiny_weights(folder), folder / "results"
    assert script("eval").main(["--no-progress", "--weights", str(weights), "--exact", "--limit", "6",
                                "--batch-size", "4", "--methods", "gradcam++", "eigencam", "--metrics", "sparseness",
                                "--out", str(out)]) == 0
    return weights, out


def test_eval_writes_all_outputs(evaluated):
    _, out = evaluated
    assert sorted(os.listdir(out)) == ["figure1.png", "figure3.png", "figure_methods.png", "matrix.json", "matrix.md",
                                       "matrix.png", "report.md", "results.json"]
    assert "Table 2" in (out / "report.md").read_text()
    assert "### target contrast, minmax normalisation" in (out / "matrix.md").read_text()


def test_eval_results_hold_every_row(evaluated):
    _, out = evaluated
    results = json.loads((out / "results.json").read_text())
    assert results["n_images"] == 6 and results["dataset"] == "shapes"
    rows = {(r["model"], r["data"]): r for r in results["rows"]}
    assert set(rows) == set(suite.ROWS) | {("T1-exact", "clean"), ("T2-exact", "clean")}
    assert set(rows[("T1", "clean")]) >= {"model", "data", "accuracy", "dy_inf_mean", "dy_inf_max", "l1_mean",
                                          "pointing_game", "mass_in_mask"}
    assert rows[("original", "clean")]["dy_inf_mean"] is None
    assert rows[("T4", "clean")]["dy_inf_max"] == 0 and rows[("T4", "clean")]["l1_mean"] == 0


def test_eval_matrix_holds_every_cell(evaluated):
    weights, out = evaluated
    cells = json.loads((out / "matrix.json").read_text())["cells"]
    assert len(cells) == 9 * 3 * 5 * 2  # (model, data) rows x gradcam (always) and the two asked x targets x norms
    assert set(cells[0]) == {"model", "data", "method", "target", "normalization", "l1_to_target", "l1_to_original",
                             "mass_in_mask", "pointing_game", "dy_inf_max", "sparseness"}
    assert {c["method"] for c in cells} == {"gradcam", "gradcam++", "eigencam"}
    by = {(c["model"], c["data"], c["method"], c["target"], c["normalization"]): c for c in cells}
    assert by[("original", "clean", "gradcam", "logit", "max")]["l1_to_original"] is None
    assert by[("T4", "clean", "gradcam", "softmax", "minmax")]["l1_to_original"] == 0
    assert by[("T4", "clean", "gradcam", "logit", "max")]["dy_inf_max"] == 0
    # The quality column: the Gini index of each upsampled map, restated in numpy, averaged over the images.
    model, _ = load_weights(weights)
    x = images.normalize(shapes.batch(shapes.TEST_SEED, range(6), size=model.input_size).pixels)
    cam = np.asarray(explain_many(model, x, ["gradcam++"], target="softmax")["gradcam++"].cam)
    up = np.asarray(jax.image.resize(cam, (6, model.input_size, model.input_size), "bilinear"))
    a = np.sort(up.reshape(6, -1) + 1e-7, axis=1)
    n = a.shape[1]
    gini = ((2 * np.arange(1, n + 1) - n - 1) * a).sum(1) / (n * a.sum(1))
    assert by[("original", "clean", "gradcam++", "softmax", "minmax")]["sparseness"] == pytest.approx(gini.mean(),
                                                                                                      rel=1e-4)
    assert "### sparseness (complexity; higher is better), target logit" in (out / "matrix.md").read_text()


def test_sharded_run_gives_the_same_table(evaluated, tmp_path):
    """eval.py's end-to-end run, in a process of its own: four host devices."""
    weights, single = evaluated
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    sharded = run_eval("--weights", weights, "--exact", "--limit", 6, "--batch-size", 8, "--out", tmp_path / "four",
                       env=env)
    assert sharded.returncode == 0, sharded.stderr
    assert sorted(os.listdir(tmp_path / "four")) == ["figure1.png", "figure3.png", "report.md", "results.json"]
    four = json.loads((tmp_path / "four" / "results.json").read_text())
    assert four["device"].startswith("4 x")
    # The single run has --methods, which adds the exact T1/T2 rows; the rows both have must agree.
    one = {(r["model"], r["data"]): r for r in json.loads((single / "results.json").read_text())["rows"]}
    assert len(four["rows"]) == len(suite.ROWS)
    for b in four["rows"]:
        a = one[(b["model"], b["data"])]
        if a["model"] == "T4" and a["data"] == "sticker":
            # Its map's peak is a tie between an image's stickers (equal in F, and far above the
            # original's own map), which each program's rounding breaks its own way.
            a, b = ({k: v for k, v in row.items() if k != "pointing_game"} for row in (a, b))
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (a["model"], key)
            else:
                assert b[key] == value


@pytest.mark.parametrize(
    "args, message",
    [
        (["--weights", "absent.npz"], "no weight file"),
        (["--limit", "0"], "limit must be a positive integer"),
        (["--model", "vgg16"], "needs weights"),
        (["--model", "vgg16", "--weights", "TINY", "--data-dir", "."], "not ImageNet VGG-16"),
        (["--weights", "TINY", "--data", "imagenet2012"], "needs data_dir"),
    ],
)
def test_bad_arguments_fail_cleanly(tmp_path, args, message, capsys):
    weights = tiny_weights(tmp_path)
    out = tmp_path / "out"
    code, err = eval_here([weights if a == "TINY" else a for a in args] + ["--out", out], capsys)
    assert code == 2 and message in err
    assert not out.exists()


def test_a_failed_imagenet_preparation_leaves_nothing(tmp_path, monkeypatch):
    """tfds fails midway (here: after writing a file, as a bad tar makes it): the error names the tar
    and data_dir holds nothing but the tar, so the next run starts clean."""
    tfds = pytest.importorskip("tensorflow_datasets")

    class Failing:
        def __init__(self, name, data_dir, **kwargs):
            self.data_dir = data_dir

        def is_prepared(self):
            return False

        def download_and_prepare(self, **kwargs):
            os.makedirs(os.path.join(self.data_dir, "imagenet2012", "partial"))
            raise RuntimeError("truncated tar")

    monkeypatch.setattr(tfds, "builder", Failing)
    (tmp_path / imagenet.VAL_TAR).write_bytes(b"not a tar")
    with pytest.raises(ValueError, match="could not prepare imagenet2012 from .*truncated tar"):
        imagenet.prepare_imagenet(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [imagenet.VAL_TAR]


def eval_here(argv, capsys):
    """scripts/eval.py in this process: (exit code, stderr)."""
    code = script("eval").main([*map(str, argv), "--no-progress"])
    return code, capsys.readouterr().err


def test_imagenet_from_a_tiny_val_tar(tmp_path, capsys):
    """The real tfds path: a tar laid out like ILSVRC2012_img_val.tar, prepared and read."""
    pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("tensorflow")
    data_dir = tmp_path / "imagenet"
    data_dir.mkdir()
    weights = tiny_weights(tmp_path, num_classes=1000, size=SIZE)
    code, err = eval_here(["--model", "vgg16", "--weights", weights, "--data-dir", data_dir, "--out", tmp_path / "x"],
                          capsys)
    assert code == 2 and "ILSVRC2012_img_val.tar" in err
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
    code, err = eval_here(["--model", "vgg16", "--weights", weights, "--data-dir", data_dir, "--limit", 3,
                           "--batch-size", 2, "--out", tmp_path / "res"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    assert results["dataset"] == "imagenet2012" and results["n_images"] == 3
    assert results["rows"][0]["pointing_game"] is None  # no masks for ImageNet
    # The same path for a ResNet-50 (torchvision layout, random weights, narrow): --arch resnet50 with a .pth.
    torch = pytest.importorskip("torch")
    from cam_jax.models.resnet import BLOCKS
    from cam_jax.testing import torch_resnet

    pth = tmp_path / "resnet50-random.pth"
    torch.save(torch_resnet(BLOCKS["resnet50"][1], True, width=4, num_classes=1000).state_dict(), pth)
    code, err = eval_here(["--arch", "resnet50", "--weights", pth, "--data-dir", data_dir, "--limit", 2,
                           "--batch-size", 2, "--out", tmp_path / "resnet"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "resnet" / "results.json").read_text())
    assert results["arch"] == "resnet50" and results["n_images"] == 2
    rows = {(r["model"], r["data"]): r for r in results["rows"]}
    assert rows[("T3", "clean")]["dy_inf_max"] <= 0.01 and rows[("T4", "clean")]["dy_inf_max"] == 0
    code, err = eval_here(["--arch", "resnet18", "--weights", pth, "--data-dir", data_dir, "--out", tmp_path / "x"],
                          capsys)
    assert code == 2 and "holds resnet50 with 1000 classes, not ImageNet ResNet-18" in err
    # A ViT-B/16 (narrow, random) as a cam_jax file: the paper's T1/T2 are refused (no conv to edit), the exact
    # ones run, and keep every logit bit for bit.
    from cam_jax.convert import checkpoint
    from cam_jax.testing import random_model

    vit = random_model("vit_b_16", 0, num_classes=1000, width=1 / 12, layers=12)
    checkpoint.save(tmp_path / "vit.npz", vit)
    argv = ["--arch", "vit_b_16", "--weights", tmp_path / "vit.npz", "--data-dir", data_dir, "--limit", 2,
            "--batch-size", 2]
    code, err = eval_here([*argv, "--out", tmp_path / "v0"], capsys)
    assert code == 2 and "exact=True (--exact)" in err
    code, err = eval_here([*argv, "--exact", "--out", tmp_path / "vit"], capsys)
    assert code == 0, err
    rows = {(r["model"], r["data"]): r for r in json.loads((tmp_path / "vit" / "results.json").read_text())["rows"]}
    assert rows[("T1", "clean")]["dy_inf_max"] == 0 and rows[("T3", "clean")]["dy_inf_max"] <= 0.01
