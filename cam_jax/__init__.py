"""cam_jax: CNN explanations (GradCAM and its family) and the manipulations that make them lie, in JAX.

Subpackages by concept, each importing only those before it: `models` and `data` (on `model`, the
Model pytree), `convert` (weight files and the checkpoint format), `cams` (the gradient core, the
method registry, the explanations), `manipulations` (the paper's T1-T4, combinators, fine-tuning
attacks), `metrics` and `audit` (checks that flag a manipulated model), `evaluation` (configs,
the suite, the fused step, tables, the matrix, the audit's populations).
"""

from cam_jax import audit as audit
from cam_jax import cams as cams
from cam_jax import convert as convert
from cam_jax import data as data
from cam_jax import evaluation as evaluation
from cam_jax import manipulations as manipulations
from cam_jax import metrics as metrics
from cam_jax import models as models
from cam_jax.audit import audit_model as audit_model
from cam_jax.cams import Explanation as Explanation
from cam_jax.cams import explain as explain
from cam_jax.cams import explain_many as explain_many
from cam_jax.cams import gradcam as gradcam
from cam_jax.cams import normalize as normalize
from cam_jax.cams import upsample as upsample
from cam_jax.convert import default_weights as default_weights
from cam_jax.convert import load_weights as load_weights
from cam_jax.manipulations import chain as chain
from cam_jax.manipulations import constant_flat as constant_flat
from cam_jax.manipulations import constant_image as constant_image
from cam_jax.manipulations import semi_random as semi_random
from cam_jax.manipulations import sticker_backdoor as sticker_backdoor
from cam_jax.model import Model as Model
from cam_jax.model import check_images as check_images
from cam_jax.models import VGG as VGG
from cam_jax.models import ResNet as ResNet
from cam_jax.models import build_model as build_model
from cam_jax.models import cut as cut
from cam_jax.models import init_params as init_params

__all__ = [
    "Explanation",
    "Model",
    "ResNet",
    "VGG",
    "audit",
    "audit_model",
    "build_model",
    "cams",
    "chain",
    "check_images",
    "constant_flat",
    "constant_image",
    "convert",
    "cut",
    "data",
    "default_weights",
    "evaluation",
    "explain",
    "explain_many",
    "gradcam",
    "init_params",
    "load_weights",
    "manipulations",
    "metrics",
    "models",
    "normalize",
    "semi_random",
    "sticker_backdoor",
    "upsample",
]
