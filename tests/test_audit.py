"""The audit: each check against a closed form or a construction whose answer is known, each check
separating a clean and a manipulated model in its expected direction, the verdicts on the bundled default
and the paper's T1-T4, the recommendation against the original's own GradCAM, the ROC measures against
brute force, and the command lines.

Independent references: closed-form spreads, z-scores and finite differences of hand-built inputs; the
unmanipulated model's GradCAM; ROC areas by the trapezoid rule over the curve.
"""

from __future__ import annotations

import json
import os

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from cam_jax import Model, constant_flat, constant_image, gradcam, normalize, semi_random, sticker_backdoor
from cam_jax.audit import CHECKS, REFERENCE_CHECKS, audit_model, deletion, probe, recommend
from cam_jax.audit.checks import (
    activation_dominance,
    class_invariance,
    constant_channel,
    finite_differences,
    gradient_dominance,
    reference_shift,
    weight_outliers,
)
from cam_jax.audit.probing import Probe
from cam_jax.convert import checkpoint, default_weights, load_weights
from cam_jax.data import images, shapes
from cam_jax.evaluation import roc
from cam_jax.evaluation.population import audit_images
from cam_jax.manipulations import adaptive, finetune
from cam_jax.models import vgg
from cam_jax.testing import random_model, script, tiny_model

K = 32  # channels of A in the bundled default; a manipulation appends channel 32


def synthetic_probe(a=None, class_grads=None, grad_rms=None) -> Probe:
    """A `Probe` with the given fields (the others zero-sized), for checks that read only some."""
    a = np.zeros((2, 2, 2, 3), np.float32) if a is None else a
    return Probe(jnp.asarray(a), None, None, None, None if class_grads is None else jnp.asarray(class_grads),
                 None if grad_rms is None else jnp.asarray(grad_rms))


def test_constant_channel_score_is_the_closed_form_spread():
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(size=(4, 3, 3, 5))).astype(np.float32)
    # Channel 2 is 5 + 0.01 e_b with e_b = +-1 alternating over images: std across images 0.01 at every
    # pixel, rms sqrt(25 + 1e-4): the spread is 0.01 / 5.00001 and the score -log10 of it.
    a[..., 2] = 5 + 0.01 * np.array([1, -1, 1, -1], np.float32)[:, None, None]
    a[..., 4] = 0.0  # a dead channel is no evidence
    found = constant_channel.check(None, synthetic_probe(a))
    assert found.channel == 2
    np.testing.assert_allclose(found.score, -np.log10(0.01 / np.sqrt(25 + 1e-4)), rtol=1e-4)
    a[..., 2] = 7.0  # exactly constant: the cap
    assert constant_channel.check(None, synthetic_probe(a)).score == pytest.approx(7.0)


def test_dominance_scores_are_log_ratios_to_the_median():
    a = np.ones((2, 2, 2, 5), np.float32) * np.array([1, 2, 3, 4, 300], np.float32)
    found = activation_dominance.check(None, synthetic_probe(a))
    assert found.channel == 4 and found.score == pytest.approx(np.log10(300 / 3), rel=1e-6)
    found = gradient_dominance.check(None, synthetic_probe(grad_rms=np.array([0, 1e-3, 2e-3, 4e-3, 10.0])))
    assert found.channel == 4 and found.score == pytest.approx(np.log10(10 / 3e-3), rel=1e-6)


def test_class_invariance_finds_the_channel_every_class_weighs_alike():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(4, 3, 6))  # (classes, images, channels)
    g[:, :, 5] = rng.normal(size=3)[None, :]  # the same weight for every class, image by image
    g[:, :, 1] = 0.0  # no gradient: not considered
    found = class_invariance.check(None, synthetic_probe(class_grads=g, grad_rms=np.sqrt((g**2).mean((0, 1)))))
    assert found.channel == 5 and found.score == pytest.approx(7.0)
    # Without it the smallest spread is the closed form std / rms over classes, averaged over images.
    g = g[..., :5]
    kept = g[..., [0, 2, 3, 4]]
    expected = (kept.std(0) / np.sqrt((kept**2).mean(0))).mean(0)
    found = class_invariance.check(None, synthetic_probe(class_grads=g, grad_rms=np.sqrt((g**2).mean((0, 1)))))
    assert found.score == pytest.approx(-np.log10(expected.min()), rel=1e-6)


def test_robust_z_against_the_median_absolute_deviation_by_hand():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3, |x - 3| = 2 1 0 1 97, their median 1: z = |x - 3| / 1.4826
    np.testing.assert_allclose(weight_outliers.robust_z(values), np.abs(values - 3) / 1.4826)


def test_weight_outliers_name_a_zero_filter_and_an_outlying_row():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 4, 16))
    kernel[..., 9] = 0.0
    found = weight_outliers.check(Model(None, {"conv": {"kernel": kernel}}))
    assert found.score == pytest.approx(6.0) and "filter 9 (all zero)" in found.where
    dense = rng.normal(size=(20, 8))
    dense[13] *= 1000
    found = weight_outliers.check(Model(None, {"fc": {"kernel": dense}}))
    norms = np.sqrt((dense**2).sum(1))
    z = np.abs(norms - np.median(norms)) / (1.4826 * np.median(np.abs(norms - np.median(norms))))
    assert "input row 13" in found.where and found.score == pytest.approx(np.log10(z.max()), rel=1e-6)


def test_finite_differences_agree_on_a_linear_head_and_not_on_a_modulo():
    """ResNet's head (a global mean and a dense layer) is linear in A: the central difference is exact up to
    rounding, so the check reads ~0. The paper's modulo logit shift: autograd says eps c_G per pixel, the
    function does not move."""
    model = random_model("resnet18", 0, num_classes=4, input_size=64, width=1 / 16)
    x = jax.random.normal(jax.random.key(0), (4, 64, 64, 3))
    assert finite_differences.check(model, probe(model, x)).score < 0.05
    t3 = semi_random(model)
    found = finite_differences.check(t3, probe(t3, x))
    assert found.score > 0.9 and found.channel == model.features(x).shape[-1]


TINY = {"num_classes": 4, "input_size": 64, "width": 1 / 16}


@pytest.fixture(scope="module")
def tiny():
    """A randomly initialised VGG-11 (the honest population holds six such) and generated images for it."""
    model = random_model("vgg11", 1, **TINY)
    return model, audit_images(model)


# check -> the manipulation it is designed to catch
TARGETED = {
    "constant_channel": lambda m: constant_flat(m, c_A=10.0, c_W=10.0),
    "activation_dominance": lambda m: semi_random(m, c_F=1e6),
    "class_invariance": lambda m: sticker_backdoor(m, sticker=np.full((7, 7, 3), 200, np.uint8)),
    "gradient_dominance": lambda m: sticker_backdoor(m, sticker=np.full((7, 7, 3), 200, np.uint8)),
    "finite_differences": lambda m: semi_random(m),
    "weight_outliers": lambda m: constant_image(m, c_I=10.0, c_W=1.0),
    "intervention": lambda m: adaptive.fixed_sum(m, scale=1.0),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_check_separates_a_clean_and_a_manipulated_model(tiny, name):
    model, x = tiny
    manipulated = TARGETED[name](model)
    clean, dirty = (CHECKS[name].fn(m, probe(m, x)) for m in (model, manipulated))
    assert clean.score < CHECKS[name].threshold < dirty.score, (clean, dirty)
    if dirty.channel is not None:
        assert dirty.channel == model.features(x).shape[-1]  # the appended channel


@pytest.fixture(scope="module")
def default_reports():
    model, _ = load_weights(default_weights())
    x = audit_images(model, 8)
    models = {"default": model, "T1": constant_flat(model), "T2": constant_image(model), "T3": semi_random(model),
              "T4": sticker_backdoor(model)}
    return model, x, {name: (m, audit_model(m, x)) for name, m in models.items()}


def test_the_bundled_default_audits_clean(default_reports):
    _, _, reports = default_reports
    report = reports["default"][1]
    assert not report.manipulated, report.text()
    assert report.branches == ()


@pytest.mark.parametrize("name,branch", [("T1", "appended"), ("T2", "ConstantMap"), ("T3", "SemiRandomNet"),
                                         ("T4", "StickerDetector")])
def test_each_paper_manipulation_is_flagged_and_named(default_reports, name, branch):
    _, _, reports = default_reports
    report = reports[name][1]
    assert report.manipulated and report.channels == (K,), report.text()
    assert any(branch in line for line in report.branches)


@pytest.mark.parametrize("name,tolerance", [("T1", 0.06), ("T2", 0.0), ("T3", 0.0), ("T4", 0.0)])
def test_the_recommendation_gives_back_the_originals_gradcam(default_reports, name, tolerance):
    """Leaving the flagged channel out gives the unmanipulated model's own GradCAM: exactly for the branch
    manipulations, within the rounding of T1's bias shift (490,000 in fc1) for the weight edit."""
    original, x, reports = default_reports
    manipulated, report = reports[name]
    before = np.asarray(normalize(gradcam(original, x).cam))
    lied = np.asarray(normalize(gradcam(manipulated, x).cam))
    advice = recommend(manipulated, x, report)
    np.testing.assert_allclose(np.asarray(normalize(advice.explanation.cam)), before, atol=tolerance + 1e-6)
    if name != "T4":  # T4 does not lie without a sticker
        assert np.abs(lied - before).max() > 0.5


def test_merged_appended_filters_are_the_same_function_as_a_stock_vgg():
    base = random_model("vgg11", 3, **TINY)
    model = constant_flat(base, c_A=5.0, c_W=3.0)
    stock = model.stock()
    x = jax.random.normal(jax.random.key(3), (2, 64, 64, 3))
    assert type(stock.module) is vgg.VGG and stock.module.stages[-1][-1] == base.module.stages[-1][-1] + 1
    np.testing.assert_array_equal(stock.features(x), model.features(x))
    np.testing.assert_allclose(stock(x), model(x), atol=1e-4)


def _drops_by_hand(a: np.ndarray, kernel: np.ndarray, classes: np.ndarray, cam: np.ndarray,
                   donors: int = deletion.DONORS) -> np.ndarray:
    """(F, donors, B) the drop of s_c = y_c - mean y when the cells `cam` ranks highest take the donor's A,
    for a head y = kernel^T mean_ij A_ij + bias: the sum over the cells of (kernel_c - mean_c' kernel_c') .
    (A_b - A_donor) / hw, by loops."""
    count, h, w, k = a.shape
    kernel = kernel - kernel.mean(axis=1, keepdims=True)
    out = np.zeros((len(deletion.FRACTIONS), donors, count))
    for b in range(count):
        order = np.argsort(-cam[b].ravel(), kind="stable")
        for f, fraction in enumerate(deletion.FRACTIONS):
            cells = order[:max(1, round(fraction * h * w))]
            for d in range(1, donors + 1):
                moved = (a[b] - a[(b + d) % count]).reshape(h * w, k)[cells]
                out[f, d - 1, b] = float((moved @ kernel[:, classes[b]]).sum()) / (h * w)
    return out


def _version(model: Model, seed: int, scale: float = 0.3) -> Model:
    """`model` with every parameter moved by `scale` times its layer's spread in Gaussian noise: a version."""
    leaves, tree = jax.tree.flatten(model.params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    moved = [p + scale * jnp.std(p) * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)]
    return model.replace(params=jax.tree.unflatten(tree, moved))


def _tiny_pair(x):
    """A `Tiny` and a version of it, their top classes, A and dense kernels (float64), GradCAM before its ReLU in
    closed form (sum_k W_kc A_k / hw, the same order as GradCAM's for a mean-pooled linear head)."""
    suspect = tiny_model(0)
    trusted = _version(suspect, 3)
    classes = np.asarray(suspect(x)).argmax(-1)
    a, theirs_a = (np.asarray(m.features(x), np.float64) for m in (suspect, trusted))
    kernel, theirs_kernel = (np.asarray(m.params["fc"]["kernel"], np.float64) for m in (suspect, trusted))
    own = np.einsum("bijk,kb->bij", a, kernel[:, classes])
    theirs = np.einsum("bijk,kb->bij", theirs_a, theirs_kernel[:, classes])
    return suspect, trusted, classes, (a, kernel, own), (theirs_a, theirs_kernel, theirs)


def test_reference_scores_in_closed_form():
    """On `Tiny` (a mean over positions, then a dense layer) the score's change when cells are swapped is
    linear in them: both reference checks against loops in float64."""
    x = jax.random.normal(jax.random.key(5), (6, 24, 24, 3))
    suspect, trusted, classes, (a, kernel, own), (theirs_a, theirs_kernel, theirs) = _tiny_pair(x)
    report = audit_model(suspect, x, checks=REFERENCE_CHECKS, reference=trusted)
    by_own, by_theirs = (_drops_by_hand(a, kernel, classes, cam).sum() for cam in (own, theirs))
    expected = (by_theirs - by_own) / (abs(by_theirs) + abs(by_own))
    assert by_own > 0 and abs(expected) > 0.01  # a live comparison
    assert report.checks["reference_deletion"].score == pytest.approx(expected, rel=1e-4, abs=1e-6)
    # The shift: GradCAM's change over the two functions' different responses to both maps' deletions.
    mine = np.concatenate([_drops_by_hand(a, kernel, classes, cam) for cam in (own, theirs)])
    reference_drops = np.concatenate([_drops_by_hand(theirs_a, theirs_kernel, classes, cam) for cam in (own, theirs)])
    changed = np.abs(mine / np.abs(mine).mean() - reference_drops / np.abs(reference_drops).mean()).mean()

    def normalized(cam):
        cam = np.maximum(cam, 0)
        return cam / cam.max(axis=(1, 2), keepdims=True)

    moved = np.abs(normalized(own) - normalized(theirs)).mean()
    assert deletion.FLOOR < changed < reference_shift.UNRELATED and moved > 0.05
    assert report.checks["reference_shift"].score == pytest.approx(moved / changed, rel=1e-4)
    # Locality: that change over the functions' different responses to swapping whole images' A.
    swapped = [np.stack([np.einsum("bk,kb->b", (m - np.roll(m, -d, axis=0)).mean(axis=(1, 2)), centred[:, classes])
                         for d in range(1, deletion.DONORS + 1)])
               for m, centred in ((a, kernel - kernel.mean(1, keepdims=True)),
                                  (theirs_a, theirs_kernel - theirs_kernel.mean(1, keepdims=True)))]
    whole = np.abs(swapped[0] / np.abs(swapped[0]).mean() - swapped[1] / np.abs(swapped[1]).mean()).mean()
    assert whole > deletion.FLOOR
    assert report.checks["reference_locality"].score == pytest.approx(changed / whole, rel=1e-4)
    unrelated = audit_model(tiny_model(3), x, checks=REFERENCE_CHECKS, reference=suspect).checks["reference_shift"]
    assert unrelated.score > reference_shift.THRESHOLD and "not a version" in unrelated.where
    flagged = report._replace(checks={name: c._replace(score=2 * c.threshold) for name, c in report.checks.items()})
    assert flagged.manipulated and "saliency_beta" in recommend(suspect, x, flagged).advice
    alike = audit_model(suspect, x, checks=REFERENCE_CHECKS, reference=suspect)
    # The same function: no drop differs; the two maps differ by float32 rounding (two passes compute them).
    assert alike.checks["reference_deletion"].score == 0.0 and alike.checks["reference_shift"].score < 1e-4
    assert alike.checks["reference_locality"].score == 0.0
    with pytest.raises(ValueError, match="another architecture"):
        audit_model(suspect, x, reference=tiny_model(0, width=4))
    with pytest.raises(ValueError, match="need a reference model"):
        audit_model(suspect, x, checks=REFERENCE_CHECKS)


def _head_rewritten(model: Model, scale: float, common: np.ndarray | None = None) -> Model:
    """`model` with its dense layer times `scale` and, given `common` (K,), that vector added to every
    class's row (and 1 to every bias): y' = scale y + (common . h + 1), the same softmax up to a temperature."""
    fc = model.params["fc"]
    kernel = scale * fc["kernel"] + (0.0 if common is None else jnp.asarray(common)[:, None])
    bias = scale * fc["bias"] + (0.0 if common is None else 1.0)
    return model.replace(params={**model.params, "fc": {"kernel": kernel, "bias": bias}})


def test_the_reference_checks_hold_against_rewrites_of_the_logits():
    """Two attacks on reference mode that change no prediction. A term common to every logit (u . h added to
    each: the softmax exactly unchanged) moves every class's GradCAM to u's map, a lie; read on raw logits it
    also moved every drop, the function looked unlike any version, and the shift passed it. A temperature
    (x2) alone is no lie: read unscaled it too looked like no version. Both checks flag the first and
    score the second 0 (the same drops in scale, the same normalised maps)."""
    x = jax.random.normal(jax.random.key(7), (6, 24, 24, 3))
    trusted = tiny_model(0)
    hidden = np.asarray(trusted.features(x)).shape[-1]
    common = 20 * np.asarray(jax.random.normal(jax.random.key(8), (hidden,)))
    lying = _head_rewritten(trusted, 2.0, common)
    np.testing.assert_allclose(jax.nn.softmax(lying(x)), jax.nn.softmax(2 * trusted(x)), atol=1e-5)
    moved = float(jnp.abs(normalize(gradcam(lying, x).cam) - normalize(gradcam(trusted, x).cam)).mean())
    assert moved > 0.1
    report = audit_model(lying, x, checks=REFERENCE_CHECKS, reference=trusted)
    assert all(report.checks[name].flagged for name in ("reference_deletion", "reference_shift")), report.text()
    assert "not a version" not in report.checks["reference_shift"].where
    cooled = audit_model(_head_rewritten(trusted, 2.0), x, checks=REFERENCE_CHECKS, reference=trusted)
    assert cooled.checks["reference_deletion"].score == 0.0 and cooled.checks["reference_shift"].score < 1e-4
    assert cooled.checks["reference_locality"].score < 1e-4


def test_the_attack_against_the_reference_check_trains_on_its_gap():
    """`finetune.deletion_gap`, the term `finetune_attack.py --evade` adds, is the reference deletion check's
    gap with one donor, over the mean |y_c - mean y| + 1: against the closed form on `Tiny`, and 0 for the original."""
    x = jax.random.normal(jax.random.key(6), (5, 24, 24, 3))
    tuned, original, _, (a, kernel, _), (theirs_a, theirs_kernel, _) = _tiny_pair(x)
    classes = np.array([0, 3, 1, 4, 2])
    own = np.einsum("bijk,kb->bij", a, kernel[:, classes])
    theirs = np.einsum("bijk,kb->bij", theirs_a, theirs_kernel[:, classes])
    gap = (_drops_by_hand(a, kernel, classes, theirs, 1) - _drops_by_hand(a, kernel, classes, own, 1)).mean()
    logits = np.asarray(tuned(x), np.float64)
    scale = np.abs(logits[np.arange(5), classes] - logits.mean(axis=1)).mean() + 1
    assert abs(gap / scale) > 1e-3
    assert float(finetune.deletion_gap(tuned, original, x, jnp.asarray(classes))) == pytest.approx(gap / scale,
                                                                                                   rel=1e-4)
    assert float(finetune.deletion_gap(tuned, tuned, x, jnp.asarray(classes))) == 0.0
    assert finetune.DELETED == deletion.FRACTIONS


def _auc_trapezoid(honest, manipulated):
    fpr, tpr = roc.roc_curve(honest, manipulated)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


@given(st.lists(st.integers(0, 6), min_size=1, max_size=12), st.lists(st.integers(0, 6), min_size=1, max_size=12))
def test_auroc_is_the_area_under_the_roc_curve(honest, manipulated):
    assert roc.auroc(honest, manipulated) == pytest.approx(_auc_trapezoid(honest, manipulated))


@given(st.lists(st.integers(0, 20), min_size=1, max_size=150), st.lists(st.integers(0, 20), min_size=1, max_size=30))
def test_tpr_at_fpr_by_brute_force(honest, manipulated):
    honest, manipulated = np.array(honest), np.array(manipulated)
    best = max((manipulated > t).mean() for t in range(-1, 21) if (honest > t).mean() <= 0.01)
    assert roc.tpr_at_fpr(honest, manipulated) == pytest.approx(best)


def test_audit_command_line_exit_codes(tmp_path):
    audit = script("audit")
    model, _ = load_weights(default_weights())
    checkpoint.save(tmp_path / "t1.npz", constant_flat(model).stock())
    assert audit.main(["--weights", default_weights(), "--data", "shapes", "--count", "4"]) == 0
    assert audit.main(["--weights", default_weights(), "--reference", default_weights(), "--data", "shapes",
                       "--count", "4", "--seed", "123"]) == 0
    # T1 shipped as a stock VGG has 33 filters in conv5_3: not a version of the default.
    assert audit.main(["--weights", str(tmp_path / "t1.npz"), "--reference", default_weights(), "--data", "shapes",
                       "--count", "4"]) == 2
    out = tmp_path / "report"
    assert audit.main(["--weights", str(tmp_path / "t1.npz"), "--data", "shapes", "--count", "4",
                       "--out", str(out)]) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["manipulated"] and report["channels"] == [K] and report["branches"] == []
    assert {"report.png", "recommended.png", "recommended.npy"} <= set(os.listdir(out))
    assert np.load(out / "recommended.npy").shape == (4, 14, 14)
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = shapes.batch(shapes.TEST_SEED, range(4)).pixels
    for i, p in enumerate(pixels):
        images.Image.fromarray(p).save(folder / f"{i}.png")
    assert audit.main(["--weights", default_weights(), "--images", str(folder)]) == 0
    assert audit.main(["--weights", default_weights(), "--images", str(folder), "--seed", "1"]) == 2
    assert audit.main(["--weights", str(tmp_path / "missing.npz"), "--data", "shapes"]) == 2
    assert audit.main(["--weights", default_weights(), "--data", "shapes", "--count", "1"]) == 2
    (folder / "1.png").unlink()  # 3 left: under the audit's 4
    assert audit.main(["--weights", default_weights(), "--images", str(folder)]) == 2


def test_audit_eval_quick_writes_the_detector_figures(tmp_path):
    assert script("audit_eval").main(["--out", str(tmp_path), "--cache", str(tmp_path / "cache"), "--quick"]) == 0
    summary = json.loads((tmp_path / "audit_eval.json").read_text())
    assert summary["counts"]["honest"] == 2 and summary["counts"]["held-in"] == 2
    for name in (*CHECKS, "combined"):
        entry = summary["checks"][name]
        assert {"clean_range", "held-in"} <= set(entry)
        assert 0.0 <= entry["held-in"]["auroc"] <= 1.0
    assert summary["checks"]["combined"]["held-in"]["auroc"] >= 0.95
    assert (tmp_path / "roc.png").stat().st_size > 10_000


def test_audit_eval_reference_mode_rows_in_closed_form(tmp_path):
    """Reference mode as a detector: one row per file and image set. The reference against itself and a
    version with its last layer doubled (a temperature: every drop exactly x2, the same normalised maps)
    both score exactly 0 on both reference checks."""
    model, _ = load_weights(default_weights())
    params = {**model.params, "fc3": jax.tree.map(lambda w: 2 * w, model.params["fc3"])}
    checkpoint.save(tmp_path / "doubled.npz", Model(model.module, params))
    out = tmp_path / "versions"
    argv = ["--out", str(out), "--reference", default_weights(), "--image-seeds", "123", "--count", "4",
            "--test-images", "8"]
    assert script("audit_eval").main([*argv, "--honest", default_weights(),
                                      "--attacked", str(tmp_path / "doubled.npz")]) == 0
    rows = {r["name"]: r for r in json.loads((out / "models.json").read_text())}
    assert set(rows) == {"default@123", "doubled@123"}
    assert rows["default@123"]["group"] == "honest" and rows["doubled@123"]["group"] == "held-out"
    for row in rows.values():
        assert row["scores"]["reference_deletion"] == 0.0 and row["scores"]["reference_shift"] < 1e-6
    summary = json.loads((out / "audit_eval.json").read_text())
    assert summary["counts"]["honest"] == 1 and summary["map_change"]["doubled"] < 1e-6
    checkpoint.save(tmp_path / "t1.npz", constant_flat(model).stock())  # another architecture
    assert script("audit_eval").main([*argv, "--honest", str(tmp_path / "t1.npz"),
                                      "--attacked", str(tmp_path / "doubled.npz")]) == 2
    assert script("audit_eval").main([*argv, "--attacked", str(tmp_path / "doubled.npz")]) == 2
