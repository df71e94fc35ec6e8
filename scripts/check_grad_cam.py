"""Our CAMs against pytorch-grad-cam itself, on a random torch network converted to cam_jax.

    python scripts/check_grad_cam.py [--arch vgg16|resnet18|vit_b_16|...] [--width 0.0625] [--input-size 64]
    python scripts/check_grad_cam.py --arch vit_b_16 --torchvision   # torchvision's own ViT-B/16, full size

Run it with a Python whose environment has pytorch-grad-cam and cam_jax (pytorch-grad-cam imports
torchvision, which does not install beside the CPU torch the tests use: the README's benchmark
section says how that venv was made). It builds a random torch network in torchvision's layout
(He init, so narrow networks stay alive), converts its state_dict with `convert.load_torchvision`,
computes every CAM both ways on the same images for each image's top class, and prints
max |ours - theirs| / max |theirs| per method and image. pytorch-grad-cam's maps are taken raw, before
its min-max scaling and resize; EigenCAM and EigenGradCAM are compared per image with the closer of
the two signs of the principal direction, which its SVD leaves arbitrary. A ViT's layer is the last
block's ln_1 with pytorch-grad-cam's documented `reshape_transform` (class token dropped); its
AblationCAM is not compared: pytorch-grad-cam's `AblationLayerVit` ablates the class token's channel
too, which is not in A (tests/test_vit.py checks ours against torch forwards). Exits 1 when a method
differs by more than --tolerance, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile

import numpy as np
import torch

from cam_jax import convert, explain_many
from cam_jax.cams import WEIGHTINGS
from cam_jax.models.resnet import BLOCKS
from cam_jax.models.vgg import STAGES
from cam_jax.models.vit import SIZES
from cam_jax.testing import grad_cam_maps, torch_network, vit_reshape

METHODS = (*WEIGHTINGS, "scorecam", "ablationcam")


def differences(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """(B,) max |ours - theirs| / max |theirs| per image; theirs (B, h, w), or (2, B, h, w) for both signs.
    NaN where pytorch-grad-cam's map is zero: nothing is compared there."""
    theirs = theirs if theirs.ndim == 4 else theirs[None]
    scale = np.abs(theirs).max(axis=(2, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, np.abs(ours[None] - theirs).max(axis=(2, 3)) / scale, np.nan).min(axis=0)


def torchvision_network(arch: str, num_classes: int, seed: int):
    """(torchvision's own `arch` with random weights in eval mode, the module whose output is A). A ViT's
    classifier and class token start at zero in torchvision: redrawn, or every map would be zero."""
    import torchvision

    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes).eval()
    if arch in SIZES:
        with torch.no_grad():
            net.heads.head.weight.normal_(0.0, 0.02)
            net.class_token.normal_()
        return net, net.encoder.layers[-1].ln_1
    return net, net.features[-2] if arch in STAGES else net.layer4[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vgg16", choices=sorted([*STAGES, *BLOCKS, *SIZES]))
    parser.add_argument("--width", type=float, default=1 / 16)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="of the reference map's maximum")
    parser.add_argument("--method", action="append", choices=METHODS, help="(repeatable) default: all")
    parser.add_argument("--torchvision", action="store_true",
                        help="torchvision's own model of --arch, full size at 224 (random weights; needs torchvision), "
                             "instead of cam_jax.testing's torch.nn restatement of its layout")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("pytorch_grad_cam") is None:
        print("check_grad_cam.py: pytorch-grad-cam is not installed in this Python (pip install grad-cam, "
              "in a venv of its own: it pulls torchvision)", file=sys.stderr)
        return 2
    vit = args.arch in SIZES
    # He's init keeps narrow CNNs alive; a ViT's LayerNorms do that, and under it GradCAM's map is all zero
    if args.torchvision:
        net, layer = torchvision_network(args.arch, args.num_classes, args.seed)
        args.input_size = 224
    else:
        net, layer = torch_network(args.arch, args.width, args.num_classes, args.input_size, args.seed,
                                   he_init=not vit)
    x = np.random.default_rng(args.seed).normal(size=(args.batch_size, 3, args.input_size, args.input_size))
    x = x.astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.pth")
        torch.save(net.state_dict(), path)
        if vit and not args.torchvision:  # a narrowed ViT is no torchvision size: its heads are in no shape
            model, _ = convert.load_torchvision(path, heads=net.encoder.layers[0].self_attention.num_heads)
        else:
            model, _ = convert.load_torchvision(path, arch=args.arch, input_size=args.input_size)
    methods = tuple(m for m in (args.method or METHODS) if not (vit and m == "ablationcam"))
    batched = {"batch_images": 16} if {"scorecam", "ablationcam"} & set(methods) else {}
    ours = explain_many(model, x.transpose(0, 2, 3, 1), methods, **batched)
    theirs = grad_cam_maps(net, layer, x, methods, vit_reshape if vit else None)
    worst = 0.0
    which = "torchvision's own" if args.torchvision else f"width {args.width:g}"
    print(f"{args.arch} {which} at {args.input_size}, {args.batch_size} images: "
          "max |ours - pytorch-grad-cam| / max |pytorch-grad-cam| per image")
    void = []
    for name in methods:
        d = differences(np.asarray(ours[name].cam), theirs[name])
        if np.isnan(d).all():
            void.append(name)
        worst = max(worst, float(np.nanmax(d)) if not np.isnan(d).all() else 0.0)
        print(f"{name:14s} " + " ".join("zero map" if np.isnan(v) else f"{v:.1e}" for v in d))
    print(f"worst {worst:.1e} (tolerance {args.tolerance:g})")
    if void:
        print(f"not compared: pytorch-grad-cam's {', '.join(void)} map is zero on every image (another --seed?)")
    return int(worst > args.tolerance or bool(void))


if __name__ == "__main__":
    sys.exit(main())
