"""Bad input, drawn rather than picked: every class of the third reliability round gets a clear
ValueError (exit 2 from a command line) naming what is wrong, before any long work, and no hang.

Each property runs on models built once per module (constants and seeds are drawn, shapes are not).
"""

from __future__ import annotations

import json
import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from cam_jax import Model, audit_model, build_model, cut, explain, init_params
from cam_jax.cams.maps import upsample
from cam_jax.convert import checkpoint, resnet
from cam_jax.data import images, shapes
from cam_jax.models import registry
from cam_jax.testing import random_model, script

SMALL = random_model("vgg11", num_classes=3, input_size=32, width=1 / 16)
X = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
not_finite = st.sampled_from([math.nan, math.inf, -math.inf])


@pytest.fixture(scope="module")
def header_file(tmp_path_factory):
    """A valid checkpoint's arrays and header, to write with a header changed."""
    path = tmp_path_factory.mktemp("header") / "ok.npz"
    checkpoint.save(path, SMALL, arch="vgg11")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(str(arrays.pop(checkpoint.META_KEY)))


def write(path, arrays, header) -> str:
    np.savez(path, **arrays, **{checkpoint.META_KEY: np.array(json.dumps(header))})
    return str(path)


BAD_FIELDS = {
    "input_size": [0, -32, 33, True, "224", 2**20, 8192, None],
    "num_classes": [0, -3, 2.5, "3", None],
    "hidden": [0, -1, 1.5, [64], None],
    "stages": [[], [[]], "abc", [[4, 0]], [[4] * 300], None, 5],
    "cam_pre_relu": ["yes", 1, None],
    "dropout_rate": ["x", 1.0, -0.1, None],
    "batch_norm": ["no", None],
}


@given(field=st.sampled_from(sorted(BAD_FIELDS)), data=st.data())
def test_a_bad_header_field_is_named(header_file, tmp_path_factory, field, data):
    arrays, header = header_file
    value = data.draw(st.sampled_from(BAD_FIELDS[field]))
    changed = {**header, "config": {**header["config"], field: value}}
    path = write(tmp_path_factory.mktemp("bad") / "w.npz", arrays, changed)
    with pytest.raises(ValueError, match=field):
        checkpoint.load(path)


@given(missing=st.sampled_from(["family", "config"]))
def test_a_header_without_family_or_config_is_named(header_file, tmp_path_factory, missing):
    arrays, header = header_file
    path = write(tmp_path_factory.mktemp("bad") / "w.npz", arrays, {k: v for k, v in header.items() if k != missing})
    with pytest.raises(ValueError, match=missing):
        checkpoint.load(path)


@given(missing=st.sampled_from(["stages", "hidden", "num_classes", "input_size"]))
def test_a_legacy_header_without_a_field_is_named(header_file, tmp_path_factory, missing):
    arrays, header = header_file
    legacy = {"format": checkpoint.LEGACY_VGG, **{k: v for k, v in header["config"].items()
                                                   if k in ("stages", "hidden", "num_classes", "input_size")}}
    del legacy[missing]
    path = write(tmp_path_factory.mktemp("bad") / "w.npz", arrays, legacy)
    with pytest.raises(ValueError, match=missing):
        checkpoint.load(path)


def test_a_header_asking_for_20000_blocks_is_refused_at_once():
    with pytest.raises(ValueError, match=r"blocks\[0\] must be an integer in \[1, 64\]"):
        registry.from_config("resnet", {"blocks": [20000, 1, 1, 1]})


@given(arch=st.sampled_from(["vgg16", "resnet18"]),
       bad=st.sampled_from([("num_classes", 0), ("num_classes", -3), ("num_classes", 2.5), ("input_size", 0),
                            ("input_size", -32), ("input_size", 40)]))
def test_build_model_refuses_bad_sizes(arch, bad):
    with pytest.raises(ValueError, match=bad[0]):
        build_model(arch, **{bad[0]: bad[1]})


@given(sigma=st.one_of(not_finite, st.floats(-10, -0.01)))
def test_smoothgrad_refuses_a_noise_level_that_would_give_zero_or_nan_maps(sigma):
    with pytest.raises(ValueError, match="sigma must be a finite number"):
        explain(SMALL, X, "smoothgrad", sigma=sigma)


@given(option=st.sampled_from(["samples", "steps", "batch_images"]), value=st.integers(-5, 0))
def test_sample_counts_must_be_positive(option, value):
    method = "integrated_gradients" if option == "steps" else "smoothgrad"
    with pytest.raises(ValueError, match=f"{option} must be an integer"):
        explain(SMALL, X, method, **{option: value})


@given(value=not_finite, where=st.integers(0, 2 * 32 * 32 * 3 - 1))
def test_integrated_gradients_refuses_a_baseline_that_is_not_finite(value, where):
    baseline = np.zeros((2, 32, 32, 3), np.float32)
    baseline.reshape(-1)[where] = value
    with pytest.raises(ValueError, match="baseline holds NaN or inf"):
        explain(SMALL, X, "integrated_gradients", baseline=baseline)


@given(size=st.one_of(st.integers(-10, 0), st.just(2.5), st.just(True)))
def test_upsample_refuses_a_size_that_is_not_positive(size):
    with pytest.raises(ValueError, match="size must be a positive integer"):
        upsample(jnp.ones((1, 2, 2)), size)


@given(bad=st.sampled_from([("input_size", -4), ("input_size", 0), ("input_size", 2.0), ("layer", None),
                            ("layer", ""), ("layer", 3)]))
def test_cut_refuses_a_bad_layer_or_size(bad):
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2, name="out")(nn.relu(nn.Conv(4, (3, 3), name="body")(x)).mean(axis=(1, 2)))

    variables = Net().init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    kwargs = {"layer": "body", "input_size": 8, bad[0]: bad[1]}
    with pytest.raises(ValueError, match=bad[0]):
        cut(Net(), variables, kwargs.pop("layer"), **kwargs)


def test_explain_takes_classes_inside_a_callers_jit():
    classes = jnp.array([2, 0])
    inside = jax.jit(lambda x, c: explain(SMALL, x, classes=c).cam)(X, classes)
    # Another program than the one explain compiles on its own: the same maps up to float rounding.
    np.testing.assert_allclose(np.asarray(inside), np.asarray(explain(SMALL, X, classes=classes).cam), rtol=1e-5)


@pytest.fixture(scope="module")
def resnet_state():
    module = build_model("resnet18", num_classes=3, input_size=32, width=1 / 16)
    params = init_params(module)
    state = {}
    for conv, norm in module.norm_pairs():
        node = params
        for p in conv:
            node = node[p]
        w = np.asarray(node["kernel"]).transpose(3, 2, 0, 1)
        state[f"{resnet.torch_prefix(conv)}.weight"] = w
        for leaf in resnet.BN_LEAVES:
            state[f"{resnet.torch_prefix(norm)}.{leaf}"] = np.ones(w.shape[0], np.float32)
    state["fc.weight"] = np.asarray(params["fc"]["kernel"]).T
    state["fc.bias"] = np.asarray(params["fc"]["bias"])
    resnet.from_state_dict(state)  # the unchanged state converts
    return state


@given(leaf=st.sampled_from(["weight", "bias", "running_mean", "running_var"]), extra=st.integers(1, 3))
def test_a_batch_norm_of_the_wrong_length_is_named(resnet_state, leaf, extra):
    key = f"layer2.0.bn1.{leaf}"
    state = {**resnet_state, key: np.ones(resnet_state[key].shape[0] + extra, np.float32)}
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        resnet.from_state_dict(state)


def test_an_fc_of_no_classes_is_named(resnet_state):
    state = {**resnet_state, "fc.weight": resnet_state["fc.weight"][:0], "fc.bias": resnet_state["fc.bias"][:0]}
    with pytest.raises(ValueError, match="fc.weight.*num_classes must be"):
        resnet.from_state_dict(state)


@pytest.fixture(scope="module")
def default():
    from cam_jax import default_weights, load_weights

    return load_weights(default_weights())[0]


@given(count=st.integers(2, 8), index=st.integers(0, 99), level=st.integers(0, 255))
def test_the_audit_refuses_images_that_are_all_alike(default, count, index, level):
    """Copies of one image, or one flat colour: every channel of A would look constant to the checks."""
    copies = np.repeat(shapes.batch(shapes.TEST_SEED, [index]).pixels, count, axis=0)
    flat = np.full((count, 224, 224, 3), level, np.uint8)
    for pixels in (copies, flat):
        with pytest.raises(ValueError, match="nearly\\) the same"):
            audit_model(default, jnp.asarray(images.normalize(pixels)))


def test_convert_weights_never_writes_over_its_source(tmp_path):
    path = tmp_path / "w.npz"
    checkpoint.save(path, SMALL, arch="vgg11")
    before = path.read_bytes()
    assert script("convert_weights").main([str(path), "--out", str(path)]) == 2
    assert path.read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--out", "DIR.npz"], "is a folder"),
    (["--lr", "1e30"], "--lr must be"),
    (["--seed", str(2**70)], "--seed must be"),
])
def test_finetune_attack_refuses_before_training(tmp_path, args, message, capsys):
    (tmp_path / "DIR.npz").mkdir()
    argv = ["--loss", "location", "--out", str(tmp_path / "a.npz"), "--steps", "1", "--no-progress"]
    argv += [str(tmp_path / a) if a == "DIR.npz" else a for a in args]
    assert script("finetune_attack").main(argv) == 2
    assert message in capsys.readouterr().err


def test_audit_count_is_capped(capsys):
    assert script("audit").main(["--weights", "unused.npz", "--data", "shapes", "--count", "100000"]) == 2
    assert "--count must be" in capsys.readouterr().err


def test_a_model_from_a_valid_header_still_loads(header_file, tmp_path):
    arrays, header = header_file
    model, _ = checkpoint.load(write(tmp_path / "w.npz", arrays, header))
    assert isinstance(model, Model) and model.num_classes == 3


def test_explain_never_writes_over_an_input(tmp_path, capsys):
    """Two inputs where one's output would be the other's file: refused before the weights are read."""
    from PIL import Image

    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.png", "a_gradcam.png"):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(out / name)
    code = script("explain").main([str(out / "a.png"), str(out / "a_gradcam.png"), "--weights", "unused.npz",
                                   "--out", str(out)])
    assert code == 2 and "would be written over" in capsys.readouterr().err
