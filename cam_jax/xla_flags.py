"""XLA CPU settings the command lines apply before JAX starts (never the library itself).

XLA's CPU backend (jaxlib 0.10) hands work to YNNPACK in two ways: whole
fusions of several ops, and single dots. The multi-op fusion runs VGG's
classifier many times slower than XLA's own code, while single YNNPACK dots
run the backward of fc1 several times faster than XLA's own dot (the timings:
docs/BENCHMARKS.md). So YNNPACK is kept for single dots only: GradCAM's head
backward becomes as cheap as its forward. On GPUs and TPUs the flag is ignored.
"""

from __future__ import annotations

import os

YNN_DOTS_ONLY = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"


def use_ynn_for_dots_only() -> None:
    """Append YNN_DOTS_ONLY to XLA_FLAGS unless the user set that flag; call before importing jax."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {YNN_DOTS_ONLY}".strip()
