"""Explanations of a `Model`: the gradient core (one forward, one head backward), the CAM weightings,
the forward-only CAMs, input-space attributions, targets and map utilities; one method registry."""

from cam_jax.cams.core import Explanation as Explanation
from cam_jax.cams.core import Gradients as Gradients
from cam_jax.cams.core import gradients as gradients
from cam_jax.cams.maps import NORMALIZATIONS as NORMALIZATIONS
from cam_jax.cams.maps import normalize as normalize
from cam_jax.cams.maps import upsample as upsample
from cam_jax.cams.methods import METHODS as METHODS
from cam_jax.cams.methods import explain as explain
from cam_jax.cams.methods import explain_many as explain_many
from cam_jax.cams.methods import gradcam as gradcam
from cam_jax.cams.targets import TARGETS as TARGETS
from cam_jax.cams.weightings import WEIGHTINGS as WEIGHTINGS
from cam_jax.cams.weightings import Weighting as Weighting

__all__ = [
    "METHODS",
    "NORMALIZATIONS",
    "TARGETS",
    "WEIGHTINGS",
    "Explanation",
    "Gradients",
    "Weighting",
    "explain",
    "explain_many",
    "gradcam",
    "gradients",
    "normalize",
    "upsample",
]
