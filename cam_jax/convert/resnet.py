"""torchvision ResNet state_dicts (resnet50-0676ba61.pth and siblings) to the Flax parameter pytree.

Conv weights OIHW -> HWIO, fc weight [out, in] -> [in, out], and every batch
norm folded into the conv before it, in float64, so the converted network is a
chain of biased convolutions (`cam_jax.models.resnet`). The depth is read from
the keys (blocks per stage, bottleneck or basic); every key and shape is
checked and errors name the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from cam_jax.convert.checkpoint import check_params
from cam_jax.model import Model
from cam_jax.models.batch_norm import fold
from cam_jax.models.resnet import BLOCKS, ResNet, arch_name

BN_LEAVES = ("weight", "bias", "running_mean", "running_var")


def torch_prefix(path: tuple[str, ...]) -> str:
    """Our parameter path -> torchvision's key prefix: ("layer1_0", "downsample_bn") -> "layer1.0.downsample.1"."""
    names = {"downsample": "downsample.0", "downsample_bn": "downsample.1"}
    return ".".join(re.sub(r"^(layer\d)_(\d+)$", r"\1.\2", p) if p.startswith("layer") else names.get(p, p)
                    for p in path)


def infer_module(state: Mapping[str, Any], arch: str | None, source: str, input_size: int) -> ResNet:
    """The ResNet config a state_dict's keys and shapes describe, checked against `arch`."""
    counts = []
    for s in range(1, 5):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"layer{s}\.(\d+)\.", k))}
        if not found:
            raise ValueError(f"{source}: no layer{s} blocks: not a torchvision ResNet state_dict")
        counts.append(max(found) + 1)
    bottleneck = "layer1.0.conv3.weight" in state
    if "conv1.weight" not in state or "fc.weight" not in state:
        raise ValueError(f"{source}: key {'conv1.weight' if 'conv1.weight' not in state else 'fc.weight'} is missing")
    try:
        module = ResNet(blocks=tuple(counts), bottleneck=bottleneck, width=int(state["conv1.weight"].shape[0]),
                        num_classes=int(state["fc.weight"].shape[0]), input_size=input_size)
    except ValueError as err:  # e.g. an fc.weight of 0 rows: num_classes 0
        raise ValueError(f"{source}: conv1.weight {tuple(state['conv1.weight'].shape)} and fc.weight "
                         f"{tuple(state['fc.weight'].shape)} describe no ResNet: {err}") from err
    found = arch_name(module)
    if arch is not None:
        if arch not in BLOCKS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(BLOCKS)}")
        if found != arch:
            kind = "bottleneck" if bottleneck else "basic"
            hint = f" (it looks like {found})" if found else ""
            raise ValueError(f"{source} has {kind} blocks {tuple(counts)} but {arch} has "
                             f"{'bottleneck' if BLOCKS[arch][0] else 'basic'} blocks {BLOCKS[arch][1]}{hint}")
    return module


def from_state_dict(state: Mapping[str, Any], arch: str | None = None, source: str = "state_dict",
                    input_size: int = 224) -> Model:
    """torchvision ResNet state_dict (numpy arrays) -> `Model` with batch norm folded; arch inferred when None.

    `input_size` only sets the side A is computed for (a ResNet takes any size divisible by 32).

    Raises:
      ValueError: naming the first missing, extra or mis-shaped key.
    """
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    module = infer_module(state, arch, source, input_size)
    pairs = module.norm_pairs()
    expected = {"fc.weight", "fc.bias"} | {f"{torch_prefix(c)}.weight" for c, _ in pairs}
    expected |= {f"{torch_prefix(n)}.{leaf}" for _, n in pairs for leaf in BN_LEAVES}
    missing = sorted(expected - set(state))
    if missing:
        raise ValueError(f"{source}: key {missing[0]} is missing for {arch_name(module) or 'this ResNet'}")
    extra = sorted(set(state) - expected)
    if extra:
        raise ValueError(f"{source}: unexpected key {extra[0]} for {arch_name(module) or 'this ResNet'}")
    params: dict = {}
    for conv, norm in pairs:
        w = np.asarray(state[f"{torch_prefix(conv)}.weight"], np.float64)
        if w.ndim != 4:
            raise ValueError(f"{source}: {torch_prefix(conv)}.weight must be 4-D OIHW, got shape {w.shape}")
        bn = [np.asarray(state[f"{torch_prefix(norm)}.{leaf}"], np.float64) for leaf in BN_LEAVES]
        for leaf, value in zip(BN_LEAVES, bn, strict=True):
            if value.shape != (w.shape[0],):
                raise ValueError(f"{source}: {torch_prefix(norm)}.{leaf} has shape {value.shape}, its conv "
                                 f"{torch_prefix(conv)}.weight has {w.shape[0]} filters")
        kernel, bias = fold(w.transpose(2, 3, 1, 0), np.zeros(w.shape[0]), *bn)
        node = params
        for p in conv[:-1]:
            node = node.setdefault(p, {})
        node[conv[-1]] = {"kernel": kernel.astype(np.float32), "bias": bias.astype(np.float32)}
    params["fc"] = {"kernel": np.ascontiguousarray(np.asarray(state["fc.weight"], np.float32).T),
                    "bias": np.asarray(state["fc.bias"], np.float32)}
    check_params(params, module, source)
    return Model(module, params)
