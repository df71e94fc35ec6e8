"""XLA CPU settings the command lines apply before JAX starts (never the library itself).

XLA's CPU backend (jaxlib 0.10) hands work to YNNPACK in two ways: whole
fusions of several ops, and single dots. Measured on this project's 2-core
machine (VGG-16, batch 8, `scripts/bench.py` and the dots timed alone):

- the multi-op fusion compiles VGG's classifier (pool, three dense layers) into
  one YNNPACK call that takes 1.6-2.0 s instead of 0.04-0.13 s;
- single dots through YNNPACK run the backward of fc1, `dr @ W1.T` with W1
  25088x4096, in 0.04 s, where XLA's own (Eigen) dot takes 0.21-0.23 s; the
  forward `z @ W1` is 0.07 s against Eigen's 0.05 s.

So YNNPACK is kept for single dots only: GradCAM's head backward becomes as
cheap as its forward. On GPUs and TPUs the flag is ignored.
"""

from __future__ import annotations

import os

YNN_DOTS_ONLY = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"


def use_ynn_for_dots_only() -> None:
    """Append YNN_DOTS_ONLY to XLA_FLAGS unless the user set that flag; call before importing jax."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {YNN_DOTS_ONLY}".strip()
