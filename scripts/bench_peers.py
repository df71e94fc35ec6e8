"""Time pytorch-grad-cam's and captum's methods, or Quantus's metrics, on a random torchvision-layout network,
for scripts/bench.py.

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


def quantus_calls(net, layer, x: torch.Tensor, metrics: list[str]) -> dict:
    """Quantus 0.6 on the work `cam_jax.evaluation.benchmark.METRIC_SETTINGS` gives cam_jax: the same number
    of perturbed forwards per image (its steps count colour values: 3 H W / features_in_step of them), its
    normalisation and absolute value off, saliency maps (captum's) as the explanation."""
    import warnings

    import captum.attr as ca
    import quantus
    from quantus.functions.perturb_func import noisy_linear_imputation

    from cam_jax.evaluation.benchmark import METRIC_SETTINGS, bench_masks

    warnings.filterwarnings("ignore")
    b, _, h, w = x.shape
    classes = net(x).argmax(1).numpy()

    def explain(model, inputs, targets, **kwargs):  # |dS/dx| summed over colours: cam_jax's saliency map
        grads = ca.Saliency(model).attribute(torch.as_tensor(inputs), target=torch.as_tensor(targets), abs=True)
        return grads.sum(1, keepdim=True).detach().numpy()

    maps = explain(net, x.numpy(), classes)
    road_maps = np.concatenate([maps, np.full((b, 2, h, w), -1.0, np.float32)], axis=1)  # its 3-colour workaround
    masks = bench_masks(b, h)[:, None].astype(float)
    quiet = {"normalise": False, "abs": False, "disable_warnings": True, "display_progressbar": False}
    s = METRIC_SETTINGS
    made = {
        "pixel_flipping": lambda: quantus.PixelFlipping(features_in_step=3 * h * w // s["pixel_flipping"]["steps"],
                                                        **quiet),
        "region_perturbation": lambda: quantus.RegionPerturbation(
            patch_size=s["region_perturbation"]["patch"], regions_evaluation=s["region_perturbation"]["regions"],
            **quiet),
        "selectivity": lambda: quantus.Selectivity(patch_size=s["selectivity"]["patch"], **quiet),
        "road": lambda: quantus.ROAD(percentages=list(s["road"]["percentages"]), perturb_func=lambda arr, indices, **kw:
                                     noisy_linear_imputation(arr, indices[: len(indices) // 3], **kw), **quiet),
        "faithfulness_correlation": lambda: quantus.FaithfulnessCorrelation(
            nr_runs=s["faithfulness_correlation"]["runs"], subset_size=3 * s["faithfulness_correlation"]["subset"],
            return_aggregate=False, **quiet),
        "monotonicity_correlation": lambda: quantus.MonotonicityCorrelation(
            features_in_step=3 * h * w // s["monotonicity_correlation"]["steps"],
            nr_samples=s["monotonicity_correlation"]["samples"], **quiet),
        "infidelity": lambda: quantus.Infidelity(perturb_patch_sizes=[s["infidelity"]["patch"]], n_perturb_samples=1,
                                                 **quiet),
        "max_sensitivity": lambda: quantus.MaxSensitivity(nr_samples=s["max_sensitivity"]["samples"], **quiet),
        "avg_sensitivity": lambda: quantus.AvgSensitivity(nr_samples=s["avg_sensitivity"]["samples"], **quiet),
        "local_lipschitz": lambda: quantus.LocalLipschitzEstimate(nr_samples=s["local_lipschitz"]["samples"], **quiet),
        "model_randomisation": lambda: quantus.MPRT(**quiet),
        "random_logit": lambda: quantus.RandomLogit(num_classes=int(net(x[:1]).shape[1]), **quiet),
        "pointing_game": lambda: quantus.PointingGame(**quiet),
        "energy_pointing_game": lambda: quantus.AttributionLocalisation(**quiet),
        "relevance_mass_accuracy": lambda: quantus.RelevanceMassAccuracy(**quiet),
        "relevance_rank_accuracy": lambda: quantus.RelevanceRankAccuracy(**quiet),
        "top_k_intersection": lambda: quantus.TopKIntersection(**quiet),
        "auc": lambda: quantus.AUC(**quiet),
        "sparseness": lambda: quantus.Sparseness(**quiet),
        "complexity": lambda: quantus.Complexity(**quiet),
        "effective_complexity": lambda: quantus.EffectiveComplexity(**quiet),
    }
    out = {}
    for name in metrics:
        if name not in made:
            continue
        metric = made[name]()
        a = road_maps if name == "road" else maps
        extra = {"s_batch": masks} if name in ("pointing_game", "energy_pointing_game", "relevance_mass_accuracy",
                                               "relevance_rank_accuracy", "top_k_intersection", "auc") else {}
        out[name] = lambda metric=metric, a=a, extra=extra: metric(
            model=net, x_batch=x.numpy(), y_batch=classes, a_batch=a, device="cpu", explain_func=explain,
            batch_size=b, **extra)
    return out


def calls(library: str, net, layer, x: torch.Tensor, methods: list[str], batch_images: int) -> dict:
    if library == "quantus":
        return quantus_calls(net, layer, x, methods)
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
    parser.add_argument("--library", choices=("grad-cam", "captum", "quantus"), required=True)
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
            if args.library != "quantus" or name == "forward":  # a Quantus metric's first call is like any other
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
