"""Convert a torchvision .pth (VGG, ResNet or ViT) or Keras .h5 (VGG) weight file to cam_jax's .npz format.

    python scripts/convert_weights.py vgg16-397923af.pth --out weights/vgg16.npz
    python scripts/convert_weights.py resnet50-0676ba61.pth --out weights/resnet50.npz --arch resnet50
    python scripts/convert_weights.py vit_b_16-c867db91.pth --out weights/vit_b_16.npz
    python scripts/convert_weights.py my_vit.pth --out my_vit.npz --heads 6   # a ViT of no torchvision size
"""

from __future__ import annotations

import argparse
import os
import sys

import jax

from cam_jax import convert
from cam_jax.convert import checkpoint
from cam_jax.models.registry import ARCHS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="torchvision state_dict (.pth) or Keras weights (.h5)")
    parser.add_argument("--out", required=True, help="destination .npz")
    parser.add_argument("--arch", default=None, metavar="|".join(sorted(ARCHS)),
                        help="checked against the file; inferred if omitted")
    parser.add_argument("--format", choices=("torchvision", "keras"), default=None, help="default: by extension")
    parser.add_argument("--heads", type=int, default=None,
                        help="a ViT's attention heads, when it is no torchvision size (no weight's shape holds them)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and os.path.exists(args.src) and os.path.samefile(args.src, args.out):
        print(f"error: --out {args.out} is the source file: it would be written over", file=sys.stderr)
        return 2
    fmt = args.format or ("keras" if args.src.endswith((".h5", ".hdf5", ".keras")) else "torchvision")
    if args.heads is not None and fmt == "keras":
        print("error: --heads applies to a torchvision ViT", file=sys.stderr)
        return 2
    try:
        if fmt == "keras":
            model, meta = convert.load_keras(args.src, args.arch)
        else:
            model, meta = convert.load_torchvision(args.src, args.arch, heads=args.heads)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    checkpoint.save(args.out, model, **meta)
    n = sum(x.size for x in jax.tree.leaves(model.params))
    name = meta["arch"] or type(model.module).__name__
    print(f"{name}: {n:,} parameters, {meta['preprocess']} preprocessing -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
