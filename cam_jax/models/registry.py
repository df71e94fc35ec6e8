"""One registry of architectures: build a module by name, save its config, rebuild it from a file.

A family is a linen module class whose dataclass fields are its whole config
(`VGG`, `ResNet`); an arch name ("vgg16", "resnet50") is a family's builder with
its depth fixed. The checkpoint format stores the family and the fields, so any
registered architecture saves and loads; adding one is its module plus an entry here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn

from cam_jax.models import resnet, vgg, vit

# family name -> (module class, builder(arch, **kw), arch names, arch_name(module))
FAMILIES: dict[str, tuple[type[nn.Module], Callable[..., nn.Module], tuple[str, ...], Callable]] = {
    "vgg": (vgg.VGG, vgg.build, tuple(vgg.STAGES), vgg.arch_name),
    "resnet": (resnet.ResNet, resnet.build, tuple(resnet.BLOCKS), resnet.arch_name),
    "vit": (vit.ViT, vit.build, tuple(vit.SIZES), vit.arch_name),
}
ARCHS: dict[str, str] = {arch: family for family, (_, _, archs, _) in FAMILIES.items() for arch in archs}


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """The module of a registered arch ("vgg11" ... "vgg19", "resnet18" ... "resnet152", "vit_b_16" ... "vit_h_14").

    Example:
      >>> build_model("resnet50").channels, build_model("vgg16", width=1 / 16).hidden
      (2048, 256)
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    return FAMILIES[ARCHS[arch]][1](arch, **kwargs)


def title(arch: str) -> str:
    """How papers write an arch name: "vgg16" -> "VGG-16", "resnet50" -> "ResNet-50", "vit_b_16" -> "ViT-B/16".

    Example:
      >>> title("vit_l_32"), title("resnet18")
      ('ViT-L/32', 'ResNet-18')
    """
    family = ARCHS.get(arch, "")
    if family == "vit":
        _, size, patch = arch.split("_")
        return f"ViT-{size.upper()}/{patch}"
    spelled = {"vgg": "VGG", "resnet": "ResNet"}.get(family)
    return f"{spelled}-{arch[len(family):]}" if spelled else arch


def family_of(module: nn.Module) -> str:
    """The registered family of `module`; a `TypeError` for anything else (a wrapper, a cut network)."""
    for family, (cls, *_) in FAMILIES.items():
        if type(module) is cls:
            return family
    raise TypeError(f"{type(module).__name__} is not a registered architecture ({', '.join(FAMILIES)}); "
                    "manipulations and cut networks are rebuilt from their base model by code")


def arch_name(module: nn.Module) -> str | None:
    """"vgg16", "resnet50", ... for a registered module of a known depth, else None."""
    return FAMILIES[family_of(module)][3](module)


def config(module: nn.Module) -> dict[str, Any]:
    """The JSON-able dataclass fields that rebuild `module` (tuples as lists)."""
    family_of(module)

    def plain(v):
        return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v

    return {f.name: plain(getattr(module, f.name)) for f in dataclasses.fields(module)
            if f.name not in ("parent", "name")}


def from_config(family: str, fields: dict[str, Any]) -> nn.Module:
    """Rebuild a module of `family` from `config`'s output; unknown fields are an error."""
    if family not in FAMILIES:
        raise ValueError(f"unknown architecture family {family!r}; registered: {sorted(FAMILIES)}")
    cls = FAMILIES[family][0]
    known = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{family} has no fields {unknown}")

    def frozen(v):
        return tuple(frozen(x) for x in v) if isinstance(v, list) else v

    return cls(**{k: frozen(v) for k, v in fields.items()})
