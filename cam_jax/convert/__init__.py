"""Weight files: torchvision and Keras conversion, and cam_jax's own checkpoint format."""

from cam_jax.convert import checkpoint as checkpoint
from cam_jax.convert.keras import load_keras as load_keras
from cam_jax.convert.load import default_weights as default_weights
from cam_jax.convert.load import load_weights as load_weights
from cam_jax.convert.torchvision import from_torchvision_state_dict as from_torchvision_state_dict
from cam_jax.convert.torchvision import load_torchvision as load_torchvision

__all__ = [
    "checkpoint",
    "default_weights",
    "from_torchvision_state_dict",
    "load_keras",
    "load_torchvision",
    "load_weights",
]
