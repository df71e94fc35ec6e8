"""The CAM family, targets and input-space attributions against independent implementations.

References: pytorch-grad-cam's formulas restated in torch autograd (`cam_jax.testing`), torch loops
for ScoreCAM and AblationCAM, captum for the input-space methods, closed forms and hypothesis
properties for degenerate inputs.
"""

from __future__ import annotations

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from cam_jax import constant_flat, constant_image, convert, explain, explain_many, semi_random, sticker_backdoor
from cam_jax.cams import METHODS, WEIGHTINGS, normalize
from cam_jax.cams.input_space import smoothgrad_noise
from cam_jax.cams.weightings import top_eigenvector
from cam_jax.manipulations import chain
from cam_jax.models import ViT
from cam_jax.testing import (
    random_model,
    script,
    torch_ablation_cam,
    torch_network,
    torch_reference_maps,
    torch_score_cam,
    torch_vit,
    torch_vit_split,
)

torch = pytest.importorskip("torch")
TARGETS = ["logit", "softmax", "log_softmax", "contrast_mean", "contrast"]


@pytest.fixture(scope="module", params=["vgg16", "resnet18", "vit_b_16"])
def pair(request, tmp_path_factory):
    """A random torch network in torchvision's layout, its conversion, images, and its features/head split
    (a ViT's head reruns the network on these images: its class token is their context)."""
    path = tmp_path_factory.mktemp(request.param) / "net.pth"
    x = np.random.default_rng(3).normal(size=(2, 3, 64, 64)).astype(np.float32)
    if request.param == "vit_b_16":  # two blocks of ViT-B/16's patches, two heads of 16
        net = torch_vit(16, 2, 2, 32, 64, 10, 64, seed=4)
        features, head = torch_vit_split(net, x)
    elif request.param == "vgg16":  # He init keeps 13 narrow layers alive
        net, _ = torch_network("vgg16", 1 / 16, 10, 64, seed=1, he_init=True)
        feats = list(net.features)
        features, rest = torch.nn.Sequential(*feats[:-1]), feats[-1]

        def head(a):
            return net.classifier(torch.flatten(rest(a), 1))
    else:
        net, _ = torch_network("resnet18", 1 / 8, 10, 64, seed=2)
        features, head = net.features, net.head
    torch.save(net.state_dict(), path)
    vit = request.param == "vit_b_16"
    model, _ = convert.load_torchvision(path, **({"heads": 2} if vit else {"input_size": 64}))
    return net, features, head, model, x


def close(ours, ref, rtol=1e-4):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=rtol * max(np.abs(ref).max(), 1e-6), rtol=0)


def close_but_kinks(ours, ref, share=0.005, rtol=1e-4, kink_rtol=2e-3):
    """`close` but for a few values: IG sums the gradients at 50 points of a path, and where a ReLU or
    max-pool decision at one point falls the other way in torch's rounding than in XLA's, the gradient
    there jumps by up to its own size times that point's weight (<= 0.05). On a CPU without AVX-512
    the VGG's IG was measured 42 of 24,576 values past 1e-5 of the maximum (at most 2.7e-4), 99.9 %
    within 3e-5; on the others every value within 3e-7."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    scale = max(np.abs(ref).max(), 1e-6)
    off = np.abs(ours - ref) > rtol * scale
    assert off.mean() <= share, f"{off.sum()} of {off.size} values past {rtol} of the maximum"
    np.testing.assert_allclose(ours, ref, atol=kink_rtol * scale, rtol=0)


@pytest.mark.parametrize("target", TARGETS)
def test_gradient_weighted_cams_match_torch(pair, target):
    net, features, head, model, x = pair
    contrast = np.array([3, 7]) if target == "contrast" else None
    ref = torch_reference_maps(features, head, torch.from_numpy(x), target, contrast)
    out = explain_many(model, x.transpose(0, 2, 3, 1), list(WEIGHTINGS), target=target, contrast=contrast)
    for name in WEIGHTINGS:
        np.testing.assert_array_equal(np.asarray(out[name].classes), ref["classes"])
        assert ref[name].max() > 0, name  # a live map, not zeros against zeros
        close(out[name].cam, ref[name])
    close(out["gradcam"].logits, ref["logits"])


def test_scorecam_and_ablationcam_match_torch(pair):
    net, features, head, model, x = pair
    xt = torch.from_numpy(x)
    classes = net(xt).argmax(1).numpy()
    # 5 masked images a pass: the channels run in several chunks, the last one padded.
    score = explain(model, x.transpose(0, 2, 3, 1), "scorecam", batch_images=10)
    close(score.cam, torch_score_cam(net, features, xt, classes))
    ablation = explain(model, x.transpose(0, 2, 3, 1), "ablationcam", batch_images=10)
    if isinstance(model.module, ViT):  # the reference ablates one image at a time, and a ViT's head reads its image
        ref = np.concatenate([torch_ablation_cam(*torch_vit_split(net, x[b:b + 1]), xt[b:b + 1], classes[b:b + 1])
                              for b in range(len(x))])
    else:
        ref = torch_ablation_cam(features, head, xt, classes)
    assert ref.max() > 0
    close(ablation.cam, ref, rtol=1e-3)  # (S - S_k) / S: differences of nearby scores


def test_input_space_methods_match_captum(pair):
    captum = pytest.importorskip("captum.attr")
    net, _, _, model, x = pair
    xt = torch.from_numpy(x).requires_grad_(True)
    classes = net(xt).argmax(1)
    x_nhwc = x.transpose(0, 2, 3, 1)
    out = explain_many(model, x_nhwc, ["saliency", "gradient_x_input", "integrated_gradients"])
    references = {
        "saliency": captum.Saliency(net).attribute(xt, target=classes, abs=True),
        "gradient_x_input": captum.InputXGradient(net).attribute(xt, target=classes),
    }
    ig, delta = captum.IntegratedGradients(net).attribute(xt, target=classes, n_steps=50, method="gausslegendre",
                                                          return_convergence_delta=True)
    references["integrated_gradients"] = ig
    for name, ref in references.items():
        compare = close_but_kinks if name == "integrated_gradients" else close
        compare(out[name].attribution, ref.detach().numpy().transpose(0, 2, 3, 1))
        compare(out[name].cam, ref.detach().numpy().sum(1))
    np.testing.assert_allclose(np.asarray(out["integrated_gradients"].delta), delta.detach().numpy(),
                               atol=1e-3 * float(np.abs(references["integrated_gradients"].detach().numpy()).sum()))
    # SmoothGrad: the mean gradient over the same noisy copies, by torch autograd.
    key = jax.random.key(5)
    noise = np.asarray(smoothgrad_noise(key, jnp.asarray(x_nhwc), 4, 0.15)).transpose(0, 1, 4, 2, 3)
    grads = []
    for n in noise:
        xn = torch.from_numpy(x + n).requires_grad_(True)
        net(xn).gather(1, classes[:, None]).sum().backward()
        grads.append(xn.grad.numpy())
    smooth = explain(model, x_nhwc, "smoothgrad", key=key, samples=4)
    close(smooth.attribution, np.mean(grads, axis=0).transpose(0, 2, 3, 1))


def test_check_grad_cam_compares_each_image_with_the_closer_sign():
    """scripts/check_grad_cam.py's measure: per image, relative to the reference's maximum, and for the
    principal-component methods against whichever sign of the direction is closer."""
    differences = script("check_grad_cam").differences
    ours = np.array([[[1.0, 0.0]], [[0.0, 2.0]]])                      # (2 images, 1, 2)
    np.testing.assert_allclose(differences(ours, ours + [[[0.5, 0]], [[0, 0]]]), [0.5 / 1.5, 0])
    other_sign = np.array([[[0.0, 4.0]], [[0.0, 2.0]]])               # image 0 only matches with the flip
    np.testing.assert_allclose(differences(ours, np.stack([other_sign, ours])), [0, 0])


def test_gradcam_on_a_gap_linear_head_is_cam():
    """Closed form (Zhou et al. 2016): after a global mean and one linear layer, dy^c/dA^k = W_kc / (h w),
    so GradCAM = ReLU(sum_k W_kc A^k) / (h w), the original CAM."""
    model = random_model("resnet18", num_classes=6, input_size=64, width=1 / 8, seed=4)
    x = jax.random.normal(jax.random.key(0), (3, 64, 64, 3))
    e = explain(model, x)
    a = np.asarray(model.features(x))
    w = np.asarray(model.params["fc"]["kernel"])[:, np.asarray(e.classes)]
    expected = np.maximum(np.einsum("bhwk,kb->bhw", a, w), 0) / 4
    close(e.cam, expected, rtol=1e-5)


def test_a_batch_gives_the_maps_of_its_images_one_by_one():
    model = random_model("vgg11", num_classes=5, input_size=32, width=1 / 16, seed=2)
    x = jax.random.normal(jax.random.key(1), (3, 32, 32, 3))
    key = jax.random.key(2)
    # The beta-smoothed methods are their bases on another model, the aggregates per-image reductions of
    # members that are here (tests/test_defences.py checks both): left out for the suite's time.
    names = [m for m in METHODS if not m.endswith("_beta") and METHODS[m].kind != "aggregate"]
    batch = explain_many(model, x, names, batch_images=16, key=key, samples=3, steps=8)
    for i in range(3):
        # SmoothGrad draws noise for the whole batch; image i alone would draw other noise.
        alone = explain_many(model, x[i:i + 1], [m for m in names if m != "smoothgrad"], batch_images=16, steps=8)
        for name, e in alone.items():
            close(batch[name].cam[i:i + 1], e.cam, rtol=1e-4)


arrays = st.builds(
    lambda seed, kind: _degenerate(seed, kind), seed=st.integers(0, 2**16),
    kind=st.sampled_from(["zero_a", "zero_grads", "constant_a", "one_hot", "random", "huge"]))


def _degenerate(seed, kind):
    rng = np.random.default_rng(seed)
    a = np.abs(rng.normal(size=(2, 4, 4, 6))).astype(np.float32)
    g = rng.normal(size=(2, 4, 4, 6)).astype(np.float32)
    if kind == "zero_a":
        a[:] = 0
    elif kind == "zero_grads":
        g[:] = 0
    elif kind == "constant_a":
        a[:] = 3.0
    elif kind == "one_hot":
        a[:] = 0
        a[:, 1, 2, 3] = 1
    elif kind == "huge":
        a, g = a * 1e15, g * 1e-15
    return jnp.asarray(a), jnp.asarray(g)


@given(ag=arrays)
def test_weightings_are_finite_on_degenerate_maps(ag):
    """No NaN or inf for all-zero activations, zero gradients, constant maps; normalisations too."""
    a, g = ag
    for name, weighting in WEIGHTINGS.items():
        cam = jax.nn.relu(weighting(a, g))
        assert np.isfinite(np.asarray(cam)).all(), name
        for how in ("max", "minmax"):
            heat = np.asarray(normalize(cam, how))
            assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1, (name, how)


def _spectrum(rng, n: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """A random symmetric PSD (n, n) matrix whose top eigenvalues are 1 and `ratio`, and its top eigenvector."""
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    values = np.sort(rng.uniform(0, ratio, n))
    values[-2:] = ratio, 1.0
    return (q * values) @ q.T, q[:, -1]


@given(seed=st.integers(0, 2**16), n=st.integers(2, 40), ratio=st.floats(0.05, 0.999),
       scale=st.floats(-3, 3))
def test_top_eigenvector_is_the_eigenvector_of_the_closed_form(seed, n, ratio, scale):
    """The squaring stops early (`SETTLED`) yet finds the top eigenvector of a matrix built from it,
    down to an eigenvalue gap of 1e-3, at any scale (measured: 1 - |cos| <= 1.6e-7 over 300 draws)."""
    m, top = _spectrum(np.random.default_rng(seed), n, ratio)
    v = np.asarray(top_eigenvector(jnp.asarray(m[None] * 10**scale, jnp.float32)))[0]
    assert abs(v @ top) > 1 - 1e-5 and abs(np.linalg.norm(v) - 1) < 1e-5


def test_top_eigenvector_of_a_matrix_does_not_depend_on_its_batch():
    """A matrix that settles after a few squarings, batched with one that needs many, gives what it gives alone."""
    rng = np.random.default_rng(0)
    fast, slow = (_spectrum(rng, 30, r)[0].astype(np.float32) for r in (0.1, 0.999))
    both = np.asarray(top_eigenvector(jnp.asarray(np.stack([fast, slow]))))
    for i, m in enumerate((fast, slow)):
        np.testing.assert_array_equal(both[i], np.asarray(top_eigenvector(jnp.asarray(m[None])))[0])


def test_every_method_runs_on_manipulated_models():
    model = random_model("vgg11", num_classes=4, input_size=32, width=1 / 16, seed=3)
    x = jax.random.normal(jax.random.key(4), (2, 32, 32, 3))
    # T1 to T4 nested (one model, one compile): the edited VGG, each wrapper, and wrappers around wrappers
    nested = chain(constant_flat, constant_image, semi_random, sticker_backdoor)(model)
    out = explain_many(nested, x, "all", batch_images=16, samples=2, steps=2)
    for name, e in out.items():
        assert np.isfinite(np.asarray(e.cam)).all(), name


def test_bad_classes_targets_and_methods_are_refused():
    model = random_model("vgg11", num_classes=5, input_size=32, width=1 / 16)
    x = np.zeros((2, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match=r"classes must be in \[0, 5\).*got 5"):
        explain(model, x, classes=np.array([0, 5]))
    with pytest.raises(ValueError, match=r"got -1"):
        explain(model, x, classes=[-1, 0])
    np.testing.assert_array_equal(np.asarray(explain(model, x, classes=np.array([4, 1], np.int64)).classes), [4, 1])
    with pytest.raises(ValueError, match=r"unknown method 'gradcam\+'"):
        explain(model, x, "gradcam+")
    with pytest.raises(ValueError, match="unknown target"):
        explain(model, x, target="probability")
    with pytest.raises(ValueError, match="contrast=... exactly when"):
        explain(model, x, target="contrast")
    with pytest.raises(ValueError, match=r"options \['steps'\] do not apply"):
        explain(model, x, "gradcam", steps=3)
