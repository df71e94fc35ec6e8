"""torchvision `.pth` files: read with `weights_only=True` (no code runs) and converted by architecture.

The family is told by the keys (`features.*` VGG, `layer1.*` ResNet, `conv_proj.*` ViT);
each family's converter (`cam_jax.convert.vgg`, `.resnet`, `.vit`) checks every key and shape.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from cam_jax.convert import resnet, vgg, vit
from cam_jax.convert.checkpoint import sha256
from cam_jax.model import Model
from cam_jax.models import registry

# Where training scripts commonly put the state_dict inside a checkpoint dict.
WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "module")


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A torch state_dict file as {key: float32 numpy array}, read with `weights_only=True`.

    Also takes a training checkpoint that holds the state_dict under one of `WRAPPERS`
    ({"model": state_dict, "epoch": 3, ...}); entries that are not tensors are not weights and are
    left out; bfloat16/float16 tensors and tensors that require grad are read as float32.
    """
    import torch  # optional dependency: pip install cam_jax[torch]

    path = os.fspath(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises many types for corrupt, truncated or code-carrying files
        # torch's own advice (load with weights_only=False) would run the file's code: never pass it on.
        reason = ("it holds objects other than tensors and plain containers, which only running code from "
                  "the file could rebuild (refused); save model.state_dict() with torch.save instead"
                  if "weights_only" in str(err) else str(err).splitlines()[0])
        raise ValueError(f"could not read {path} as a torch state_dict: {reason}") from err
    if isinstance(state, Mapping):
        for key in WRAPPERS:
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path} holds no tensors (keys: {sorted(map(str, state))[:8]})")
    return {k: v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
            for k, v in tensors.items()}


def family_of_state(state: Mapping[str, Any], source: str) -> str:
    """"vgg", "resnet" or "vit" from a state_dict's keys."""
    if any(k.startswith("features.") for k in state):
        return "vgg"
    if any(k.startswith("layer1.") for k in state):
        return "resnet"
    if "conv_proj.weight" in state and any(k.startswith("encoder.layers.") for k in state):
        return "vit"
    raise ValueError(f"{source}: not a torchvision VGG (features.*), ResNet (layer1.*) or ViT (conv_proj.*, "
                     "encoder.layers.*) state_dict")


def from_torchvision_state_dict(state: Mapping[str, Any], arch: str | None = None,
                                source: str = "state_dict", input_size: int | None = None,
                                heads: int | None = None) -> Model:
    """A torchvision VGG, ResNet or ViT state_dict (arrays) -> `Model`; arch checked when given, else inferred.

    `input_size`: the side the model explains at. A VGG's is fixed by fc1, a ViT's by its position
    embeddings (an other value is an error); a ResNet takes any multiple of 32 (default 224).
    `heads`: a ViT's attention heads, when it is no torchvision size (no shape holds them).

    Raises:
      ValueError: an unknown layout, the wrong architecture or input size, or a
        missing, extra or mis-shaped key (named).
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    family = family_of_state(state, source)
    if arch is not None and registry.ARCHS.get(arch, family) != family:
        raise ValueError(f"{source} holds a {family} state_dict, not {arch}")
    if heads is not None and family != "vit":
        raise ValueError(f"{source}: heads applies to a ViT, not a {family}")
    if family == "resnet":
        return resnet.from_state_dict(state, arch, source, input_size or 224)
    model = vgg.from_state_dict(state, arch, source) if family == "vgg" else vit.from_state_dict(state, arch, source,
                                                                                                 heads)
    if input_size not in (None, model.input_size):
        fixed = "fc1" if family == "vgg" else "position embedding"
        raise ValueError(f"{source}: this {family.upper() if family == 'vgg' else 'ViT'}'s {fixed} fixes its input at "
                         f"{model.input_size} pixels, not {input_size}")
    return model


def load_torchvision(path: str | os.PathLike, arch: str | None = None,
                     input_size: int | None = None, heads: int | None = None) -> tuple[Model, dict[str, Any]]:
    """Read a torchvision `.pth` (VGG, ResNet or ViT) and convert it; returns the model and its metadata."""
    path = os.fspath(path)
    model = from_torchvision_state_dict(read_state_dict(path), arch, path, input_size, heads)
    meta = {"arch": registry.arch_name(model.module), "preprocess": "torchvision", "source": os.path.basename(path)}
    return model, {**meta, "source_sha256": sha256(path)}
