"""cam_jax: GradCAM and the GradCAM manipulations of Viering et al. (BMVC 2019) in JAX."""

from cam_jax.gradcam import Explanation as Explanation
from cam_jax.gradcam import cam_from_features as cam_from_features
from cam_jax.gradcam import grad_cam as grad_cam
from cam_jax.gradcam import gradcam as gradcam
from cam_jax.gradcam import hires_cam as hires_cam
from cam_jax.gradcam import normalize as normalize
from cam_jax.gradcam import upsample as upsample
from cam_jax.model import Model as Model
from cam_jax.model import check_images as check_images
from cam_jax.vgg import VGG as VGG
from cam_jax.vgg import init_params as init_params
from cam_jax.vgg import vgg as vgg
from cam_jax import manipulate as manipulate
from cam_jax import stickers as stickers
