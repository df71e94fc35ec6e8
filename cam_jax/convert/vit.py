"""torchvision VisionTransformer state_dicts (vit_b_16-c867db91.pth and siblings) to the Flax parameter pytree.

The patch embedding's conv OIHW -> HWIO, every linear weight [out, in] -> [in, out] (the packed
attention projection `in_proj_weight` as one kernel), LayerNorm weight -> scale. The config is read
from the shapes: width and patch from `conv_proj.weight`, depth from the keys, grid from
`encoder.pos_embedding`. The number of attention heads is in no shape: a torchvision size's, else
`heads`. An arch name holds for any width (as a ResNet's): patch and depth tell the sizes apart.
Older files name the MLP's layers `linear_1`/`linear_2`, as torchvision's loader still accepts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from cam_jax.convert.checkpoint import check_params
from cam_jax.model import Model
from cam_jax.models.vit import SIZES, ViT, arch_name

# our parameter path -> (torchvision key, how the array is laid out for us)
BLOCK_KEYS = {
    ("ln_1", "scale"): ("ln_1.weight", None), ("ln_1", "bias"): ("ln_1.bias", None),
    ("self_attention", "in_proj_kernel"): ("self_attention.in_proj_weight", "T"),
    ("self_attention", "in_proj_bias"): ("self_attention.in_proj_bias", None),
    ("self_attention", "out_proj", "kernel"): ("self_attention.out_proj.weight", "T"),
    ("self_attention", "out_proj", "bias"): ("self_attention.out_proj.bias", None),
    ("ln_2", "scale"): ("ln_2.weight", None), ("ln_2", "bias"): ("ln_2.bias", None),
    ("mlp_0", "kernel"): ("mlp.0.weight", "T"), ("mlp_0", "bias"): ("mlp.0.bias", None),
    ("mlp_3", "kernel"): ("mlp.3.weight", "T"), ("mlp_3", "bias"): ("mlp.3.bias", None),
}
TOP_KEYS = {
    ("conv_proj", "kernel"): ("conv_proj.weight", "HWIO"), ("conv_proj", "bias"): ("conv_proj.bias", None),
    ("class_token",): ("class_token", None), ("pos_embedding",): ("encoder.pos_embedding", None),
    ("ln", "scale"): ("encoder.ln.weight", None), ("ln", "bias"): ("encoder.ln.bias", None),
    ("head", "kernel"): ("heads.head.weight", "T"), ("head", "bias"): ("heads.head.bias", None),
}
PREFIX = "encoder.layers.encoder_layer_"


def renamed(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state_dict with the older MLP names (`mlp.linear_1`, `mlp.linear_2`) as torchvision's now."""
    return {re.sub(r"\.mlp\.linear_([12])\.", lambda m: f".mlp.{3 * int(m.group(1)) - 3}.", k): v
            for k, v in state.items()}


def infer_module(state: Mapping[str, Any], arch: str | None, source: str, heads: int | None) -> ViT:
    """The ViT config a state_dict's keys and shapes describe, checked against `arch`."""
    for key in ("conv_proj.weight", "encoder.pos_embedding", "heads.head.weight", f"{PREFIX}0.mlp.0.weight"):
        if key not in state:
            hint = " (a pre_logits layer: a representation size torchvision's released ViTs do not use)" \
                if key == "heads.head.weight" and "heads.pre_logits.weight" in state else ""
            raise ValueError(f"{source}: key {key} is missing{hint}")
    conv, pos = state["conv_proj.weight"].shape, state["encoder.pos_embedding"].shape
    depth = max(int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(PREFIX)}(\d+)\.", k))) + 1
    grid = math.isqrt(max(pos[1] - 1, 0)) if len(pos) == 3 else 0
    if len(conv) != 4 or len(pos) != 3 or grid * grid != pos[1] - 1 or pos[2] != conv[0]:
        raise ValueError(f"{source}: conv_proj.weight {tuple(conv)} and encoder.pos_embedding {tuple(pos)} describe "
                         "no ViT (a square grid of patches plus a class token, of the conv's width)")
    hidden, patch, mlp = int(conv[0]), int(conv[2]), int(state[f"{PREFIX}0.mlp.0.weight"].shape[0])
    if arch is not None and arch not in SIZES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(SIZES)}")
    if arch is not None and SIZES[arch][:2] != (patch, depth):
        found = next((a for a, size in SIZES.items() if size[:2] == (patch, depth)), None)
        raise ValueError(f"{source} has patch {patch} and {depth} layers, which is not {arch}"
                         f"{f' (it looks like {found})' if found else ''}")
    if heads is None:  # a torchvision size's, when the file is one
        heads = next((size[2] for size in SIZES.values() if size[:2] + size[3:] == (patch, depth, hidden, mlp)), None)
    if heads is None:
        raise ValueError(f"{source}: a ViT of width {hidden}, patch {patch}, {depth} layers is no torchvision size, "
                         "and the number of attention heads is in no shape: pass heads (from the command line, "
                         "convert it first: scripts/convert_weights.py FILE --out W.npz --heads N)")
    try:
        module = ViT(patch=patch, layers=depth, heads=heads, hidden=hidden, mlp=mlp,
                     num_classes=int(state["heads.head.weight"].shape[0]), input_size=grid * patch)
    except ValueError as err:
        raise ValueError(f"{source}: these shapes describe no ViT: {err}") from err
    return module


def from_state_dict(state: Mapping[str, Any], arch: str | None = None, source: str = "state_dict",
                    heads: int | None = None) -> Model:
    """torchvision VisionTransformer state_dict (numpy arrays) -> `Model`; arch inferred when None.

    Raises:
      ValueError: naming the first missing, extra or mis-shaped key.
    """
    state = renamed(state)
    module = infer_module(state, arch, source, heads)
    layout = dict(TOP_KEYS)
    for i in range(module.layers):
        layout.update({(f"encoder_layer_{i}", *path): (f"{PREFIX}{i}.{key}", how)
                       for path, (key, how) in BLOCK_KEYS.items()})
    expected = {key for key, _ in layout.values()}
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing:
        raise ValueError(f"{source}: key {missing[0]} is missing for {arch_name(module) or 'this ViT'}")
    if extra:
        raise ValueError(f"{source}: unexpected key {extra[0]} for {arch_name(module) or 'this ViT'}")
    params: dict = {}
    for path, (key, how) in layout.items():
        value = np.asarray(state[key], np.float32)
        if how == "T" and value.ndim != 2 or how == "HWIO" and value.ndim != 4:
            raise ValueError(f"{source}: {key} must be {'2-D' if how == 'T' else '4-D OIHW'}, got shape {value.shape}")
        value = value.T if how == "T" else value.transpose(2, 3, 1, 0) if how == "HWIO" else value
        node = params
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = np.ascontiguousarray(value)
    check_params(params, module, source)
    return Model(module, params)
