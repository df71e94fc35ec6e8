"""What the tests import: random models, files they make themselves, and independent torch references
(`oracles`, which need the torch extra). Nothing here imports pytest."""

from cam_jax.testing.files import script as script
from cam_jax.testing.files import write_fake_val_tar as write_fake_val_tar
from cam_jax.testing.files import write_tiny_weights as write_tiny_weights
from cam_jax.testing.models import assert_trees_all_close as assert_trees_all_close
from cam_jax.testing.models import l1 as l1
from cam_jax.testing.models import model_and_images as model_and_images
from cam_jax.testing.models import new_channel_alpha as new_channel_alpha
from cam_jax.testing.models import random_model as random_model
from cam_jax.testing.models import tiny_model as tiny_model
from cam_jax.testing.oracles import GRAD_CAM_CLASSES as GRAD_CAM_CLASSES
from cam_jax.testing.oracles import grad_cam as grad_cam
from cam_jax.testing.oracles import grad_cam_maps as grad_cam_maps
from cam_jax.testing.oracles import make_torch_vgg as make_torch_vgg
from cam_jax.testing.oracles import tiny_params as tiny_params
from cam_jax.testing.oracles import torch_ablation_cam as torch_ablation_cam
from cam_jax.testing.oracles import torch_cam as torch_cam
from cam_jax.testing.oracles import torch_gradcam as torch_gradcam
from cam_jax.testing.oracles import torch_network as torch_network
from cam_jax.testing.oracles import torch_reference_maps as torch_reference_maps
from cam_jax.testing.oracles import torch_resnet as torch_resnet
from cam_jax.testing.oracles import torch_score_cam as torch_score_cam
from cam_jax.testing.oracles import torch_tiny as torch_tiny
from cam_jax.testing.oracles import torch_tiny_gradcam as torch_tiny_gradcam
from cam_jax.testing.oracles import torch_vgg as torch_vgg
from cam_jax.testing.oracles import torch_vit as torch_vit
from cam_jax.testing.oracles import torch_vit_cam as torch_vit_cam
from cam_jax.testing.oracles import torch_vit_split as torch_vit_split
from cam_jax.testing.oracles import vit_reshape as vit_reshape
