"""Benchmark forward, GradCAM (original, T1-T4) and the fused evaluation, as ratios.

    python scripts/bench.py [--arch vgg16|resnet50|...] [--batch-size 8] [--json PATH] [--layers]

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
import sys

import jax

from cam_jax import Model, build_model, init_params
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
    args = parser.parse_args(argv)
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32: T1's cancellation needs float32
    module = build_model(args.arch, num_classes=args.num_classes, input_size=args.input_size, width=args.width)
    model = Model(module, init_params(module))
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
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
