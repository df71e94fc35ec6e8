"""The explanation-quality metrics against Quantus 0.6 itself, on a torch twin of the same network.

`testing.models.Tiny` (24 x 24 images, A at the images' resolution) and its torch twin hold the same
weights. Quantus ranks colour values, not pixels, and its argsort is not stable: its maps are given as
(B, 3, H, W) with colour c offset by c * 1e-5 (far below the maps' gaps of 1 / 576), so every pixel's
three values are adjacent in its order and a step of 3 m values removes m whole pixels; ours are the
(B, H, W) maps. Quantus's own normalisation and absolute value are switched off (normalise=False,
abs=False) unless said; its random draws are replaced by ours (monkeypatched numpy functions or
perturbation functions) where a metric draws.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
quantus = pytest.importorskip("quantus")

from cam_jax.cams.methods import explainer  # noqa: E402
from cam_jax.metrics import faithfulness, perturbing, randomisation, robustness  # noqa: E402
from cam_jax.metrics.quality import QUALITY, assess  # noqa: E402
from cam_jax.testing import tiny_model, tiny_params, torch_tiny, torch_tiny_gradcam  # noqa: E402

RTOL = 1e-4
SIZE, B = 24, 4


@pytest.fixture(scope="module")
def case():
    model = tiny_model(seed=3)
    net = torch_tiny(model)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, SIZE, SIZE, 3)).astype(np.float32)
    classes = np.asarray(model(x)).argmax(-1).astype(np.int64)
    # Tie-free maps: each a permutation of 1/576 ... 1.
    maps = np.stack([rng.permutation(SIZE * SIZE) + 1 for _ in range(B)]).reshape(B, SIZE, SIZE) / SIZE**2
    masks = np.zeros((B, SIZE, SIZE), bool)
    masks[:, 4:14, 6:18] = True
    masks[1] = False
    masks[1, 10:20, 2:9] = True
    return model, net, x, classes, maps.astype(np.float32), masks


def nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def colour_maps(maps):
    """(B, 3, H, W): the map on every colour, colour c raised by c * 1e-5 (module docstring)."""
    return (maps[:, None] + 1e-5 * np.arange(3)[None, :, None, None]).astype(np.float32)


def run_quantus(metric, case, a, **call):
    model, net, x, classes, _, _ = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric(model=net, x_batch=nchw(x), y_batch=classes, a_batch=a, device="cpu", **call)


def ours(name, case, **options):
    model, _, x, classes, maps, masks = case
    kind = QUALITY[name].kind
    return np.asarray(assess(name, model, jnp.asarray(x), jnp.asarray(maps), jnp.asarray(classes),
                             masks=masks if kind == "masks" else None, **options))


def close(a, b, rtol=RTOL, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol)


QUIET = {"normalise": False, "abs": False, "disable_warnings": True, "display_progressbar": False}


def test_pixel_flipping(case):
    steps = 12  # 48 pixels a step; Quantus: 144 colour values
    theirs = run_quantus(quantus.PixelFlipping(features_in_step=3 * SIZE**2 // steps, perturb_baseline="black",
                                               **QUIET), case, colour_maps(case[4]), softmax=True)
    close(ours("pixel_flipping", case, steps=steps, baseline="black", target="softmax"), theirs)


@pytest.mark.parametrize("order,batch_images", [("morf", 64), ("lerf", 2 * B)])
def test_region_perturbation(case, order, batch_images):
    """2 B images a pass: 9 regions in 5 chunks of 2, the last padded and cut off."""
    metric = quantus.RegionPerturbation(patch_size=8, order=order, regions_evaluation=9, perturb_baseline="black",
                                        **QUIET)
    theirs = run_quantus(metric, case, case[4][:, None], softmax=True)
    close(ours("region_perturbation", case, patch=8, regions=9, order=order, target="softmax",
               batch_images=batch_images), np.stack(theirs))


def test_selectivity(case):
    theirs = run_quantus(quantus.Selectivity(patch_size=8, perturb_baseline="black", **QUIET), case,
                         case[4][:, None], softmax=True)
    close(ours("selectivity", case, patch=8, target="softmax"), np.stack(theirs))


def test_infidelity(case):
    metric = quantus.Infidelity(perturb_patch_sizes=[8], n_perturb_samples=1, perturb_baseline="black", **QUIET)
    theirs = run_quantus(metric, case, case[4][:, None], softmax=False)
    close(ours("infidelity", case, patch=8, target="logit"), theirs)


def test_faithfulness_correlation(case, monkeypatch):
    model, _, x, classes, maps, _ = case
    runs, subset, key = 20, 60, jax.random.key(7)
    # Our run r's pixels for image b, as Quantus's colour-value indices (c * H W + pixel), in the order
    # Quantus draws them: for each run, image by image.
    chosen = [np.asarray(perturbing.ranks(jax.random.uniform(jax.random.fold_in(key, r), (B, SIZE**2)), False)
                         < subset) for r in range(runs)]
    draws = iter([np.concatenate([np.flatnonzero(chosen[r][b]) + c * SIZE**2 for c in range(3)])
                  for r in range(runs) for b in range(B)])
    monkeypatch.setattr(np.random, "choice", lambda *args, **kwargs: next(draws))
    metric = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=3 * subset, perturb_baseline="black",
                                             return_aggregate=False, **QUIET)
    theirs = run_quantus(metric, case, case[4][:, None], softmax=False)
    mine = assess("faithfulness_correlation", model, jnp.asarray(x), jnp.asarray(maps), jnp.asarray(classes), key,
                  runs=runs, subset=subset, target="logit")
    close(mine, theirs)


def test_monotonicity_correlation(case, monkeypatch):
    model, _, x, classes, maps, _ = case
    steps, samples, key = 12, 3, jax.random.key(5)
    values = np.asarray(jax.random.uniform(key, (steps, samples, B)))
    draws = iter(values.reshape(-1, B))
    monkeypatch.setattr(np.random, "uniform", lambda *args, **kwargs: next(draws))
    metric = quantus.MonotonicityCorrelation(nr_samples=samples, features_in_step=3 * SIZE**2 // steps,
                                             perturb_baseline="uniform", eps=1e-5, **QUIET)
    theirs = run_quantus(metric, case, colour_maps(maps), softmax=True)
    mine = assess("monotonicity_correlation", model, jnp.asarray(x), jnp.asarray(maps), jnp.asarray(classes), key,
                  steps=steps, samples=samples, target="softmax")
    close(mine, theirs)


def test_road_imputation_and_curve(case, monkeypatch):
    """Quantus's ROAD fails on three-colour images (its indices run over 3 H W colour values but index
    H W pixels); given (B, 3, H, W) maps whose colours 1 and 2 sit below every pixel and a perturbation
    that keeps the first third of its indices, it removes the top floor(H W p / 100) pixels. Its imputation
    is compared directly, and its curve (the mean over images) with noise 0."""
    from quantus.functions.perturb_func import noisy_linear_imputation

    model, _, x, classes, maps, _ = case
    removed = np.asarray(perturbing.pixel_ranks(jnp.asarray(maps))) < 300
    for b in range(2):
        theirs = noisy_linear_imputation(nchw(x)[b], np.flatnonzero(removed[b]), noise=0.0)
        mine = np.asarray(perturbing.impute(jnp.asarray(x[b]), jnp.asarray(removed[b])))
        close(mine.transpose(2, 0, 1), theirs, rtol=0, atol=2e-4)
    a = np.concatenate([maps[:, None], np.full((B, 2, SIZE, SIZE), -1.0, np.float32)], axis=1)
    first_third = lambda arr, indices, **kw: noisy_linear_imputation(arr, indices[: len(indices) // 3], **kw)  # noqa: E731
    percentages = (5, 25, 50, 75, 95)
    metric = quantus.ROAD(percentages=list(percentages), noise=0.0, perturb_func=first_third, **QUIET)
    mine = ours("road", case, percentages=percentages, noise=0.0)
    for b in range(B):  # Quantus returns the batch's mean only: one image at a time gives each image's
        one = (model, case[1], x[b:b + 1], classes[b:b + 1], maps[b:b + 1], None)
        theirs = run_quantus(metric, one, a[b:b + 1], softmax=True)
        close(mine[b], [theirs[p] for p in percentages])
    # Least relevant first is most relevant first of the negated map (ties in pixel order both ways).
    lerf = ours("road", case, percentages=percentages, noise=0.0, order="lerf")
    negated = np.asarray(assess("road", model, jnp.asarray(x), -jnp.asarray(maps), jnp.asarray(classes),
                                percentages=percentages, noise=0.0))
    np.testing.assert_array_equal(lerf, negated)


def quantus_explain(model, inputs, targets, **kwargs):
    return torch_tiny_gradcam(model, inputs, targets)[:, None]


@pytest.mark.parametrize("name", ["max_sensitivity", "avg_sensitivity"])
def test_sensitivity(case, name):
    model, net, x, classes, _, _ = case
    samples, radius, key = 4, 0.2, jax.random.key(11)
    noise = iter([nchw(np.asarray(jax.random.uniform(jax.random.fold_in(key, t), x.shape, jnp.float32, -radius,
                                                     radius))).reshape(B, -1) for t in range(samples)])
    maps = np.asarray(explainer("gradcam")(model, jnp.asarray(x), jnp.asarray(classes)))
    metric = {"max_sensitivity": quantus.MaxSensitivity, "avg_sensitivity": quantus.AvgSensitivity}[name](
        nr_samples=samples, perturb_func=lambda arr, indices, **kw: arr + next(noise), **QUIET)
    theirs = run_quantus(metric, case, maps[:, None], explain_func=quantus_explain)
    mine = assess(name, model, jnp.asarray(x), jnp.asarray(maps), jnp.asarray(classes), key,
                  explain=explainer("gradcam"), samples=samples, radius=radius)
    close(mine, theirs, rtol=1e-3)


def test_local_lipschitz(case):
    model, net, x, classes, _, _ = case
    samples, sigma, key = 4, 0.1, jax.random.key(13)
    noise = iter([nchw(np.asarray(sigma * jax.random.normal(jax.random.fold_in(key, t), x.shape))).reshape(B, -1)
                  for t in range(samples)])
    maps = np.asarray(explainer("gradcam")(model, jnp.asarray(x), jnp.asarray(classes)))
    metric = quantus.LocalLipschitzEstimate(
        nr_samples=samples, perturb_func=lambda arr, indices, **kw: arr + next(noise), normalise=True, abs=False,
        normalise_func_kwargs={"normalise_axes": (1, 2, 3)}, disable_warnings=True, display_progressbar=False)
    theirs = run_quantus(metric, case, maps[:, None], explain_func=quantus_explain)
    mine = assess("local_lipschitz", model, jnp.asarray(x), jnp.asarray(maps), jnp.asarray(classes), key,
                  explain=explainer("gradcam"), samples=samples, sigma=sigma)
    close(mine, theirs, rtol=1e-3)


def test_random_logit(case, monkeypatch):
    model, net, x, classes, _, _ = case
    key = jax.random.key(17)
    draw = np.asarray(jax.random.randint(key, (B,), 0, model.num_classes - 1))
    monkeypatch.setattr(np.random, "randint", lambda *args, **kwargs: draw)
    maps = np.asarray(explainer("gradcam")(model, jnp.asarray(x), jnp.asarray(classes)))
    metric = quantus.RandomLogit(num_classes=model.num_classes, normalise=True, abs=False,
                                 normalise_func_kwargs={"normalise_axes": (1, 2, 3)}, disable_warnings=True,
                                 display_progressbar=False)
    theirs = run_quantus(metric, case, maps[:, None], explain_func=quantus_explain)
    mine = assess("random_logit", model, jnp.asarray(x), jnp.asarray(maps), jnp.asarray(classes), key,
                  explain=explainer("gradcam"))
    close(mine, theirs, rtol=1e-3, atol=1e-5)


def test_model_randomisation_against_quantus_models(case):
    """Quantus draws its randomised layers with torch's generator, which JAX cannot replay: its cascade of
    models is saved layer by layer, read into our `Tiny`, and our similarities compared with its scores;
    our own cascade is checked for the same layer order (top down) and the same cascading."""
    from quantus.helpers.model.pytorch_model import PyTorchModel

    model, net, x, classes, _, _ = case
    maps = np.asarray(explainer("gradcam")(model, jnp.asarray(x), jnp.asarray(classes)))
    snapshots = [(name, tiny_params(m)) for name, m in
                 PyTorchModel(net, softmax=False).get_random_layer_generator("top_down", 42)]
    metric = quantus.MPRT(normalise=False, abs=False, disable_warnings=True, display_progressbar=False)
    theirs = run_quantus(metric, case, maps[:, None], explain_func=quantus_explain)
    models = [model.replace(params=jax.tree.map(jnp.asarray, p)) for _, p in snapshots]
    mine = randomisation.similarities(models, jnp.asarray(x), jnp.asarray(maps), jnp.asarray(classes),
                                      explainer("gradcam"))
    close(mine, np.stack([theirs[name] for name, _ in snapshots], -1), rtol=1e-3, atol=1e-5)
    cascade = randomisation.cascade(model, jax.random.key(0))
    assert [name for name, _ in cascade] == [name for name, _ in snapshots] == ["fc", "conv2", "conv1"]
    for i, (_, m) in enumerate(cascade):  # the top i + 1 layers differ from the original, the rest do not
        changed = [not np.array_equal(m.params[n]["kernel"], model.params[n]["kernel"])
                   for n in ("fc", "conv2", "conv1")]
        assert changed == [j <= i for j in range(3)]


@pytest.mark.parametrize("name,metric,options", [
    ("pointing_game", quantus.PointingGame, {}),
    ("energy_pointing_game", quantus.AttributionLocalisation, {}),
    ("relevance_mass_accuracy", quantus.RelevanceMassAccuracy, {}),
    ("relevance_rank_accuracy", quantus.RelevanceRankAccuracy, {}),
    ("top_k_intersection", quantus.TopKIntersection, {"k": 100}),
    ("auc", quantus.AUC, {}),
])
def test_localisation(case, name, metric, options):
    _, _, _, _, maps, masks = case
    theirs = run_quantus(metric(**options, **QUIET), case, maps[:, None], s_batch=masks[:, None].astype(float))
    close(ours(name, case, **options), np.asarray(theirs, np.float64))


@pytest.mark.parametrize("name,metric", [("sparseness", quantus.Sparseness), ("complexity", quantus.Complexity),
                                         ("effective_complexity", quantus.EffectiveComplexity)])
def test_complexity(case, name, metric):
    """On a signed map (gradient x input's kind), with Quantus's absolute value on, as its default."""
    signs = np.where(np.random.default_rng(4).random((SIZE, SIZE)) < 0.3, -1.0, 1.0)
    maps = (case[4] * (np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % 7 > 2) * signs).astype(np.float32)
    theirs = run_quantus(metric(**{**QUIET, "abs": True}), case, maps[:, None])
    _, _, x, _, _, _ = case
    close(np.asarray(assess(name, None, jnp.asarray(x), jnp.asarray(maps))), theirs)


def rise_curve(net, image_chw, saliency, mode, step, substrate):
    """RISE's `CausalMetric.single_run` (Petsiuk et al.'s evaluation.py), restated for one image: softmax
    score of the image's top class, before each step of `step` pixels and after the last."""
    import scipy.ndimage

    h, w = saliency.shape
    img = torch.as_tensor(image_chw)[None]
    if substrate == "blur":
        impulse = np.zeros((11, 11))
        impulse[5, 5] = 1
        kern = np.zeros((3, 3, 11, 11), np.float32)
        for c in range(3):
            kern[c, c] = scipy.ndimage.gaussian_filter(impulse, 5)
        other = torch.nn.functional.conv2d(img, torch.from_numpy(kern), padding=5)
    else:
        other = torch.zeros_like(img)
    start, finish = (img.clone(), other) if mode == "del" else (other, img.clone())
    n_steps = (h * w + step - 1) // step
    order = np.flip(np.argsort(saliency.reshape(-1, h * w), axis=1), axis=-1)
    scores, c = [], None
    for i in range(n_steps + 1):
        with torch.no_grad():
            pred = torch.softmax(net(start), -1)
        c = int(pred.argmax()) if c is None else c
        scores.append(float(pred[0, c]))
        if i < n_steps:
            coords = order[:, step * i: step * (i + 1)]
            start.numpy().reshape(1, 3, h * w)[0, :, coords] = finish.numpy().reshape(1, 3, h * w)[0, :, coords]
    return np.array(scores)


@pytest.mark.parametrize("name,mode,substrate", [("deletion", "del", "zero"), ("insertion", "ins", "blur")])
def test_deletion_insertion_against_rise(case, name, mode, substrate):
    model, net, x, classes, maps, _ = case
    theirs = np.stack([rise_curve(net, nchw(x)[b], maps[b], mode, 48, substrate) for b in range(B)])
    mine = ours(name, case, steps=12, baseline=substrate, target="softmax")
    close(mine, theirs)
    close(faithfulness.area(jnp.asarray(mine)), [(c.sum() - c[0] / 2 - c[-1] / 2) / (len(c) - 1) for c in theirs])


def test_linear_model_closed_forms():
    """On y = sum_pixels w(p) sum_colours x(p) + b, Infidelity is 0 for the map w and pixel flipping's
    logit after step t is y minus w's share of the t * 48 highest pixels' values above the baseline."""
    w = np.random.default_rng(1).normal(size=(SIZE, SIZE)).astype(np.float32)

    class Linear:
        input_size, num_classes = SIZE, 2

        def __call__(self, images):
            y = jnp.einsum("bhwc,hw->b", images, jnp.asarray(w))
            return jnp.stack([y, -y], -1)

    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32))
    classes = jnp.zeros(2, jnp.int32)
    maps = jnp.broadcast_to(jnp.asarray(w), (2, SIZE, SIZE))
    key = jax.random.key(0)
    logit = lambda y, c: jnp.take_along_axis(y, c[:, None], -1)[:, 0]  # noqa: E731
    inf = faithfulness.infidelity(Linear(), x, maps, classes, key, patch=8, baseline="black", target=logit)
    np.testing.assert_allclose(np.asarray(inf), 0, atol=1e-6)
    curve = faithfulness.pixel_flipping(Linear(), x, maps, classes, key, steps=12, baseline="black", target=logit)
    xs, low = np.asarray(x), np.asarray(x).min(axis=(1, 2, 3))
    for b in range(2):
        order = np.argsort(-w.ravel(), kind="stable")
        for t in range(12):
            kept = np.ones(SIZE * SIZE, bool)
            kept[order[: 48 * (t + 1)]] = False
            expected = (w.ravel() * np.where(kept[:, None], xs[b].reshape(-1, 3), low[b]).sum(-1)).sum()
            np.testing.assert_allclose(float(curve[b, t]), expected, rtol=1e-4, atol=1e-4)


def test_layers_follow_the_forward_pass():
    """`randomisation.layers` orders a VGG's layers as its forward pass reads them, whatever their names' order."""
    from cam_jax.testing import random_model

    vgg = random_model("vgg11", num_classes=3, input_size=32, width=1 / 16)
    names = ["/".join(p) for p in randomisation.layers(vgg)]
    convs = [n for n in names if n.startswith("conv")]
    assert names[: len(convs)] == convs and names[len(convs):] == ["fc1", "fc2", "fc3"]
    assert convs == sorted(convs, key=lambda n: tuple(int(v) for v in n[4:].split("_")))


@pytest.mark.parametrize("name,options", [
    ("pixel_flipping", {"steps": 10}), ("deletion", {"steps": 7}), ("insertion", {"steps": 7}),
    ("region_perturbation", {"patch": 8}), ("selectivity", {"patch": 8}), ("infidelity", {"patch": 8}),
    ("road", {"percentages": (10, 60), "noise": 0.0}), ("monotonicity_correlation", {"steps": 5, "samples": 1}),
    ("auc", {}), ("relevance_rank_accuracy", {}), ("sparseness", {}),
])
def test_an_image_scores_the_same_alone_and_in_a_batch(case, name, options):
    """No image's value depends on the others' (Quantus's default normalisation is over the batch: ours is
    not). Uneven steps too: 576 pixels in 10 steps of 57 or 58."""
    model, _, x, classes, maps, masks = case
    extra = {"masks": masks} if QUALITY[name].kind == "masks" else {}
    key = jax.random.key(3)
    both = assess(name, model, jnp.asarray(x), jnp.asarray(maps), jnp.asarray(classes), key, **extra, **options)
    alone = assess(name, model, jnp.asarray(x[2:3]), jnp.asarray(maps[2:3]), jnp.asarray(classes[2:3]), key,
                   **{k: v[2:3] for k, v in extra.items()}, **options)
    if name != "monotonicity_correlation":  # its draws are per (step, sample, image): the same only at index 0
        close(np.asarray(both)[2], np.asarray(alone)[0], rtol=2e-5)
    if name == "pixel_flipping":  # every step removes 57 or 58 pixels: no step repeats another
        assert np.all(np.diff(faithfulness.step_counts(SIZE * SIZE, 10)) >= 57)


def test_matrix_cells_reexplain_as_the_step_explains():
    """With no noise the re-explanation is the map itself, for a CAM (A at 2 x 2, resized) and an input-space
    map (pooled to A's resolution and back, as the matrix compares it): max sensitivity 0."""
    from cam_jax.evaluation import quality_cells
    from cam_jax.evaluation.config import Config, cells
    from cam_jax.evaluation.step import explain_model, second_class
    from cam_jax.testing import random_model

    model = random_model("vgg11", num_classes=3, input_size=64, width=1 / 16)
    x = jax.random.normal(jax.random.key(0), (2, 64, 64, 3))
    config = Config(**cells(("saliency",)), metrics=("max_sensitivity",)).replace(targets=("logit",))
    second = second_class(model(x))
    explained = explain_model(model, x, second, config)
    with pytest.MonkeyPatch.context() as mp:  # the matrix takes each metric's defaults: radius 0 here
        mp.setitem(QUALITY, "max_sensitivity", QUALITY["max_sensitivity"]._replace(
            fn=functools.partial(robustness.max_sensitivity, radius=0.0)))
        values = quality_cells.measure(model, x, explained.cams, second, None, jax.random.key(0), config)
    values = values["max_sensitivity"]
    np.testing.assert_allclose(values, 0, atol=1e-5)


def test_explain_must_return_one_map_per_image(case):
    model, _, x, classes, maps, _ = case
    quantus_shaped = lambda m, xs, c: explainer("gradcam")(m, xs, c)[:, None]  # noqa: E731  (B, 1, H, W)
    with pytest.raises(ValueError, match="explain must return"):
        assess("max_sensitivity", model, jnp.asarray(x), jnp.asarray(maps), classes, explain=quantus_shaped)


def test_defaults_are_checked_against_the_images(case):
    model, _, x, _, maps, masks = case
    with pytest.raises(ValueError, match=r"k must be .*\(the default; pass another\)"):
        assess("top_k_intersection", None, jnp.asarray(x), jnp.asarray(maps), masks=masks)  # k 1000 > 576 pixels
    with pytest.raises(ValueError, match=r"patch must be .* got 28 \(the default"):
        assess("selectivity", model, jnp.asarray(x), jnp.asarray(maps))


def test_options_as_numpy_scalars_and_lists(case):
    model, _, x, classes, maps, _ = case
    a = assess("pixel_flipping", model, jnp.asarray(x), jnp.asarray(maps), classes, steps=np.int64(6))
    b = assess("pixel_flipping", model, jnp.asarray(x), jnp.asarray(maps), classes, steps=6)
    np.testing.assert_array_equal(a, b)
    r = assess("road", model, jnp.asarray(x), jnp.asarray(maps), classes, percentages=[10, 50], noise=0.0)
    assert r.shape == (B, 2)


@pytest.mark.parametrize("bad,message", [
    (dict(name="faithfulness"), "names several metrics"),
    (dict(name="max_sensitivity"), "pass explain="),
    (dict(options={"batch_images": 0}), "batch_images must be"),
    (dict(maps=np.zeros((B, 12, 12))), "maps must be"),
    (dict(maps=np.full((B, SIZE, SIZE), np.nan)), "NaN"),
    (dict(name="selectivity", options={"patch": 7}), "must divide"),
    (dict(name="pixel_flipping", options={"steps": 0}), "steps must be"),
    (dict(options={"colour": 1}), "takes the options"),
    (dict(options={"baseline": "grey"}), "baseline must be"),
    (dict(name="pointing_game"), "need masks"),
    (dict(name="max_sensitivity", options={"explain": 3}), "must be a function"),
    (dict(name="nope"), "unknown metric"),
])
def test_bad_input_is_named(case, bad, message):
    model, _, x, classes, maps, _ = case
    name = bad.get("name", "pixel_flipping")
    with pytest.raises((ValueError, TypeError), match=message):
        assess(name, model, jnp.asarray(x), bad.get("maps", maps), classes, **bad.get("options", {}))
