"""Timings of forward, GradCAM (original and T1-T4), the evaluation step and every explanation method, as ratios.

Every function is jitted and compiled once (compile time reported apart), run
once to warm up, then timed in `repeats` interleaved rounds: each round runs
every function once, so a slow spell of a shared machine falls on all of them
rather than on whichever was being timed. The median per function is reported.
Nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.cams.core import cotangent, gradients, opaque_pass
from cam_jax.cams.methods import METHODS, explain_many, explainer
from cam_jax.cams.weightings import WEIGHTINGS, apply, grad_cam
from cam_jax.data import images, shapes, stickers
from cam_jax.evaluation import step as evaluate
from cam_jax.evaluation.config import PAPER
from cam_jax.evaluation.suite import build, sticker
from cam_jax.manipulations import editable
from cam_jax.metrics import quality
from cam_jax.metrics.randomisation import layers
from cam_jax.model import Model
from cam_jax.models.vgg import VGG


def _opaque_gradcam(model: Model, x: jax.Array) -> jax.Array:
    """GradCAM with the head differentiated as one function (what a user's own code would run)."""
    g = gradients(model, x, opaque=True)
    return jax.nn.relu(apply(grad_cam, g.a, g.grads))


def _head_gradcam(model: Model, a: jax.Array) -> jax.Array:
    """GradCAM from A: the head's forward and backward alone."""
    run = opaque_pass(model.head, a)
    return jax.nn.relu(apply(grad_cam, a, run.backward(cotangent(run.logits)[1])))


def _block(tree: Any) -> Any:
    return jax.tree.map(lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree)


def interleaved(calls: dict[str, Callable[[], Any]], repeats: int, settle: bool = False) -> dict[str, dict[str, float]]:
    """{name: {"median_s", "min_s", "times_s"}} of each zero-argument call over `repeats` interleaved rounds;
    with `settle`, each call is run once untimed right before it is timed."""
    for call in calls.values():
        _block(call())  # warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            if settle:
                _block(call())
            start = time.perf_counter()
            _block(call())
            times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "times_s": t} for name, t in times.items()}


def timed_after_first(calls: dict[str, Callable[[], Any]], repeats: int, settle: bool) -> dict[str, dict[str, float]]:
    """`interleaved`'s timings, each with "first_call_s": the call's first run (its compilation)."""
    first = {}
    for name, call in calls.items():
        start = time.perf_counter()
        _block(call())
        first[name] = time.perf_counter() - start
    timings = interleaved(calls, repeats, settle)
    for name in timings:
        timings[name]["first_call_s"] = first[name]
    return timings


def peak_memory_bytes() -> int | None:
    """Peak bytes in use on the first device, where the backend reports it (not on CPU)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


def run(model: Model, batch_size: int = 8, repeats: int = 9, seed: int = 0) -> dict[str, Any]:
    """All timings and ratios for `model` on a batch of generated images.

    Ratios: each GradCAM over the original's forward and over
    its own model's forward (the floor for that model: T3/T4 run a branch
    network on the image, T1/T2 an extra filter); the fused evaluation step over
    the original's forward and over the models run one by one. Each ratio is the
    median over rounds of the two times measured in the same round, so a slow
    spell that spans a round scales both and cancels.
    """
    size = model.input_size
    data = shapes.batch(shapes.TEST_SEED, range(batch_size), size)
    pasted = stickers.paste_by_index(data.pixels, np.arange(batch_size), seed, sticker(PAPER, size))[0]
    clean = jnp.asarray(images.normalize(data.pixels))
    stickered = jnp.asarray(images.normalize(pasted))
    labels = jnp.asarray(np.minimum(data.labels, model.num_classes - 1))
    masks = jnp.asarray(data.masks)
    config = PAPER if editable(model) else PAPER.replace(exact=True)  # a ViT's T1/T2 are the exact ones
    models = build(model, config)

    compile_s: dict[str, float] = {}
    calls: dict[str, Callable[[], Any]] = {}

    def add(name: str, fn: Callable, *args) -> None:
        start = time.perf_counter()
        compiled = fn.lower(*args).compile()
        compile_s[name] = time.perf_counter() - start
        calls[name] = lambda: compiled(*args)

    forward = jax.jit(lambda m, x: m(x))
    gradcam = jax.jit(_opaque_gradcam)
    for name, m in models.items():
        add(f"forward_{name}", forward, m, clean)
        add(f"gradcam_{name}", gradcam, m, clean)
    args = (model, clean, stickered, labels, masks)
    add("fused_eval", evaluate.fused_step(config), *args)
    unfused = evaluate.unfused_step(config)  # seven separately jitted explanations plus the metrics
    calls["unfused_eval"] = lambda: unfused(*args)

    timings = interleaved(calls, repeats)
    for name, seconds in compile_s.items():
        timings[name]["compile_s"] = seconds

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(timings[a]["times_s"], timings[b]["times_s"], strict=True))

    ratios = {f"gradcam_{n} / forward": ratio(f"gradcam_{n}", "forward_original") for n in models}
    ratios.update({f"gradcam_{n} / forward_{n}": ratio(f"gradcam_{n}", f"forward_{n}")
                   for n in models if n != "original"})
    ratios["fused_eval / forward"] = ratio("fused_eval", "forward_original")
    ratios["fused_eval / unfused_eval"] = ratio("fused_eval", "unfused_eval")
    return {"timings": timings, "ratios": ratios, "peak_memory_bytes": peak_memory_bytes()}


def layer_profile(model: Model, batch_size: int = 8, repeats: int = 9) -> dict[str, dict[str, float]]:
    """Where a plain VGG's forward and GradCAM spend their time: each conv layer (with its
    ReLU) alone, and the head's forward and forward + backward from A.

    Returns {name: {"median_s", "min_s", "gflop_per_s"}}; convs count 2 flops per
    multiply-add, the head entries leave gflop_per_s out.
    """
    module = model.module
    if not isinstance(module, VGG):
        raise TypeError("layer_profile times the layers of a plain VGG")
    conv = jax.jit(lambda x, p: jax.nn.relu(jax.lax.conv_general_dilated(
        x, p["kernel"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]))
    calls, flops = {}, {}
    size, channels = module.input_size, 3
    for s, stage in enumerate(module.stages):
        for i, width in enumerate(stage):
            name = f"conv{s + 1}_{i + 1}"
            x = jnp.ones((batch_size, size, size, channels), jnp.float32)
            calls[name] = lambda x=x, p=model.params[name]: conv(x, p)
            flops[name] = 2 * batch_size * size * size * channels * width * 9
            channels = width
        size //= 2
    a = jnp.ones((batch_size, module.cam_size, module.cam_size, channels), jnp.float32)
    head = jax.jit(lambda m, a: m.head(a))
    explain = jax.jit(_head_gradcam)
    calls["head forward"] = lambda: head(model, a)
    calls["head forward+backward"] = lambda: explain(model, a)
    timings = interleaved(calls, repeats)
    for name, n in flops.items():
        timings[name]["gflop_per_s"] = n / timings[name]["median_s"] / 1e9
    return timings


def methods_run(model: Model, batch_size: int = 8, repeats: int = 3, methods: tuple[str, ...] = METHODS,
                batch_images: int = 16, seed: int = 0) -> dict[str, Any]:
    """Each explanation method's time, alone and (the gradient-weighted ones) all together, over the forward.

    Every call goes through `explain_many` as a user would (input checks included).
    Returns {"timings", "ratios": {method: time / forward}, "per_image_s": {method: s}}.
    """
    size = model.input_size
    data = shapes.batch(shapes.TEST_SEED, range(batch_size), size)
    x = jnp.asarray(images.normalize(data.pixels))
    forward = jax.jit(lambda m, x: m(x))
    # captum batches IG's 50 steps 10 images at a time (scripts/bench_peers.py): the same here.
    options = {"scorecam": {"batch_images": batch_images}, "ablationcam": {"batch_images": batch_images * 16},
               "smoothgrad": {"batch_images": batch_size * 25},
               "integrated_gradients": {"batch_images": batch_size * 10}}
    calls: dict[str, Callable[[], Any]] = {"forward": lambda: forward(model, x)}
    weighted = [m for m in methods if m in WEIGHTINGS]
    # Settled: a call timed right after one that takes seconds (IG, ScoreCAM) can take several times its
    # own time (docs/BENCHMARKS.md). The peers repeat each method back to back (scripts/bench_peers.py),
    # so theirs settle by themselves.
    for name in weighted:
        calls[name] = lambda name=name: explain_many(model, x, [name])
    if weighted:
        calls["all gradient-weighted"] = lambda: explain_many(model, x, weighted)
    for name in methods:
        if name not in WEIGHTINGS:
            calls[name] = lambda name=name: explain_many(model, x, [name], **options.get(name, {}))
    timings = timed_after_first(calls, repeats, settle=True)

    def ratio(a: str) -> float:
        return statistics.median(t / f for t, f in zip(timings[a]["times_s"], timings["forward"]["times_s"],
                                                       strict=True))

    names = [n for n in calls if n != "forward"]
    return {"timings": timings, "ratios": {n: ratio(n) for n in names},
            "per_image_s": {n: timings[n]["median_s"] / batch_size for n in calls}}


def audit_run(model: Model, batch_size: int = 16, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """The audit's time on `batch_size` generated images: its first call (compiling every check) and its
    median after, each over the model's forward on the same images; and the audit in reference mode
    (`reference_ratio`: the model audited against itself, which costs what any reference of its
    architecture does). Not on Gaussian noise: a random
    network's A barely moves across i.i.d. noise images, and the audit refuses them (stillness 39 for a
    random VGG-16, against 2.6 on the generated shapes)."""
    from cam_jax.audit import audit_model

    pixels = shapes.batch(shapes.TEST_SEED + seed, range(batch_size), model.input_size).pixels
    x = jnp.asarray(images.normalize(pixels, model.preprocess))
    forward = jax.jit(lambda m, x: m(x))
    start = time.perf_counter()
    _block(forward(model, x))
    forward_first = time.perf_counter() - start
    first = {}
    runs = {"audit": lambda: audit_model(model, x), "audit_reference": lambda: audit_model(model, x, reference=model)}
    for name, run in runs.items():
        start = time.perf_counter()
        run()
        first[name] = time.perf_counter() - start
    timings = interleaved({"forward": lambda: forward(model, x), **runs}, repeats)
    forward_s = timings["forward"]["median_s"]
    return {"timings": timings, "first_call_s": {"forward": forward_first, **first},
            "ratio": timings["audit"]["median_s"] / forward_s,
            "reference_ratio": timings["audit_reference"]["median_s"] / forward_s}


def peer(command: list[str], pythonpath: str | None = None) -> dict[str, Any]:
    """A peer library's timings: `command` (a bench_peers run in the peer's own Python, which finds cam_jax
    on `pythonpath`) writes them as JSON to the file it is given after `--json`; {"error": its last
    line} when it fails."""
    env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run([*command, "--json", out.name], capture_output=True, text=True, env=env)
        if done.returncode:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
        with open(out.name) as f:
            return json.load(f)


def run_table(result: dict[str, Any]) -> str:
    """`run`'s timings and ratios (and `layer_profile`'s, under "layers") as text."""
    lines = [f"{'function':<22}{'compile s':>11}{'median s':>11}{'min s':>11}"]
    lines += [f"{name:<22}{t.get('compile_s', float('nan')):>11.2f}{t['median_s']:>11.4f}{t['min_s']:>11.4f}"
              for name, t in result["timings"].items()]
    lines += [f"{name:<34}{ratio:>8.3f}" for name, ratio in result["ratios"].items()]
    lines.append(f"peak memory: {result['peak_memory_bytes']}")
    if "layers" in result:
        lines.append(f"{'layer':<24}{'median s':>11}{'GFLOP/s':>10}")
        lines += [f"{name:<24}{t['median_s']:>11.4f}{t.get('gflop_per_s', float('nan')):>10.1f}"
                  for name, t in result["layers"].items()]
    return "\n".join(lines)


def methods_table(result: dict[str, Any]) -> str:
    """`methods_run`'s timings, over the forward and over each peer's time (which it adds to `result`
    as "ours_over_peer"), as text."""
    peers = result.get("peers", {})
    lines = [f"{'method':<24}{'median s':>10}{'s/image':>10}{'/ forward':>11}"
             + "".join(f"{'/ ' + library:>20}" for library in peers)]
    for name, t in result["timings"].items():
        line = f"{name:<24}{t['median_s']:>10.4f}{result['per_image_s'][name]:>10.4f}"
        line += f"{result['ratios'].get(name, 1.0):>11.3f}"
        for library, theirs in peers.items():
            other = theirs.get("timings", {}).get(name)
            ratio = t["median_s"] / other["median_s"] if other else None
            line += f"{ratio:>20.3f}" if ratio else f"{'-':>20}"
            if ratio:
                result.setdefault("ours_over_peer", {}).setdefault(library, {})[name] = ratio
        lines.append(line)
    lines += [f"{library}: {theirs['error']}" for library, theirs in peers.items() if "error" in theirs]
    return "\n".join(lines)


def audit_table(result: dict[str, Any]) -> str:
    """`audit_run`'s times as text."""
    t, first = result["timings"], result["first_call_s"]
    return (f"forward  {t['forward']['median_s']:.3f} s (first call {first['forward']:.1f} s)\n"
            f"audit    {t['audit']['median_s']:.3f} s (first call {first['audit']:.1f} s), "
            f"{result['ratio']:.1f} forwards\n"
            f"audit with a reference {t['audit_reference']['median_s']:.3f} s (first call "
            f"{first['audit_reference']:.1f} s), {result['reference_ratio']:.1f} forwards")


# The settings `metrics_run` times each quality metric at, and `scripts/bench_peers.py --library quantus`
# gives Quantus for the same work (the same number of perturbed forwards per image at 224 x 224).
METRIC_SETTINGS: dict[str, dict[str, Any]] = {
    "pixel_flipping": {"steps": 48}, "deletion": {"steps": 16}, "insertion": {"steps": 16},
    "region_perturbation": {"patch": 28, "regions": 64}, "selectivity": {"patch": 28},
    "road": {"percentages": tuple(range(5, 100, 10))}, "faithfulness_correlation": {"runs": 20, "subset": 224},
    "monotonicity_correlation": {"steps": 24, "samples": 2}, "infidelity": {"patch": 28},
    "max_sensitivity": {"samples": 4}, "avg_sensitivity": {"samples": 4}, "local_lipschitz": {"samples": 4},
    "model_randomisation": {}, "random_logit": {}, "pointing_game": {}, "energy_pointing_game": {},
    "relevance_mass_accuracy": {}, "relevance_rank_accuracy": {}, "top_k_intersection": {}, "auc": {},
    "sparseness": {}, "complexity": {}, "effective_complexity": {},
}


def bench_masks(batch_size: int, size: int) -> np.ndarray:
    """(B, size, size) bool: a box in the middle of every image, the localisation metrics' object."""
    masks = np.zeros((batch_size, size, size), bool)
    masks[:, size // 4: 3 * size // 4, size // 3: 2 * size // 3] = True
    return masks


def metrics_run(model: Model, batch_size: int = 8, repeats: int = 1, names: tuple[str, ...] = (),
                seed: int = 0) -> dict[str, Any]:
    """Each quality metric's time (through `assess`, at `METRIC_SETTINGS`) on saliency maps of `batch_size`
    random images, over its floor: the forward passes it needs (`quality.floor`) times the forward's time,
    or for those that re-explain, the explanations it needs times one explanation's. (Saliency, not
    GradCAM: a random network's GradCAM can be 0 everywhere, which Quantus refuses.)

    Returns {"timings", "floor_passes", "over_floor": {metric: time / floor}, "per_image_s"}.
    """
    names = names or tuple(METRIC_SETTINGS)
    x = jax.random.normal(jax.random.key(seed), (batch_size, model.input_size, model.input_size, 3))
    explain = explainer("saliency")
    maps = explain(model, x, None)
    classes = jnp.argmax(model(x), -1).astype(jnp.int32)  # given, as a user who knows them: not in the floor
    masks = bench_masks(batch_size, model.input_size)
    forward = jax.jit(lambda m, x: m(x))
    explained = jax.jit(explain)
    calls: dict[str, Callable[[], Any]] = {"forward": lambda: forward(model, x),
                                           "saliency": lambda: explained(model, x, None)}
    for name in names:
        options = dict(METRIC_SETTINGS[name])
        if "explain" in quality.QUALITY[name].options:
            options["explain"] = explain
        kind = quality.QUALITY[name].kind
        calls[name] = lambda name=name, options=options, kind=kind: quality.assess(
            name, model, x, maps, classes if kind == "model" else None, masks=masks if kind == "masks" else None,
            **options)
    timings = timed_after_first(calls, repeats, settle=False)
    pixels, depth = model.input_size**2, len(layers(model))
    passes, over = {}, {}
    for name in names:
        passes[name] = quality.floor(name, METRIC_SETTINGS[name], pixels, depth)
        unit = "saliency" if "explain" in quality.QUALITY[name].options else "forward"
        if passes[name]:
            over[name] = timings[name]["median_s"] / (passes[name] * timings[unit]["median_s"])
    return {"timings": timings, "floor_passes": passes, "over_floor": over,
            "per_image_s": {n: timings[n]["median_s"] / batch_size for n in calls},
            "settings": {n: {k: list(v) if isinstance(v, tuple) else v for k, v in METRIC_SETTINGS[n].items()}
                         for n in names}}


def metrics_table(result: dict[str, Any]) -> str:
    """`metrics_run`'s times, over the floor and over Quantus's on the same work (`result["peers"]`), as text;
    adds "ours_over_quantus" to `result`."""
    quantus = result.get("peers", {}).get("quantus", {})
    theirs = quantus.get("timings", {})
    lines = [f"{'metric':<26}{'median s':>10}{'s/image':>10}{'passes':>8}{'/ floor':>9}{'quantus s':>11}"
             f"{'/ quantus':>11}"]
    for name, t in result["timings"].items():
        other = theirs.get(name)
        ratio = t["median_s"] / other["median_s"] if other else None
        if ratio:
            result.setdefault("ours_over_quantus", {})[name] = ratio
        over = result["over_floor"].get(name)
        lines.append(f"{name:<26}{t['median_s']:>10.3f}{result['per_image_s'][name]:>10.4f}"
                     f"{result['floor_passes'].get(name, 1):>8}{over if over else float('nan'):>9.3f}"
                     f"{other['median_s'] if other else float('nan'):>11.3f}{ratio if ratio else float('nan'):>11.3f}")
    if "error" in quantus:
        lines.append(f"quantus: {quantus['error']}")
    return "\n".join(lines)
