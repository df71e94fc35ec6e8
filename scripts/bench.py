"""Benchmark forward, GradCAM (original, T1-T4) and the fused evaluation, or every explanation method, as ratios.

    python scripts/bench.py [--arch vgg16|resnet50|...] [--batch-size 8] [--json PATH] [--layers]
    python scripts/bench.py --methods [--method NAME ...] [--arch resnet50] [--peers] [--grad-cam-python PY]
    python scripts/bench.py --audit [--arch resnet50] [--batch-size 16]
    python scripts/bench.py --metrics [--metric NAME ...] [--arch resnet50] [--peers] [--repeats 1]

--methods times each method alone and the gradient-weighted CAMs together, over the model's
forward; --peers also times captum (this Python) and pytorch-grad-cam (--grad-cam-python, a Python
whose environment has it with torchvision) on the same network, each in its own process. --audit
times `cam_jax.audit.audit_model` (every check; and in reference mode) over the forward on the same
images. --metrics times each quality metric at `benchmark.METRIC_SETTINGS` over its floor (the
forward passes it needs times one forward); --peers then also times Quantus (this Python, its own
process) on the same work.

Random weights of the chosen architecture at full width (timings do not depend
on the values). Times are medians after compilation and warm-up; see
cam_jax/evaluation/benchmark.py. This is a measurement, not a test: nothing is asserted.
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import os
import sys

import jax

from cam_jax import Model, build_model, init_params
from cam_jax.atomic import write_json
from cam_jax.cams import METHODS
from cam_jax.evaluation import benchmark, runner
from cam_jax.models.vgg import VGG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where a peer's Python finds cam_jax


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
    parser.add_argument("--metrics", action="store_true", help="time the quality metrics instead (each over its "
                        "floor of forward passes; with --peers, over Quantus's time on the same work)")
    parser.add_argument("--metric", nargs="+", default=None, help="with --metrics: only these")
    args = parser.parse_args(argv)
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32: T1's cancellation needs float32
    module = build_model(args.arch, num_classes=args.num_classes, input_size=args.input_size, width=args.width)
    model = Model(module, init_params(module))
    if args.methods:
        names = args.method or list(METHODS)
        result = benchmark.methods_run(model, args.batch_size, args.repeats, tuple(names), args.batch_images)
        if args.peers:
            pythons = {"captum": sys.executable, "grad-cam": args.grad_cam_python}
            result["peers"] = {("pytorch-grad-cam" if library == "grad-cam" else library):
                               benchmark.peer(peer_command(python, library, args, names), ROOT)
                               for library, python in pythons.items() if python}
        table = benchmark.methods_table(result)
    elif args.metrics:
        names = tuple(args.metric or benchmark.METRIC_SETTINGS)
        result = benchmark.metrics_run(model, args.batch_size, args.repeats, names)
        if args.peers:
            result["peers"] = {"quantus": benchmark.peer(peer_command(sys.executable, "quantus", args, list(names)),
                                                         ROOT)}
        table = benchmark.metrics_table(result)
    elif args.audit:
        result = benchmark.audit_run(model, args.batch_size, args.repeats)
        table = benchmark.audit_table(result)
    else:
        result = benchmark.run(model, args.batch_size, args.repeats)
        if args.layers and isinstance(module, VGG):
            result["layers"] = benchmark.layer_profile(model, args.batch_size, args.repeats)
        table = benchmark.run_table(result)
    result.update(device=runner.device_description(), arch=args.arch, batch_size=args.batch_size, width=args.width,
                  input_size=args.input_size, num_classes=args.num_classes, dtype="float32",
                  xla_flags=os.environ.get("XLA_FLAGS", ""))
    print(f"{args.arch} width {args.width} at {args.input_size}x{args.input_size}, batch {args.batch_size}, "
          f"float32, {result['device']}\n{table}")
    if args.json:
        write_json(args.json, result)
    return 0


def peer_command(python: str, library: str, args: argparse.Namespace, names: list[str]) -> list[str]:
    """scripts/bench_peers.py for one peer library, in its own Python, on the same network and batch."""
    return [python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_peers.py"), "--library", library,
            "--arch", args.arch, "--width", str(args.width), "--input-size", str(args.input_size),
            "--num-classes", str(args.num_classes), "--batch-size", str(args.batch_size),
            "--batch-images", str(args.batch_images), "--repeats", str(args.repeats),
            "--threads", str(os.cpu_count()), "--methods", *names]


if __name__ == "__main__":
    sys.exit(main())
