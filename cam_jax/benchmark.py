"""Timings of forward, GradCAM (original and T1-T4) and the evaluation step, as ratios.

Every function is jitted, compiled once (timed separately), warmed up, then
timed `repeats` times; the median is reported. Nothing here asserts a time.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax import evaluate, images, shapes
from cam_jax.gradcam import cam_from_features
from cam_jax.model import Model


def _block(tree: Any) -> Any:
    return jax.tree.map(lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree)


def _time(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    _block(call())  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _block(call())
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def measure(fn: Callable, *args, repeats: int = 5) -> dict[str, float]:
    """{"compile_s", "median_s", "min_s"} of jitted `fn(*args)`; compile is lower + compile."""
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - start
    return {"compile_s": compile_s, **_time(lambda: compiled(*args), repeats)}


def peak_memory_bytes() -> int | None:
    """Peak bytes in use on the first device, where the backend reports it (not on CPU)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


def run(model: Model, batch_size: int = 8, repeats: int = 5, seed: int = 0) -> dict[str, Any]:
    """All timings and ratios for `model` on a batch of generated images."""
    size = model.input_size
    data = shapes.batch(shapes.TEST_SEED, range(batch_size), size)
    settings = evaluate.Settings(sticker_size=14 if size >= 224 else 7)
    pasted = evaluate.sticker_images(data.pixels, np.arange(batch_size), seed, evaluate.sticker(settings))
    clean = jnp.asarray(images.normalize(data.pixels))
    stickered = jnp.asarray(images.normalize(pasted))
    labels = jnp.asarray(np.minimum(data.labels, model.module.num_classes - 1))
    masks = jnp.asarray(data.masks)
    models = evaluate.manipulated_models(model, settings)

    forward = jax.jit(lambda m, x: m(x))
    gradcam = jax.jit(lambda m, x: cam_from_features(m.head, m.features(x)))
    out: dict[str, Any] = {"forward": measure(forward, model, clean, repeats=repeats)}
    for name, m in models.items():
        out[f"gradcam_{name}"] = measure(gradcam, m, clean, repeats=repeats)
    args = (model, clean, stickered, labels, masks)
    out["fused_eval"] = measure(evaluate.fused_step(settings), *args, repeats=repeats)

    # The unfused evaluation: seven separately jitted explanations plus the metrics.
    unfused = evaluate.unfused_step(settings)
    out["unfused_eval"] = _time(lambda: unfused(*args), repeats)

    f = out["forward"]["median_s"]
    ratios = {f"gradcam_{n} / forward": out[f"gradcam_{n}"]["median_s"] / f for n in models}
    ratios["fused_eval / forward"] = out["fused_eval"]["median_s"] / f
    ratios["fused_eval / unfused_eval"] = out["fused_eval"]["median_s"] / out["unfused_eval"]["median_s"]
    return {"timings": out, "ratios": ratios, "peak_memory_bytes": peak_memory_bytes()}
