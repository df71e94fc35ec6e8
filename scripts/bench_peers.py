"""Time pytorch-grad-cam's and captum's methods on a random torchvision-layout network, for scripts/bench.py.

    python scripts/bench_peers.py --library captum --arch vgg16 --batch-size 8 --json OUT.json

Runs in its own process (scripts/bench.py starts it, with another Python for pytorch-grad-cam,
which needs torchvision beside its own torch). The network is cam_jax.testing's torch VGG or
ResNet at the same width and input size as ours; each method is run once to warm up, then
timed `--repeats` times (median), torch on as many threads as JAX uses here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from cam_jax.testing import GRAD_CAM_CLASSES, grad_cam, torch_network


def calls(library: str, net, layer, x: torch.Tensor, methods: list[str], batch_images: int) -> dict:
    classes = net(x).argmax(1)
    out = {}
    if library == "grad-cam":
        for name in methods:
            if name in GRAD_CAM_CLASSES:
                cam = grad_cam(name, net, layer)
                cam.batch_size = batch_images
                out[name] = lambda cam=cam: cam(input_tensor=x, targets=None)
        return out
    import captum.attr as ca

    kinds = {
        "gradcam": lambda: ca.LayerGradCam(net, layer).attribute(x, target=classes, relu_attributions=True),
        "saliency": lambda: ca.Saliency(net).attribute(x, target=classes, abs=True),
        "gradient_x_input": lambda: ca.InputXGradient(net).attribute(x, target=classes),
        "smoothgrad": lambda: ca.NoiseTunnel(ca.Saliency(net)).attribute(
            x, target=classes, nt_type="smoothgrad", nt_samples=25, stdevs=0.15, abs=False),
        "integrated_gradients": lambda: ca.IntegratedGradients(net).attribute(
            x, target=classes, n_steps=50, method="gausslegendre", internal_batch_size=x.shape[0] * 10),
    }
    return {name: kinds[name] for name in methods if name in kinds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", choices=("grad-cam", "captum"), required=True)
    parser.add_argument("--arch", default="vgg16")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batch-images", type=int, default=16, help="ScoreCAM/AblationCAM images per forward")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    net, layer = torch_network(args.arch, args.width, args.num_classes, args.input_size)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(args.batch_size, 3, args.input_size,
                                                                args.input_size)).astype(np.float32))
    timed = {"forward": lambda: net(x)}
    timed.update(calls(args.library, net, layer, x, args.methods, args.batch_images))
    result = {}
    for name, call in timed.items():
        with torch.no_grad() if name == "forward" else torch.enable_grad():
            call()
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
        result[name] = {"median_s": statistics.median(times), "times_s": times}
    with open(args.json, "w") as f:
        json.dump({"library": args.library, "torch": torch.__version__, "threads": torch.get_num_threads(),
                   "timings": result}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
