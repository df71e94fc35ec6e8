"""XLA CPU settings the command lines apply before JAX starts (never the library itself).

XLA's CPU backend (jaxlib 0.10) compiles VGG's whole classifier (pool, three
dense layers) into one YNNPACK fusion that runs about 15x slower than the
plain dots: measured on this project's machine, `head` at batch 8 took 2.0 s
with the fusion and 0.13 s without. Turning the YNN fusion pass off costs
nothing elsewhere; on GPUs and TPUs the flag is ignored.
"""

from __future__ import annotations

import os

NO_YNN_FUSION = "--xla_cpu_experimental_ynn_fusion_type="


def disable_ynn_fusion() -> None:
    """Append NO_YNN_FUSION to XLA_FLAGS unless the user set that flag; call before importing jax."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {NO_YNN_FUSION}".strip()
