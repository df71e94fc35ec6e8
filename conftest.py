"""pytest setup: XLA flags as the command lines use them, hypothesis profiles, doctest namespace."""

from __future__ import annotations

import os

from cam_jax.xla_flags import use_ynn_for_dots_only

# The suite is compile-bound (small models, many programs): LLVM without its optimisation passes
# compiles about a third faster and runs the same XLA programs (docs/BENCHMARKS.md).
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
use_ynn_for_dots_only()  # the settings the command lines run under; before JAX starts

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402

# Many tests compile the same programs (the default model's forward and GradCAM, the evaluation's
# steps) from functions jit cannot tell apart, in both xdist workers: one compilation cache on disk
# for the run (the workers inherit the directory from the controller) compiles each once.
if "CAM_JAX_TEST_XLA_CACHE" not in os.environ:
    os.environ["CAM_JAX_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="cam_jax_xla_")
    atexit.register(shutil.rmtree, os.environ["CAM_JAX_TEST_XLA_CACHE"], True)  # the run's own: gone after it
jax.config.update("jax_compilation_cache_dir", os.environ["CAM_JAX_TEST_XLA_CACHE"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

from hypothesis import settings  # noqa: E402

# jit compiles on the first example, so no deadline; CI replays the same examples, 6 of them (the
# properties draw seeds and constants on models built once, so an example costs a run, not a compile).
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=6, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _doctest_examples(doctest_namespace):
    """What docstring examples may use: the bundled default `model` and two generated `images`."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from cam_jax.convert import default_weights, load_weights
    from cam_jax.data import images as preprocessing
    from cam_jax.data import shapes

    model, _ = load_weights(default_weights())
    pixels = shapes.batch(shapes.TEST_SEED, range(2)).pixels
    doctest_namespace.update(jax=jax, jnp=jnp, np=np, model=model,
                             images=jnp.asarray(preprocessing.normalize(pixels)))

