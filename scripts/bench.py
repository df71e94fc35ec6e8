"""Benchmark forward, GradCAM (original, T1-T4) and the fused evaluation, or every explanation method, as ratios.

    python scripts/bench.py [--arch vgg16|resnet50|...] [--batch-size 8] [--json PATH] [--layers]
    python scripts/bench.py --methods [--method NAME ...] [--arch resnet50] [--peers] [--grad-cam-python PY]
    python scripts/bench.py --audit [--arch resnet50] [--batch-size 16]

--methods times each method alone and the gradient-weighted CAMs together, over the model's
forward; --peers also times captum (this Python) and pytorch-grad-cam (--grad-cam-python, a Python
whose environment has it with torchvision) on the same network, each in its own process. --audit
times `cam_jax.audit.audit_model` (every check) over the forward on the same images.

Random weights of the chosen architecture at full width (timings do not depend
on the values). Times are medians after compilation and warm-up; see
cam_jax/benchmark.py. This is a measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import json
import os
import subprocess
import sys
import tempfile

import jax

from cam_jax import Model, build_model, init_params
from cam_jax.atomic import write_json
from cam_jax.evaluation import benchmark, runner
from cam_jax.models.vgg import VGG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vgg16")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0: the real VGG)")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9, help="interleaved timing rounds")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--layers", action="store_true", help="also time each conv layer and the head alone (VGG)")
    parser.add_argument("--methods", action="store_true", help="time every explanation method instead")
    parser.add_argument("--method", action="append", default=None, help="with --methods: only these (repeatable)")
    parser.add_argument("--batch-images", type=int, default=16, help="ScoreCAM's masked images per forward")
    parser.add_argument("--peers", action="store_true", help="with --methods: also time captum and pytorch-grad-cam")
    parser.add_argument("--grad-cam-python", default=None, help="a Python that imports pytorch_grad_cam")
    parser.add_argument("--audit", action="store_true", help="time the audit of one model instead")
    args = parser.parse_args(argv)
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32: T1's cancellation needs float32
    module = build_model(args.arch, num_classes=args.num_classes, input_size=args.input_size, width=args.width)
    model = Model(module, init_params(module))
    if args.methods:
        return methods(args, model)
    if args.audit:
        return audit(args, model)
    result = benchmark.run(model, args.batch_size, args.repeats)
    result.update(device=runner.device_description(), arch=args.arch, batch_size=args.batch_size,
                  width=args.width, input_size=args.input_size, dtype="float32",
                  xla_flags=os.environ.get("XLA_FLAGS", ""))
    print(f"{args.arch} width {args.width} at {args.input_size}x{args.input_size}, batch {args.batch_size}, "
          f"float32, {result['device']}")
    print(f"{'function':<22}{'compile s':>11}{'median s':>11}{'min s':>11}")
    for name, t in result["timings"].items():
        print(f"{name:<22}{t.get('compile_s', float('nan')):>11.2f}{t['median_s']:>11.4f}{t['min_s']:>11.4f}")
    for name, ratio in result["ratios"].items():
        print(f"{name:<34}{ratio:>8.3f}")
    print(f"peak memory: {result['peak_memory_bytes']}")
    if args.layers and isinstance(module, VGG):
        result["layers"] = benchmark.layer_profile(model, args.batch_size, args.repeats)
        print(f"{'layer':<24}{'median s':>11}{'GFLOP/s':>10}")
        for name, t in result["layers"].items():
            print(f"{name:<24}{t['median_s']:>11.4f}{t.get('gflop_per_s', float('nan')):>10.1f}")
    if args.json:
        write_json(args.json, result)
    return 0


def audit(args, model) -> int:
    """--audit: the audit's time over the forward, first call (compiling) and after."""
    result = benchmark.audit_run(model, args.batch_size, args.repeats)
    result.update(device=runner.device_description(), arch=args.arch, batch_size=args.batch_size, width=args.width,
                  input_size=args.input_size, num_classes=args.num_classes)
    t, first = result["timings"], result["first_call_s"]
    print(f"{args.arch} width {args.width} at {args.input_size}x{args.input_size}, {args.batch_size} images, "
          f"{result['device']}")
    print(f"forward  {t['forward']['median_s']:.3f} s (first call {first['forward']:.1f} s)")
    print(f"audit    {t['audit']['median_s']:.3f} s (first call {first['audit']:.1f} s), "
          f"{result['ratio']:.1f} forwards")
    if args.json:
        write_json(args.json, result)
    return 0


def peer(python: str, library: str, args, names: list[str]) -> dict:
    """One peer library's timings, from its own process."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [python, os.path.join(os.path.dirname(__file__), "bench_peers.py"), "--library", library,
               "--arch", args.arch, "--width", str(args.width), "--input-size", str(args.input_size),
               "--num-classes", str(args.num_classes), "--batch-size", str(args.batch_size),
               "--batch-images", str(args.batch_images), "--repeats", str(args.repeats),
               "--threads", str(os.cpu_count()), "--methods", *names, "--json", out.name]
        env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
        with open(out.name) as f:
            return json.load(f)


def methods(args, model) -> int:
    """--methods: every method's time over the forward, and over captum's and pytorch-grad-cam's."""
    from cam_jax.cams import METHODS

    names = args.method or list(METHODS)
    result = benchmark.methods_run(model, args.batch_size, args.repeats, tuple(names), args.batch_images)
    result.update(device=runner.device_description(), arch=args.arch, batch_size=args.batch_size, width=args.width,
                  input_size=args.input_size, dtype="float32", xla_flags=os.environ.get("XLA_FLAGS", ""))
    if args.peers:
        result["peers"] = {"captum": peer(sys.executable, "captum", args, names)}
        if args.grad_cam_python:
            result["peers"]["pytorch-grad-cam"] = peer(args.grad_cam_python, "grad-cam", args, names)
    print(f"{args.arch} width {args.width} at {args.input_size}, batch {args.batch_size}, float32, "
          f"{result['device']}")
    header = f"{'method':<24}{'median s':>10}{'s/image':>10}{'/ forward':>11}"
    peers = result.get("peers", {})
    for library in peers:
        header += f"{'/ ' + library:>20}"
    print(header)
    for name, t in result["timings"].items():
        line = f"{name:<24}{t['median_s']:>10.4f}{result['per_image_s'][name]:>10.4f}"
        line += f"{result['ratios'].get(name, 1.0):>11.3f}"
        for library, theirs in peers.items():
            other = theirs.get("timings", {}).get(name)
            ratio = t["median_s"] / other["median_s"] if other else None
            line += f"{ratio:>20.3f}" if ratio else f"{'-':>20}"
            if ratio:
                result.setdefault("ours_over_peer", {}).setdefault(library, {})[name] = ratio
        print(line)
    for library, theirs in peers.items():
        if "error" in theirs:
            print(f"{library}: {theirs['error']}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
