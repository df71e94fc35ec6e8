"""Explanations of a `Model`: the engine (one forward, one head backward), the CAM weightings, the
forward-only CAMs, input-space attributions, targets and map utilities; `explain` runs any of them."""

from cam_jax.cams.engine import Explanation as Explanation
from cam_jax.cams.engine import cam_from_features as cam_from_features
from cam_jax.cams.engine import cams_from_features as cams_from_features
from cam_jax.cams.engine import gradcam as gradcam
from cam_jax.cams.maps import normalize as normalize
from cam_jax.cams.maps import upsample as upsample
from cam_jax.cams.methods import METHODS as METHODS
from cam_jax.cams.methods import explain as explain
from cam_jax.cams.methods import explain_many as explain_many
from cam_jax.cams.targets import TARGETS as TARGETS
from cam_jax.cams.weightings import WEIGHTINGS as WEIGHTINGS
from cam_jax.cams.weightings import Weighting as Weighting
from cam_jax.cams.weightings import grad_cam as grad_cam
from cam_jax.cams.weightings import hires_cam as hires_cam

__all__ = [
    "METHODS",
    "TARGETS",
    "WEIGHTINGS",
    "Explanation",
    "Weighting",
    "cam_from_features",
    "cams_from_features",
    "explain",
    "explain_many",
    "grad_cam",
    "gradcam",
    "hires_cam",
    "normalize",
    "upsample",
]
