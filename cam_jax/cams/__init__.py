"""Explanations of a `Model`: the engine (one forward, one head backward) and its weightings."""

from cam_jax.cams.gradcam import Explanation as Explanation
from cam_jax.cams.gradcam import cam_from_features as cam_from_features
from cam_jax.cams.gradcam import gradcam as gradcam
from cam_jax.cams.maps import normalize as normalize
from cam_jax.cams.maps import upsample as upsample
from cam_jax.cams.weightings import Weighting as Weighting
from cam_jax.cams.weightings import grad_cam as grad_cam
from cam_jax.cams.weightings import hires_cam as hires_cam

__all__ = [
    "Explanation",
    "Weighting",
    "cam_from_features",
    "grad_cam",
    "gradcam",
    "hires_cam",
    "normalize",
    "upsample",
]
