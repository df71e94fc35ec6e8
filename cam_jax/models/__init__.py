"""Architectures in two halves (features: x -> A, head: A -> logits): VGG, ResNet, any cut flax network."""

from cam_jax.models.batch_norm import fold_batch_norm as fold_batch_norm
from cam_jax.models.cut import Cut as Cut
from cam_jax.models.cut import cut as cut
from cam_jax.models.init import init_params as init_params
from cam_jax.models.init import param_shapes as param_shapes
from cam_jax.models.registry import ARCHS as ARCHS
from cam_jax.models.registry import arch_name as arch_name
from cam_jax.models.registry import build_model as build_model
from cam_jax.models.resnet import ResNet as ResNet
from cam_jax.models.vgg import VGG as VGG
from cam_jax.models.vit import ViT as ViT

__all__ = [
    "ARCHS",
    "Cut",
    "ResNet",
    "VGG",
    "ViT",
    "arch_name",
    "build_model",
    "cut",
    "fold_batch_norm",
    "init_params",
    "param_shapes",
]
