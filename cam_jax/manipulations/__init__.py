"""Manipulations: pure model-to-model functions that make explanations lie (the paper's T1-T4),
the combinators and branches they are built from, `chain`, and attacks by fine-tuning."""

from cam_jax.manipulations.compose import Manipulation as Manipulation
from cam_jax.manipulations.compose import chain as chain
from cam_jax.manipulations.paper import DETECTOR_TOLERANCE as DETECTOR_TOLERANCE
from cam_jax.manipulations.paper import constant_flat as constant_flat
from cam_jax.manipulations.paper import constant_image as constant_image
from cam_jax.manipulations.paper import detector_params as detector_params
from cam_jax.manipulations.paper import injected_map as injected_map
from cam_jax.manipulations.paper import semi_random as semi_random
from cam_jax.manipulations.paper import sticker_backdoor as sticker_backdoor
from cam_jax.manipulations.weight_edit import AppendedFilters as AppendedFilters
from cam_jax.manipulations.weight_edit import append_filter as append_filter
from cam_jax.manipulations.weight_edit import editable as editable

__all__ = [
    "DETECTOR_TOLERANCE",
    "AppendedFilters",
    "Manipulation",
    "append_filter",
    "editable",
    "chain",
    "constant_flat",
    "constant_image",
    "detector_params",
    "injected_map",
    "semi_random",
    "sticker_backdoor",
]
