"""Training a classifier (VGG or ResNet with batch norm, or a ViT) with optax on batches from a stream.

The bundled default model and the audit's population of honest models are trained here, on
batches from `cam_jax.data.shapes.training_batches`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from cam_jax.model import Model
from cam_jax.models.batch_norm import fold_batch_norm
from cam_jax.models.init import init_params

State = tuple[dict, dict]  # (params, batch_stats)
Step = Callable[[State, optax.OptState, jax.Array, jax.Array], tuple[State, optax.OptState, jax.Array, jax.Array]]


def make_step(module: nn.Module, optimizer: optax.GradientTransformation) -> Step:
    """Jitted ((params, batch_stats), opt_state, x (B, H, W, 3), labels (B,))
    -> ((params, batch_stats), opt_state, loss, accuracy), batch norm in training mode (a module without
    batch norm, a ViT, has empty batch_stats)."""

    def loss_fn(params, stats, x, labels):
        if not stats:
            logits = module.apply({"params": params}, x)
        else:
            logits, updated = module.apply({"params": params, "batch_stats": stats}, x, method=_train_forward,
                                           mutable=["batch_stats"])
            stats = updated["batch_stats"]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, (stats, (logits.argmax(-1) == labels).mean())

    @jax.jit
    def step(state, opt_state, x, labels):
        params, stats = state
        (loss, (stats, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), stats), opt_state, loss, acc

    return step


def _train_forward(module: nn.Module, x: jax.Array) -> jax.Array:
    # Batch statistics in the convs, no dropout: the stream never repeats an image.
    return module.head(module.features(x, train=True))


def fit(
    module: nn.Module,
    batches: Iterator[tuple[np.ndarray, np.ndarray]],
    steps: int,
    learning_rate: float = 1e-3,
    seed: int = 0,
    on_step: Callable[[int, float, float], None] | None = None,
    warm_start: Model | None = None,
) -> Model:
    """Train `module` and return the plain `Model`: an architecture with a `batch_norm` field (VGG, ResNet)
    with batch norm, then folded; one without (a ViT, whose LayerNorms train as they are) as it is.

    Adam with linear warm-up and cosine decay over `steps`. A plain 16-layer VGG
    this narrow does not leave chance level from scratch, so training uses `batch_norm=True` and
    `fold_batch_norm` returns the architecture the paper manipulates.

    Args:
      on_step: called with (step, loss, batch accuracy) after every step.
      warm_start: a trained model (any input size) whose layers start this run
        where their shapes fit; a layer any of whose arrays changed shape (VGG's
        fc1, which depends on the input size) is drawn fresh. The folded convs
        start with unit batch-norm statistics.
    """
    norms = hasattr(module, "batch_norm")
    module = module.clone(batch_norm=True) if norms else module
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, max(1, steps // 20), steps)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    params = init_params(module, seed)
    if warm_start is not None:
        params = _warm(params, warm_start.params, {norm for _, norm in module.norm_pairs()} if norms else set())
    x0 = jnp.zeros((1, module.input_size, module.input_size, 3))
    stats = jax.eval_shape(module.init, jax.random.key(0), x0).get("batch_stats", {})
    stats = jax.tree_util.tree_map_with_path(
        lambda path, s: (jnp.ones if path[-1].key == "var" else jnp.zeros)(s.shape, s.dtype), stats
    )
    state, opt_state = (params, stats), optimizer.init(params)
    step = make_step(module, optimizer)
    for k, (x, labels) in enumerate(batches):
        state, opt_state, loss, acc = step(state, opt_state, jnp.asarray(x), jnp.asarray(labels))
        if on_step is not None:
            on_step(k, float(loss), float(acc))
    if not norms:
        return Model(module, state[0])
    plain, params = fold_batch_norm(module, {"params": state[0], "batch_stats": state[1]})
    return Model(plain, params)


def _warm(fresh: dict, trained: dict, norms: set[tuple[str, ...]]) -> dict:
    """`fresh` with every layer (a dict of arrays) taken from `trained` where all its shapes agree."""
    fresh_flat, trained_flat = traverse_util.flatten_dict(fresh), traverse_util.flatten_dict(trained)
    layers = {path[:-1] for path in fresh_flat} - norms
    fits = {layer for layer in layers if all(
        (*layer, leaf) in trained_flat and trained_flat[(*layer, leaf)].shape == v.shape
        for (*prefix, leaf), v in fresh_flat.items() if tuple(prefix) == layer)}
    return traverse_util.unflatten_dict({p: trained_flat[p] if p[:-1] in fits else v for p, v in fresh_flat.items()})


def accuracy(model: Model, x: np.ndarray, labels: np.ndarray, batch_size: int = 64) -> float:
    """Top-1 accuracy of `model` on normalised images x (N, H, W, 3)."""
    forward = jax.jit(lambda m, x: m(x).argmax(-1))
    hits = sum(
        int((np.asarray(forward(model, jnp.asarray(x[i : i + batch_size]))) == labels[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return hits / len(x)
