"""The defences as explanation methods, against independent implementations.

β-smoothing against torch with every ReLU swapped for one whose backward is sigmoid(β z) (zennit's
rule restated); occlusion against captum's `Occlusion`; the aggregates against numpy's mean and median
of the members' maps; the forward-only defence's immunity to T3 and T4 in closed form.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax import convert, explain, explain_many, gradcam, semi_random, sticker_backdoor
from cam_jax.cams.methods import AGGREGATED, explainer
from cam_jax.cams.smoothing import beta_smooth, smoothed
from cam_jax.testing import torch_network

torch = pytest.importorskip("torch")
SIZE = 64


class BetaReLU(torch.nn.Module):
    """max(z, 0) forward, sigmoid(beta z) backward (zennit's ReLUBetaSmooth)."""

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def forward(self, z):
        # softplus_beta's derivative is sigmoid(beta z); the detached difference makes the value the ReLU's
        soft = torch.nn.functional.softplus(z, beta=self.beta)
        return soft + (torch.relu(z) - soft).detach()


def smoothed_torch(net, beta):
    net = copy.deepcopy(net)
    for module in net.modules():
        for name, child in module.named_children():
            if isinstance(child, torch.nn.ReLU):
                setattr(module, name, BetaReLU(beta))
    return net


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    """A random torch VGG-11 (1/16 wide, 64 px) in torchvision's layout, its conversion and images."""
    net, _ = torch_network("vgg11", 1 / 16, 10, SIZE, seed=1, he_init=True)
    path = tmp_path_factory.mktemp("vgg") / "net.pth"
    torch.save(net.state_dict(), path)
    model, _ = convert.load_torchvision(path, input_size=SIZE)
    x = np.random.default_rng(3).normal(size=(2, 3, SIZE, SIZE)).astype(np.float32)
    return net.eval(), model, x


def close(ours, ref, rtol=1e-4):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=rtol * max(np.abs(ref).max(), 1e-6), rtol=0)


def torch_split(net):
    """(features: x -> A after the last conv's ReLU, head: A -> logits), as cam_jax's VGG cuts it."""
    feats = list(net.features)
    return torch.nn.Sequential(*feats[:-1]), lambda a: net.classifier(torch.flatten(feats[-1](a), 1))


def test_beta_smoothed_methods_match_torch(vgg):
    beta = 3.0  # not the default: the option reaches the method
    net, model, x = vgg
    smooth = smoothed_torch(net, beta)
    xt = torch.from_numpy(x)
    logits = net(xt).detach().numpy()
    classes = logits.argmax(1)
    out = explain_many(model, x.transpose(0, 2, 3, 1), ["gradcam_beta", "saliency_beta", "gradient_x_input_beta"],
                       beta=beta)

    features, head = torch_split(smooth)
    a = features(xt).detach().requires_grad_(True)
    head(a)[torch.arange(2), torch.as_tensor(classes)].sum().backward()
    cam = torch.relu((a.grad.mean(dim=(2, 3), keepdim=True) * a).sum(1)).detach().numpy()
    close(out["gradcam_beta"].cam, cam)

    xg = xt.clone().requires_grad_(True)
    smooth(xg)[torch.arange(2), torch.as_tensor(classes)].sum().backward()
    grad = xg.grad.numpy().transpose(0, 2, 3, 1)
    close(out["saliency_beta"].attribution, np.abs(grad))
    close(out["gradient_x_input_beta"].attribution, grad * x.transpose(0, 2, 3, 1))
    # the smoothing is real: the plain gradient differs
    plain = explain(model, x.transpose(0, 2, 3, 1), "saliency").attribution
    assert np.abs(np.asarray(plain) - np.abs(grad)).max() > 1e-3 * np.abs(grad).max()


def test_beta_smooth_keeps_the_values_and_tends_to_the_relu(vgg):
    _, model, x = vgg
    images = jnp.asarray(x.transpose(0, 2, 3, 1))
    assert np.array_equal(beta_smooth(model)(images), model(images))
    sharp = explain(model, images, "gradcam_beta", beta=1e7).cam
    np.testing.assert_allclose(sharp, explain(model, images, "gradcam").cam, rtol=1e-5, atol=1e-7)


def test_smoothing_refuses_a_relu_it_cannot_reach():
    def looped(x):
        return jax.lax.fori_loop(0, 2, lambda i, c: jax.nn.relu(c - 1.0), x)

    with pytest.raises(ValueError, match="cannot reach the ReLUs inside a scan"):
        smoothed(looped)(jnp.ones(3))
    # no ReLU in the loop: bound as it is
    assert float(smoothed(lambda x: jax.lax.fori_loop(0, 2, lambda i, c: c * 2.0, x))(jnp.float32(1))) == 4.0


@pytest.mark.parametrize(("window", "stride"), [(16, 8), (24, 16)])
def test_occlusion_matches_captum(vgg, window, stride):
    captum = pytest.importorskip("captum.attr")
    net, model, x = vgg
    classes = net(torch.from_numpy(x)).argmax(1)
    ref = captum.Occlusion(net).attribute(torch.from_numpy(x), sliding_window_shapes=(3, window, window),
                                          strides=(3, stride, stride), baselines=0, target=classes)
    ours = explain(model, x.transpose(0, 2, 3, 1), "occlusion", window=window, stride=stride, batch_images=16)
    close(ours.attribution, np.nan_to_num(ref.numpy().transpose(0, 2, 3, 1)))
    np.testing.assert_array_equal(ours.classes, classes.numpy())


def test_occlusion_sees_only_the_function(vgg):
    """T3 and T4 (on clean images) change no score, exactly: the forward-only map is the original's, bit for
    bit, where GradCAM's moves."""
    _, model, x = vgg
    images = jnp.asarray(x.transpose(0, 2, 3, 1))
    ref = explain(model, images, "occlusion").cam
    for manipulated in (semi_random(model), sticker_backdoor(model)):
        np.testing.assert_array_equal(explain(manipulated, images, "occlusion").cam, ref)
    assert not np.allclose(explain(semi_random(model), images, "gradcam").cam, explain(model, images, "gradcam").cam)


def test_aggregates_reduce_the_normalised_members(vgg):
    _, model, x = vgg
    images = jnp.asarray(x.transpose(0, 2, 3, 1))
    members = np.stack([np.abs(np.asarray(explainer(m)(model, images, None))) for m in AGGREGATED])
    members = members / members.max(axis=(2, 3), keepdims=True)
    out = explain_many(model, images, ["aggregate_mean", "aggregate_median"])
    np.testing.assert_allclose(out["aggregate_mean"].cam, members.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["aggregate_median"].cam, np.median(members, 0), rtol=1e-5, atol=1e-6)
    two = explain(model, images, "aggregate_mean", members=("gradcam", "saliency")).cam
    assert two.shape == (2, SIZE, SIZE)


@pytest.mark.parametrize(("method", "options", "message"), [
    ("gradcam_beta", {"beta": 0.0}, "beta must be a finite number > 0"),
    ("saliency_beta", {"beta": float("nan")}, "beta must be a finite number > 0"),
    ("occlusion", {"window": 0}, "window must be an integer in"),
    ("occlusion", {"window": SIZE + 1}, "window must be an integer in"),
    ("occlusion", {"stride": 2.5}, "stride must be an integer in"),
    ("aggregate_mean", {"members": ("aggregate_median",)}, "other than the aggregates"),
    ("aggregate_mean", {"members": "gradcam"}, "a tuple of method names"),
    ("aggregate_median", {"members": ("gradcam", "nope")}, "a tuple of method names"),
])
def test_defence_options_refused(vgg, method, options, message):
    _, model, x = vgg
    with pytest.raises(ValueError, match=message):
        explain(model, x.transpose(0, 2, 3, 1), method, **options)


def test_the_matrix_takes_the_defences_by_group():
    from cam_jax.cams.methods import DEFENCES
    from cam_jax.evaluation.config import MATRIX_METHODS, cells

    assert cells(("defences",))["methods"] == ("gradcam", *DEFENCES)
    assert cells(("all", "defences"))["methods"] == (*MATRIX_METHODS, *DEFENCES)


def test_the_recommendation_rows_read_the_manipulated_models_as_the_original(vgg):
    """`--recommend`: each manipulated model is also a row read without the channels of A its audit flags
    (audited on generated shapes before the evaluation compiles). On the paper's T3 and T4 (a branch beside
    A) GradCAM and AblationCAM (whose head passes read the images as the context) then give the original's
    own maps, while the logits stay T3's and T4's."""
    from cam_jax.evaluation import suite
    from cam_jax.evaluation.config import Config

    _, model, x = vgg
    images = jnp.asarray(x.transpose(0, 2, 3, 1))
    config = Config(recommend=True)
    with pytest.raises(ValueError, match="pass the original model"):
        suite.of(config)
    paper = {e.name: e for e in suite.of(Config())}
    entries = {e.name: e for e in suite.recommended_entries((paper["T3"], paper["T4"]), model, config)}
    assert set(entries) == {"T3+rec", "T4+rec"} and entries["T4+rec"].references == {"clean": "original",
                                                                                        "sticker": "original"}
    methods = ("gradcam", "ablationcam")
    before = explain_many(model, images, methods)
    for name in ("T3", "T4"):
        manipulated, read = paper[name].build(model, config), entries[f"{name}+rec"].build(model, config)
        np.testing.assert_array_equal(read(images), manipulated(images))
        after = explain_many(read, images, methods)
        for m in methods:
            close(after[m].cam, before[m].cam, rtol=1e-5)


def test_the_adaptive_rows_are_the_attacks_on_the_audit(vgg):
    """`--adaptive`: a row per attack written against the audit, built from the original outside the compiled
    step. The common logit keeps the softmax (a term shared by every logit cancels in it) and moves GradCAM."""
    from cam_jax.evaluation import suite
    from cam_jax.evaluation.config import Config
    from cam_jax.manipulations import adaptive

    _, model, x = vgg
    images = jnp.asarray(x.transpose(0, 2, 3, 1))
    config = Config(adaptive=True)
    with pytest.raises(ValueError, match="pass the original model"):
        suite.of(config)
    entries = {e.name: e for e in suite.of(config, model=model)}
    assert {f"A-{name}" for name in (*adaptive.ATTACKS, *adaptive.VERSIONS)} <= set(entries)
    common = entries["A-common logit"].build(model, config)
    close(jax.nn.softmax(common(images)), jax.nn.softmax(model(images)), rtol=1e-4)
    assert np.abs(np.asarray(gradcam(common, images).cam) - np.asarray(gradcam(model, images).cam)).max() > 1e-3
