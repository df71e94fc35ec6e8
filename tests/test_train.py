"""The generated data set, training, batch-norm folding, and the shipped default weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cam_jax.convert import checkpoint
from cam_jax.data import images, shapes
from cam_jax.models import build_model, fold_batch_norm, init_params
from cam_jax.models import training as train


def test_generator_is_deterministic_and_splits_differ():
    a, b = shapes.batch(shapes.TEST_SEED, range(4), 96), shapes.batch(shapes.TEST_SEED, range(4), 96)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.masks, b.masks)
    c = shapes.batch(shapes.TEST_SEED, [2], 96)  # any index on its own gives the same image
    np.testing.assert_array_equal(c.pixels[0], a.pixels[2])
    d = shapes.batch(shapes.TRAIN_SEED, range(4), 96)
    assert not np.array_equal(d.pixels, a.pixels)


def test_masks_cover_exactly_the_drawn_object():
    """Rendering twice with the object recoloured changes exactly the masked pixels."""
    for index in range(6):
        pixels, label, mask = shapes.render(7, index, 128)
        assert 0.01 < mask.mean() < 0.5
        # The object is one flat colour plus noise: inside the mask, pixel spread is the noise alone.
        inside = pixels[mask].astype(float)
        assert inside.std(axis=0).max() < 0.04 * 255 * 1.3
        # Closed form for the disk: the mask is the set of pixels within the radius of its centre.
        if label == 0:
            ys, xs = np.nonzero(mask)
            cy, cx = ys.mean(), xs.mean()
            r = np.sqrt(mask.sum() / np.pi)
            yy, xx = np.mgrid[:128, :128]
            disk = np.hypot(yy - cy, xx - cx) <= r
            assert (disk != mask).mean() < 0.01


def test_classes_balanced_and_not_given_away_by_colour():
    b = shapes.batch(shapes.TRAIN_SEED, range(300), 64)
    counts = np.bincount(b.labels, minlength=len(shapes.CLASSES))
    assert counts.min() > 30
    mean_colour = np.stack([b.pixels[i][b.masks[i]].mean(0) for i in range(300)])
    per_class = np.stack([mean_colour[b.labels == k].mean(0) for k in range(len(shapes.CLASSES))])
    assert np.ptp(per_class, axis=0).max() < 40  # of 255: colour carries no class


@pytest.mark.parametrize("arch", ["vgg16", "vit_b_16"])
def test_a_few_steps_lower_the_loss(arch):
    """A VGG trains with batch norm, then folded; a ViT (no batch norm) as it is."""
    narrow = {"width": 1 / 16} if arch == "vgg16" else {"width": 1 / 12, "layers": 1}
    module = build_model(arch, num_classes=len(shapes.CLASSES), input_size=64, **narrow)
    b = shapes.batch(shapes.TRAIN_SEED, range(32), 64)
    x, y = images.normalize(b.pixels), b.labels
    losses = []
    model = train.fit(module, iter([(x, y)] * 12), 12, learning_rate=3e-3,
                      on_step=lambda k, loss, acc: losses.append(loss))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert type(model.module) is type(module) and not model.collections


def test_fold_batch_norm_matches_flax_batchnorm_in_eval_mode():
    module = build_model("vgg11", num_classes=4, input_size=32, width=1 / 16).clone(batch_norm=True)
    params = init_params(module, seed=3)
    rng = np.random.default_rng(0)
    x0 = jnp.zeros((1, 32, 32, 3))
    stats = jax.tree.map(
        lambda s: jnp.asarray(rng.uniform(0.5, 2.0, s.shape), s.dtype),
        jax.eval_shape(module.init, jax.random.key(0), x0)["batch_stats"],
    )
    params = jax.tree_util.tree_map_with_path(
        lambda p, v: v + jnp.asarray(rng.normal(0, 0.3, v.shape), v.dtype) if p[-2].key.startswith("bn") else v, params
    )
    x = jnp.asarray(rng.normal(size=(3, 32, 32, 3)), jnp.float32)
    expected = module.apply({"params": params, "batch_stats": stats}, x)  # running averages
    plain, folded = fold_batch_norm(module, {"params": params, "batch_stats": stats})
    assert not plain.batch_norm
    np.testing.assert_allclose(np.asarray(plain.apply({"params": folded}, x)), np.asarray(expected),
                               rtol=1e-4, atol=1e-5)


DEFAULT = "weights/default.npz"


def test_shipped_default_reaches_its_recorded_accuracy():
    """The committed weights load and classify a fresh test split as recorded in their card."""
    import os

    if not os.path.exists(DEFAULT):
        pytest.fail(f"{DEFAULT} is missing: run scripts/train_default.py")
    model, meta = checkpoint.load(DEFAULT)
    assert meta["class_names"] == list(shapes.CLASSES)
    test = shapes.batch(shapes.TEST_SEED, range(1000, 1200))  # not the images the card's figure used
    acc = train.accuracy(model, images.normalize(test.pixels), test.labels)
    assert acc >= meta["test_accuracy"] - 0.04 and acc >= 0.93
