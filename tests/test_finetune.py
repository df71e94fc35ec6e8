"""Attacks by fine-tuning: the fooling losses on hand-made maps (closed forms), their gradient with
respect to the parameters against finite differences, a few steps on the default model, and the
command line with eval.py reading its output."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cam_jax.convert import checkpoint, default_weights, load_weights
from cam_jax.data import shapes, stickers
from cam_jax.manipulations import finetune, fooling
from cam_jax.manipulations.fooling import AttackBatch, Views
from cam_jax.models import build_model
from cam_jax.models.vgg import VGG
from cam_jax.testing import model_and_images, script, write_tiny_weights


def fixed(tuned, original=None):
    """Views that return the given (B, h, w) maps whatever they are asked."""
    original = tuned if original is None else original
    return Views(lambda x, c: jnp.asarray(tuned), lambda x, c: jnp.asarray(original))


def test_losses_and_success_tests_on_hand_made_maps():
    b = AttackBatch(jnp.zeros((1, 8, 8, 3)), jnp.zeros(1, jnp.int32), jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 4, 4)))
    border = fooling.border_mask(4, 1)
    assert border.sum() == 12 and border[1:3, 1:3].sum() == 0
    centre = 1 - border[None]
    loc = fooling.location(4)
    np.testing.assert_allclose(loc.loss(fixed(centre), b), 1.0)  # every pixel wrong
    np.testing.assert_allclose(loc.loss(fixed(border[None]), b), 0.0)
    assert not loc.fooled(fixed(centre), b)[0] and loc.fooled(fixed(border[None]), b)[0]

    # Top 25 % of a 4x4 map: its 4 largest pixels; the tuned map's mean there.
    original = np.arange(16, dtype=np.float32).reshape(1, 4, 4) / 15
    tuned = original[:, ::-1, ::-1].copy()  # the largest pixels become the smallest
    top = fooling.top_k(0.25)
    np.testing.assert_allclose(top.loss(fixed(tuned, original), b), tuned[0].ravel()[12:].mean(), rtol=1e-6)
    assert top.fooled(fixed(tuned, original), b)[0] and not top.fooled(fixed(original, original), b)[0]

    # Centre of mass of a single hot cell at (row 0, column 3) of a 4x4 map: (0.125, 0.875) of the side.
    corner = np.zeros((1, 4, 4), np.float32)
    corner[0, 0, 3] = 1
    np.testing.assert_allclose(fooling.center_of_mass(jnp.asarray(corner)), [[0.125, 0.875]])
    flat = np.ones((1, 4, 4), np.float32)
    cm = fooling.center_mass(0.25)
    np.testing.assert_allclose(cm.loss(fixed(corner, flat), b), -(0.375 + 0.375), rtol=1e-6)
    assert cm.fooled(fixed(corner, flat), b)[0] and not cm.fooled(fixed(flat, flat), b)[0]

    target = fooling.target_map(4, border)
    np.testing.assert_allclose(target.loss(fixed(centre), b), 1.0)
    assert target.fooled(fixed(border[None], centre), b)[0]

    # Backdoor: a sticker over cell (3, 3); the stickered map peaks there and the clean map is faithful.
    on = np.zeros((1, 4, 4), np.float32)
    on[0, 3, 3] = 1
    bd = b._replace(sticker_maps=jnp.asarray(on))
    door = fooling.backdoor()
    assert door.fooled(fixed(on, on), bd)[0] and not door.fooled(fixed(corner, corner), bd)[0]
    np.testing.assert_allclose(door.loss(fixed(on, flat), bd), 0.0 + np.abs(on - flat).mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown fooling loss"):
        fooling.get("nope", 4)


def heo_torch(tuned, original):
    """Heo et al.'s losses as their module/sequential.py writes them (location, topk, center_mass), on
    (B, 1, l, l) torch maps: {name: (the training loss, the per-image `keep_batch` value)}."""
    torch = pytest.importorskip("torch")

    def normalize(r):
        r = r - r.min(dim=1)[0].min(dim=1)[0].min(dim=1)[0].reshape(-1, 1, 1, 1)
        return r / (r.max(dim=1)[0].max(dim=1)[0].max(dim=1)[0].reshape(-1, 1, 1, 1) + 1e-8)

    n, _, h, w = tuned.shape
    k = h // 7
    mask = torch.ones_like(tuned)
    mask[:, :, k:-k, k:-k] = 0
    frame = ((mask.reshape(n, -1) - tuned.reshape(n, -1)) ** 2).mean(dim=1)
    t, o = normalize(tuned).reshape(n, -1), normalize(original).reshape(n, -1)
    _, index = o.topk(h * w // 10)
    top = torch.stack([(t[i, ind] ** 2).mean() for i, ind in enumerate(index)])

    def centre(r):
        r = normalize(r)
        total = r.sum(dim=(1, 2, 3))
        hv, wv = torch.arange(1, h + 1.0).reshape(1, 1, h, 1), torch.arange(1, w + 1.0).reshape(1, 1, 1, w)
        return ((r.sum(dim=3, keepdim=True) * hv).sum(dim=2).squeeze() / (total + 1e-8),
                (r.sum(dim=2, keepdim=True) * wv).sum(dim=3).squeeze() / (total + 1e-8))

    (th, tw), (oh, ow) = centre(tuned), centre(original)
    distance = ((th - oh) ** 2 + (tw - ow) ** 2)
    return {"heo_location": (frame.mean(), frame), "heo_topk": (top.mean(), top),
            "heo_center_mass": (-((th - oh).abs() + (tw - ow).abs()).mean(), (distance / 2) ** 0.5 / (w - 1))}


def test_heo_objectives_match_their_code():
    """Ours against Heo et al.'s torch code restated, on random maps of 14 x 14 cells (VGG's at 224 px):
    the training loss, and the fooled test as the per-image value against their threshold 0.15."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    tuned, original = (np.maximum(rng.normal(size=(6, 14, 14)), 0).astype(np.float32) for _ in range(2))
    tuned[:2] = fooling.border_mask(14)  # fooled by location
    tuned[2] = np.roll(original[2], 5, axis=1)  # moved: fooled by centre mass, perhaps
    b = AttackBatch(jnp.zeros((6, 8, 8, 3)), jnp.zeros(6, jnp.int32), jnp.zeros((6, 8, 8, 3)), jnp.zeros((6, 14, 14)))
    theirs = heo_torch(torch.from_numpy(tuned[:, None]), torch.from_numpy(original[:, None]))
    for name, (loss, value) in theirs.items():
        objective = fooling.get(name, 14)
        assert not objective.blank
        np.testing.assert_allclose(objective.loss(fixed(tuned, original), b), loss.numpy(), rtol=1e-5)
        expected = value.numpy() > 0.15 if name == "heo_center_mass" else value.numpy() < 0.15
        np.testing.assert_array_equal(objective.fooled(fixed(tuned, original), b), expected)
    assert fooling.get("heo_location", 14).fooled(fixed(tuned, original), b)[:2].all()


@pytest.mark.parametrize("name", list(fooling.FOOLINGS))
def test_fooling_gradient_matches_finite_differences(name):
    """d/dt L(params + t v) by central differences in float64 against <grad L, v>, on a three-stage VGG
    (8x8 maps at 32 pixels) whose tuned parameters are a small step away from the original (so the
    centre-mass shift and the maps differ)."""
    with jax.enable_x64(True):
        module = VGG(stages=((4,), (8,), (8,)), hidden=16, num_classes=4, input_size=32)
        model, _ = model_and_images((module, 0))
        model = jax.tree.map(lambda p: p.astype(jnp.float64), model)
        data = shapes.batch(shapes.TEST_SEED, range(3), 32)
        batch = finetune.batch_of(data.pixels, data.labels, np.arange(3), 0,
                                  stickers.sticker_pixels(stickers.smiley(7)), model.cam_size)
        batch = jax.tree.map(lambda v: v.astype(jnp.float64) if v.dtype == jnp.float32 else v, batch)
        loss = finetune.objective(model, fooling.get(name, model.cam_size))
        keys = iter(jax.random.split(jax.random.key(1), 2 * len(jax.tree.leaves(model.params))))
        noise = lambda p, scale: scale * jnp.std(p) * jax.random.normal(next(keys), p.shape, p.dtype)  # noqa: E731
        params = jax.tree.map(lambda p: p + noise(p, 0.05), model.params)
        direction = jax.tree.map(lambda p: noise(p, 1.0), model.params)

        def fooling_and_blank(p):  # the fooling loss and the term that keeps the map from going blank
            aux = loss(p, batch)[1]
            return aux["fooling"] + aux["blank"]

        def f(t):
            return fooling_and_blank(jax.tree.map(lambda p, v: p + t * v, params, direction))

        grads = jax.grad(fooling_and_blank)(params)
        analytic = sum(jnp.vdot(g, v) for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True))
        t = 1e-6
        numeric = (f(t) - f(-t)) / (2 * t)
        assert abs(float(analytic)) > 1e-8, "a live gradient"
        np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-4)


@pytest.fixture(scope="module")
def default():
    return load_weights(default_weights())[0]


def test_a_few_steps_lower_the_fooling_loss_and_keep_the_accuracy(default):
    sticker = stickers.sticker_pixels(stickers.smiley(14))
    objective = fooling.get("location", default.cam_size)
    train = finetune.attack_batches(shapes.TRAIN_SEED, 8, 6, 224, sticker, default.cam_size)
    attacked, log = finetune.finetune(default, train, objective, optax.adam(3e-4), 6, keep="logits", progress=False)
    assert [r["step"] for r in log] == list(range(6)) and attacked.module == default.module
    held = shapes.batch(shapes.TEST_SEED, range(24), 224)
    b = finetune.batch_of(held.pixels, held.labels, np.arange(24), 0, sticker, default.cam_size)
    before = finetune.objective(default, objective)(default.params, b)[1]
    after = finetune.objective(default, objective)(attacked.params, b)[1]
    assert float(after["fooling"]) < float(before["fooling"]) - 0.003  # measured: 0.5466 -> 0.5382
    assert float(after["accuracy"]) >= float(before["accuracy"]) - 1 / 24
    with pytest.raises(ValueError, match="ran out after 0 of 2"):
        finetune.finetune(default, iter([]), objective, optax.adam(3e-4), 2, keep="logits", progress=False)
    with pytest.raises(ValueError, match="lambda"):
        finetune.objective(default, objective, lam=float("nan"))


def test_command_line_writes_an_attack_that_eval_reads(tmp_path, capsys):
    eval_script, finetune_attack = script("eval"), script("finetune_attack")
    weights = write_tiny_weights(tmp_path / "tiny.npz")  # a 64-pixel model of the shapes: quick
    out = tmp_path / "loc.npz"
    assert finetune_attack.main(["--loss", "location", "--weights", weights, "--out", str(out), "--steps", "2",
                                 "--batch-size", "4", "--test-images", "4", "--methods", "gradcam", "eigencam",
                                 "--no-progress"]) == 0
    result = json.loads((tmp_path / "loc.json").read_text())
    assert result["images"] == 4 and set(result["moved"]["clean"]) == {"gradcam", "eigencam"}
    assert (tmp_path / "loc.csv").read_text().count("\n") == 3  # header + two steps
    attacked, meta = checkpoint.load(out)
    assert meta["attack"]["loss"] == "location"
    # Bad arguments are refused before any work.
    assert finetune_attack.main(["--loss", "location", "--out", str(tmp_path / "x.txt")]) == 2
    assert finetune_attack.main(["--loss", "location", "--out", str(out), "--lr", "nan"]) == 2
    assert "--lr must be in (0, 1]" in capsys.readouterr().err
    # eval.py takes it as a row; a file of another architecture is refused before evaluating.
    results = tmp_path / "results"
    assert eval_script.main(["--weights", weights, "--attacked", str(out), "--limit", "4", "--batch-size", "4",
                             "--out", str(results), "--no-progress"]) == 0
    rows = {(r["model"], r["data"]) for r in json.loads((results / "results.json").read_text())["rows"]}
    assert {("FT-loc", "clean"), ("FT-loc", "sticker")} <= rows
    other = tmp_path / "other.npz"
    tiny, _ = model_and_images((build_model("vgg11", num_classes=4, input_size=64, width=1 / 16), 0))
    checkpoint.save(other, tiny)
    assert eval_script.main(["--weights", weights, "--attacked", str(other), "--out", str(tmp_path / "r2")]) == 2
    assert "architecture" in capsys.readouterr().err
