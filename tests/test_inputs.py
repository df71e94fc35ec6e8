"""Bad or unusual inputs are refused with a clear message or read correctly, never silently wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from cam_jax.data import images
from cam_jax.testing import script


def expected(value: int) -> np.ndarray:
    """The model input of a (224, 224) image whose every pixel is grey `value`."""
    return images.normalize(np.full((224, 224, 3), value, np.uint8))


def test_a_thin_image_is_resampled_only_where_it_is_cropped(tmp_path):
    """1 x 20000 pixels (60 KB): before, the shorter side went to 256 first, a 256 x 5,120,000 image
    (3.9 GB). The crop's source region is 0.875 pixels wide around x = 10,000, inside a run of 100s."""
    row = ((np.arange(20000) + 50) // 100).astype(np.uint8)[None, :].repeat(3, 0).T[None]  # (1, 20000, 3)
    path = tmp_path / "thin.png"
    Image.fromarray(row).save(path)
    np.testing.assert_array_equal(images.load(path), expected(100))


@given(st.integers(0, 65535))
def test_16_bit_grey_is_scaled_not_clipped(value):
    image = Image.fromarray(np.full((240, 240), value, np.uint16))
    assert image.mode.startswith("I;16")
    np.testing.assert_array_equal(np.asarray(images.resize_crop(image)), np.full((224, 224, 3), round(value / 257)))


def test_float_images_in_unit_range_are_scaled_others_refused(tmp_path):
    path = tmp_path / "half.tiff"
    Image.fromarray(np.full((240, 240), 0.5, np.float32)).save(path)
    np.testing.assert_array_equal(images.load(path), expected(128))
    Image.fromarray(np.full((240, 240), 3.0, np.float32)).save(path)
    with pytest.raises(ValueError, match="finite values in"):
        images.load(path)


def test_decompression_bombs_and_non_images_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300 // 3)  # a 90,000-pixel "bomb" at this limit
    with pytest.raises(ValueError, match="decompression bomb"):
        images.load(path)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        images.load(text)


def test_out_is_checked_before_any_work(tmp_path, capsys):
    eval_script = script("eval")
    a_file = tmp_path / "results.txt"
    a_file.write_text("x")
    assert eval_script.main(["--out", str(a_file)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("x")
    assert eval_script.main(["--out", str(foreign)]) == 2
    assert "not results of an evaluation" in capsys.readouterr().err
    assert (foreign / "chapter1.tex").read_text() == "x"


def test_sigterm_while_writing_keeps_the_previous_results_and_no_staging(tmp_path, monkeypatch, capsys):
    """The results folder holds the old results or the new ones, never a mix, and a SIGTERM midway
    leaves no hidden staging folder; a complete run replaces the old results and says so."""
    import os
    import signal

    from cam_jax.evaluation import outputs

    eval_script = script("eval")
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.json").write_text("old")
    (out / "report.md").write_text("old")
    real_figures = outputs.paper_figures

    def killed(*args):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(outputs, "paper_figures", killed)
    from cam_jax.testing import write_tiny_weights

    weights = write_tiny_weights(tmp_path / "tiny.npz")
    argv = ["--weights", weights, "--limit", "2", "--batch-size", "2", "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit):
        eval_script.main(argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "tiny.npz"]  # no .eval-* staging left
    assert (out / "results.json").read_text() == "old" and (out / "report.md").read_text() == "old"
    monkeypatch.setattr(outputs, "paper_figures", real_figures)
    assert eval_script.main(argv) == 0
    assert "replacing the previous results" in capsys.readouterr().out
    assert (out / "results.json").read_text() != "old" and (out / "figure1.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "tiny.npz"]


def test_titles_with_dollar_signs_are_drawn_as_text(tmp_path):
    """A file stem such as "cost_$5_{x$" is broken mathtext; the figure still draws it literally."""
    from cam_jax.evaluation import figures

    pixels = np.zeros((32, 32, 3), np.uint8)
    figures.grid(tmp_path / "f.png", [[(pixels, np.ones((2, 2)), "cost_$5_{x$")]], suptitle="$\\frac{$")
    assert (tmp_path / "f.png").stat().st_size > 0


@pytest.fixture(scope="module")
def tiny():
    from cam_jax.models import build_model
    from cam_jax.testing import model_and_images

    return model_and_images((build_model("vgg11", num_classes=3, input_size=64, width=1 / 16), 0))[0]


bad_numbers = st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, -1.0, -1e-3])


@given(value=bad_numbers, which=st.sampled_from(["eps", "c_G", "c_F", "tolerance"]))
def test_t3_t4_refuse_constants_that_are_not_finite_and_positive(tiny, value, which):
    from cam_jax import manipulations as manipulate

    with pytest.raises(ValueError, match=f"{which} must be") as err:
        manipulate.sticker_backdoor(tiny, sticker=stickers_7(), **{which: value})
    assert "overflow" not in str(err.value)  # a NaN is not reported as an overflow
    if which != "tolerance":
        with pytest.raises(ValueError, match=f"{which} must be"):
            manipulate.semi_random(tiny, **{which: value})


def stickers_7():
    from cam_jax.data import stickers

    return stickers.smiley(7)


@given(value=bad_numbers, which=st.sampled_from(["c_A", "c_W"]))
def test_paper_t1_t2_refuse_constants_that_are_not_finite_and_positive(tiny, value, which):
    from cam_jax import manipulations as manipulate

    with pytest.raises(ValueError, match=f"{which} must be"):
        manipulate.constant_flat(tiny, **{which: value})
    if which == "c_W":
        with pytest.raises(ValueError, match="c_W must be"):
            manipulate.constant_image(tiny, c_W=value)


def test_constants_whose_rounding_would_wreck_the_scores_are_refused():
    """c_A = c_W = 1000 on VGG-16 at 224: a bias shift of 4.9e7, where float32's spacing is 4 (the
    paper's 490,000 has 0.0625); the paper's T2 on bfloat16 parameters: its shift rounds by hundreds."""
    import jax
    import jax.numpy as jnp

    from cam_jax import manipulations as manipulate
    from cam_jax.model import Model
    from cam_jax.models import build_model, init_params

    module = build_model("vgg16", num_classes=3, input_size=224, width=1 / 16)
    model = Model(module, init_params(module, 0))
    with pytest.raises(ValueError, match="spacing 4"):
        manipulate.constant_flat(model, c_A=1000, c_W=1000)
    manipulate.constant_flat(model)  # the paper's constants pass
    half = Model(module, jax.tree.map(lambda p: p.astype(jnp.bfloat16), model.params))
    with pytest.raises(ValueError, match="bfloat16 with spacing"):
        manipulate.constant_image(half)


def test_a_write_that_fails_midway_leaves_the_previous_file_and_no_staging(tmp_path):
    """explain.py's, finetune_attack.py's and checkpoint.save's files go through atomic_path."""
    from cam_jax.atomic import atomic_path

    target = tmp_path / "cam.npy"
    np.save(target, np.ones(3))
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as staging:
        with open(staging, "wb") as f:
            f.write(b"half an arr")
        raise RuntimeError("disk full")
    np.testing.assert_array_equal(np.load(target), np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.npy"]
