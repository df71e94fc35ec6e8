"""Weight conversion against torch on the same weights, and loud errors for bad files."""

from __future__ import annotations

import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax import Model, convert, gradcam
from cam_jax.convert import checkpoint
from cam_jax.models import build_model, init_params
from cam_jax.models.vgg import STAGES
from cam_jax.testing import assert_trees_all_close, make_torch_vgg, torch_gradcam

torch = pytest.importorskip("torch")

SMALL = dict(stages=tuple(tuple(w // 16 for w in s) for s in STAGES["vgg16"]), hidden=64, num_classes=10)


def small_torch_file(tmp_path, input_size=64, seed=0, stages=SMALL["stages"]):
    net = make_torch_vgg(stages, SMALL["hidden"], SMALL["num_classes"], input_size, seed)
    path = tmp_path / "vgg.pth"
    torch.save(net.state_dict(), path)
    return net, path


def random_nchw(batch, size, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 3, size, size)).astype(np.float32)


def compare_with_torch(net, model, x_nchw, logit_atol, cam_rtol):
    ref_logits, ref_classes, ref_cam = torch_gradcam(net, torch.from_numpy(x_nchw))
    expl = gradcam(model, x_nchw.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(np.asarray(expl.logits), ref_logits, atol=logit_atol)
    np.testing.assert_array_equal(np.asarray(expl.classes), ref_classes)
    scale = np.abs(ref_cam).max()
    np.testing.assert_allclose(np.asarray(expl.cam), ref_cam, atol=cam_rtol * scale)


def test_torchvision_small_matches_torch_logits_and_gradcam(tmp_path):
    net, path = small_torch_file(tmp_path)
    model, meta = convert.load_torchvision(path)
    assert meta["arch"] == "vgg16" and meta["preprocess"] == "torchvision"
    assert model.module.input_size == 64 and model.cam_size == 4
    x = random_nchw(4, 64)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(ref).max() > 0.05  # the comparison below is not of zeros
    compare_with_torch(net, model, x, logit_atol=1e-4, cam_rtol=1e-4)


@pytest.mark.slow
def test_full_vgg16_matches_torch(tmp_path):
    """torchvision's exact VGG-16 shapes: 138,357,544 parameters, 14x14x512 A, NCHW flatten."""
    net = make_torch_vgg(STAGES["vgg16"], 4096, 1000, 224)
    assert sum(p.numel() for p in net.parameters()) == 138_357_544
    path = tmp_path / "vgg16-random.pth"
    torch.save(net.state_dict(), path)
    model, _ = convert.load_torchvision(path, arch="vgg16")
    x = random_nchw(2, 224, seed=1) * 3
    assert model.features(x.transpose(0, 2, 3, 1)).shape == (2, 14, 14, 512)
    compare_with_torch(net, model, x, logit_atol=1e-3, cam_rtol=1e-3)


def write_keras_vgg(path, rng, tamper=None) -> tuple[list, list]:
    """A small Keras-layout VGG h5 at `path`; returns (stages, [(kernel, bias)] per layer).
    `tamper(f, layer name, group)` may rewrite fc1's group before the file is closed."""
    h5py = pytest.importorskip("h5py")
    stages, hidden, classes, side = SMALL["stages"], 32, 7, 2
    layers, cin = [], 3
    with h5py.File(path, "w") as f:
        names = []
        for s, stage in enumerate(stages):
            for i, w in enumerate(stage):
                names.append((f"block{s + 1}_conv{i + 1}", rng.normal(0, 0.3, (3, 3, cin, w)), w))
                cin = w
        n_in = side * side * cin
        for name, (a, b) in (("fc1", (n_in, hidden)), ("fc2", (hidden, hidden)), ("predictions", (hidden, classes))):
            names.append((name, rng.normal(0, 0.3, (a, b)), b))
        f.attrs["layer_names"] = [n.encode() for n, _, _ in names]
        for name, kernel, width in names:
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            g.create_dataset(f"{name}/kernel:0", data=kernel.astype(np.float32))
            g.create_dataset(f"{name}/bias:0", data=rng.uniform(-0.1, 0.1, width).astype(np.float32))
            layers.append((kernel.astype(np.float32), np.asarray(g[f"{name}/bias:0"])))
            if tamper is not None and name == "fc1":
                tamper(f, name, g)
    return stages, layers


def test_keras_h5_matches_torch_reference(tmp_path):
    """A Keras-layout h5 (HWIO kernels, NHWC flatten) against a torch forward of the same weights."""
    rng = np.random.default_rng(3)
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    stages, layers = write_keras_vgg(path, rng)
    model, meta = convert.load_keras(path)
    assert meta["preprocess"] == "caffe"

    x = rng.normal(size=(3, 64, 64, 3)).astype(np.float32)
    h = torch.from_numpy(x).permute(0, 3, 1, 2)
    convs, fcs = layers[:-3], layers[-3:]
    k = 0
    for stage in stages:
        for _ in stage:
            w, b = convs[k]
            kernel = torch.from_numpy(w).permute(3, 2, 0, 1)
            h = torch.relu(torch.nn.functional.conv2d(h, kernel, torch.from_numpy(b), padding=1))
            k += 1
        h = torch.nn.functional.max_pool2d(h, 2)
    h = h.permute(0, 2, 3, 1).flatten(1)  # Keras flattens channels-last
    for j, (w, b) in enumerate(fcs):
        h = h @ torch.from_numpy(w) + torch.from_numpy(b)
        h = torch.relu(h) if j < 2 else h
    np.testing.assert_allclose(np.asarray(model(x)), h.numpy(), atol=1e-4 * np.abs(h.numpy()).max())


def test_keras_files_that_read_other_files_are_refused(tmp_path):
    """External storage, soft and external links and virtual datasets would make the reader fetch
    bytes from elsewhere (a crafted file pulled local file contents into the weights): each refused."""
    h5py = pytest.importorskip("h5py")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(32 * 4, dtype=np.float32).tobytes())
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("bias", data=np.zeros(32, np.float32))

    def external_storage(f, name, g):
        del g[f"{name}/bias:0"]
        g.create_dataset(f"{name}/bias:0", (32,), np.float32, external=[(str(secret), 0, 32 * 4)])

    def soft_link(f, name, g):
        del g[f"{name}/bias:0"]
        g[f"{name}/bias:0"] = h5py.SoftLink("/fc2/fc2/bias:0")

    def external_link(f, name, g):
        del g[f"{name}/bias:0"]
        g[f"{name}/bias:0"] = h5py.ExternalLink(str(other), "/bias")

    def virtual(f, name, g):
        del g[f"{name}/bias:0"]
        layout = h5py.VirtualLayout((32,), np.float32)
        layout[:] = h5py.VirtualSource(str(other), "bias", shape=(32,))
        g.create_virtual_dataset(f"{name}/bias:0", layout)

    for tamper, message in ((external_storage, "external file"), (soft_link, "SoftLink"),
                            (external_link, "ExternalLink"), (virtual, "virtual dataset")):
        path = tmp_path / f"{tamper.__name__}.h5"
        write_keras_vgg(path, np.random.default_rng(0), tamper)
        with pytest.raises(ValueError, match=message):
            convert.load_keras(path)
    write_keras_vgg(tmp_path / "plain.h5", np.random.default_rng(0))
    convert.load_keras(tmp_path / "plain.h5")  # the same file untampered loads


def test_save_load_is_bit_exact(tmp_path):
    module = build_model("vgg11", num_classes=5, input_size=32, width=1 / 16)
    from cam_jax.manipulations import constant_flat
    from cam_jax.models import init_params

    model = Model(module, init_params(module, seed=4))
    for m in (model, constant_flat(model)):  # the paper's T1 is saved as the VGG with an appended filter
        checkpoint.save(tmp_path / "w.npz", m, arch="vgg11", preprocess="torchvision")
        loaded, meta = checkpoint.load(tmp_path / "w.npz")
        assert loaded.module == m.stock().module and meta["arch"] == "vgg11"
        assert_trees_all_close(loaded.params, m.stock().params)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(m(x)), rtol=1e-5, atol=1e-2)


def test_convert_script_round_trip(tmp_path):
    import subprocess
    import sys

    net, path = small_torch_file(tmp_path)
    out = tmp_path / "small.npz"
    subprocess.run([sys.executable, "scripts/convert_weights.py", str(path), "--out", str(out)], check=True)
    model, meta = checkpoint.load(out)
    assert meta["source_sha256"] == checkpoint.sha256(path)
    x = random_nchw(2, 64)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.asarray(model(x.transpose(0, 2, 3, 1))), expected, atol=1e-4)


# --- bad files -----------------------------------------------------------------------------


def test_wrong_depth_is_named(tmp_path):
    stages11 = tuple(tuple(w // 16 for w in s) for s in STAGES["vgg11"])
    _, path = small_torch_file(tmp_path, stages=stages11)
    with pytest.raises(ValueError, match="8 conv layers but vgg16 has 13.*vgg11"):
        convert.load_torchvision(path, arch="vgg16")
    model, meta = convert.load_torchvision(path)  # inferred
    assert meta["arch"] == "vgg11"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda sd: sd.pop("classifier.3.bias"), "classifier.3.bias is missing"),
        (lambda sd: sd.__setitem__("classifier.9.weight", sd["classifier.6.weight"]),
         "unexpected key classifier.9.weight"),
        (lambda sd: sd.__setitem__("features.2.weight", sd["features.2.weight"][:, :2]), "conv1_2/kernel has shape"),
        (lambda sd: sd.__setitem__("classifier.0.weight", sd["classifier.0.weight"][:, :-3]), "not a square map"),
    ],
)
def test_broken_state_dict_names_the_key(tmp_path, edit, message):
    net, _ = small_torch_file(tmp_path)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    edit(sd)
    with pytest.raises(ValueError, match=message):
        convert.from_torchvision_state_dict(sd)


def test_truncated_and_garbage_files(tmp_path):
    _, path = small_torch_file(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not read"):
        convert.load_torchvision(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not an .npz weight file") as err:
        checkpoint.load(garbage)
    assert "pickle" not in str(err.value)  # numpy's advice to load it unsafely is not passed on
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "absent.npz")


def test_pickled_code_is_refused(tmp_path):
    """weights_only=True: a .pth that would run code on load is rejected, not executed."""

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": Evil()}, path)
    with pytest.raises(ValueError, match="could not read") as err:
        convert.load_torchvision(path)
    assert "weights_only=False" not in str(err.value)  # torch's advice would run the file's code


def test_common_checkpoint_layouts_convert(tmp_path):
    """A training checkpoint {"model": state_dict, "epoch": ...}, extra non-tensor entries, bfloat16
    tensors and tensors that require grad: each converts to the weights of the plain state_dict."""
    net, path = small_torch_file(tmp_path)
    reference, _ = convert.load_torchvision(path)
    sd = net.state_dict()
    layouts = {
        "wrapped": {"model": sd, "epoch": 3, "optimizer": {"lr": 0.1}},
        "extras": {**sd, "note": "trained on shapes", "version": 2},
        "grad": dict(net.named_parameters()),
        "bf16": {k: v.to(torch.bfloat16) for k, v in sd.items()},
    }
    for name, state in layouts.items():
        torch.save(state, tmp_path / f"{name}.pth")
        model, _ = convert.load_torchvision(tmp_path / f"{name}.pth")
        # bfloat16 keeps 8 bits of mantissa: the weights round to within 2**-8 relative.
        assert_trees_all_close(model.params, reference.params, rtol=2**-8 if name == "bf16" else 0.0)


def test_batch_norm_vgg_is_folded_and_matches_torch_in_eval_mode():
    """torchvision's vgg*_bn layout (conv, BatchNorm2d, ReLU): converted with each batch norm folded
    into its conv, against torch's eval-mode forward (before: diagnosed as a VGG-19 missing a key)."""
    torch.manual_seed(0)
    layers, cin = [], 3
    for stage in SMALL["stages"]:
        for w in stage:
            norm = torch.nn.BatchNorm2d(w)
            for value, (low, high) in ((norm.running_mean, (-0.5, 0.5)), (norm.running_var, (0.5, 2.0)),
                                       (norm.weight.data, (0.5, 1.5)), (norm.bias.data, (-0.2, 0.2))):
                value.uniform_(low, high)
            layers += [torch.nn.Conv2d(cin, w, 3, padding=1), norm, torch.nn.ReLU()]
            cin = w
        layers.append(torch.nn.MaxPool2d(2))
    features = torch.nn.Sequential(*layers).eval()
    nn = torch.nn
    head = nn.Sequential(nn.Linear(cin * 4, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(),
                         nn.Linear(64, 10)).eval()
    state = {**{f"features.{k}": v.numpy() for k, v in features.state_dict().items()},
             **{f"classifier.{k}": v.numpy() for k, v in head.state_dict().items()}}
    model = convert.from_torchvision_state_dict(state)
    assert model.module.stages == SMALL["stages"] and not model.module.batch_norm
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = head(features(x).flatten(1)).numpy()
    np.testing.assert_allclose(np.asarray(model(x.permute(0, 2, 3, 1).numpy())), ref, atol=1e-5 * np.abs(ref).max())


def test_nan_weights_and_decompression_bombs_are_refused(tmp_path):
    module = build_model("vgg11", num_classes=5, input_size=32, width=1 / 16)
    model = Model(module, init_params(module, 0))
    broken = jax.tree.map(lambda p: p, model.params)
    broken["fc2"]["bias"] = broken["fc2"]["bias"].at[1].set(jnp.nan)
    checkpoint.save(tmp_path / "nan.npz", Model(module, broken))
    with pytest.raises(ValueError, match="fc2/bias holds 1 NaN"):
        convert.load_weights(tmp_path / "nan.npz")
    # 64 MiB of zeros deflate to ~64 KiB: refused from the sizes the archive declares, before inflating.
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("fc1/kernel.npy", bytes(64 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match="decompression bomb"):
        checkpoint.load(bomb)


def test_a_file_that_kept_appended_filters_apart_loads_as_the_stock_vgg(tmp_path):
    """The format before the weight edit left the architectures: a VGG header with "appended": 1 and the
    filter and its fc1 rows under `<last conv>_appended` and `fc1_appended`. It loads as the VGG whose
    last conv has one more filter: T1's function, checked against the edit kept as parameters apart."""
    import json

    from cam_jax.manipulations import constant_flat
    from cam_jax.models import init_params, registry

    module = build_model("vgg11", num_classes=5, input_size=32, width=1 / 16)
    t1 = constant_flat(Model(module, init_params(module, seed=4)), c_A=5.0, c_W=3.0)
    flat = {f"{k}/{leaf}": np.asarray(v) for k, layer in t1.params["base"].items() for leaf, v in layer.items()}
    flat.update({f"{module.last_conv}_appended/{leaf}": np.asarray(v) for leaf, v in t1.params["filters"].items()})
    flat["fc1_appended/kernel"] = np.asarray(t1.params["rows"]["kernel"])
    header = {"format": checkpoint.FORMAT, "family": "vgg", "config": {**registry.config(module), "appended": 1},
              "arch": "vgg11", "preprocess": "torchvision"}
    np.savez(tmp_path / "old.npz", **flat, **{checkpoint.META_KEY: np.array(json.dumps(header))})
    loaded, _ = checkpoint.load(tmp_path / "old.npz")
    assert loaded.module.stages[-1][-1] == module.stages[-1][-1] + 1
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(t1(x)), rtol=1e-5, atol=1e-4)
    del flat["fc1_appended/kernel"]
    np.savez(tmp_path / "broken.npz", **flat, **{checkpoint.META_KEY: np.array(json.dumps(header))})
    with pytest.raises(ValueError, match="fc1_appended is missing"):
        checkpoint.load(tmp_path / "broken.npz")
