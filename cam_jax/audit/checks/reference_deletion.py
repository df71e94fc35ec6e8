"""Reference mode: does the model's own GradCAM explain it as well as a trusted checkpoint's GradCAM does?

A fine-tuned attack (Heo et al. 2019) adds no channel, constant or branch: it is the same architecture
with new weights, and every intrinsic check passes it (docs/REPRODUCTION.md). What it cannot hide is a
disagreement between its map and its function. Given a trusted checkpoint of the same architecture (the
released weights a suspect claims to be a version of), both maps are tested on the suspect's function by
deletion at A: the cells a map ranks highest take another image's A there (an intervention that stays on
the data), and the suspect's top score drops by some amount. An honest version's own map picks the
cells its function uses at least as well as the reference's map does; a map tuned to lie picks cells the
function does not use, while the reference's map, made when the function was the same, still picks the
ones it does. The score is how much more the reference's cells move the suspect's score than its own:
(drop_reference - drop_own) / (|drop_reference| + |drop_own|), in [-1, 1].

What it cannot see (docs/GUIDE.md, "What the audit cannot see"): a lie that is partly true, whose credited
cells the tuned function was made to use almost as much (the learned target map; `reference_shift` sees
that its map moved far more than its function); a backdoor whose trigger is not in the images (the map is
honest there); a function retrained so that what the lying map credits is what the
function uses under this intervention (`finetune.deletion_gap`, `finetune_attack.py --evade`); and a
suspect that is not a version of the reference, whose own map should then explain it better anyway
(`reference_shift` flags it as no version).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from cam_jax.audit import deletion
from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe
from cam_jax.model import Model

THRESHOLD = 0.1  # between the honest versions and the attacks of docs/REPRODUCTION.md
CLEAN_RANGE = (-0.024, 0.015)  # honest fine-tunes of the bundled default (docs/REPRODUCTION.md)


def check(model: Model, probe: Probe) -> Finding:
    """(drop by the reference's cells - drop by the model's own) / (|one| + |other|), summed over the
    images, `deletion.FRACTIONS` and `deletion.DONORS`; the probe must hold a reference
    (`probe(..., reference=)`)."""
    cells = deletion.both_maps(model, probe)
    moved = np.asarray(deletion.drops(model, probe.a, probe.context, probe.top, jnp.asarray(cells)), np.float64)
    half = len(deletion.FRACTIONS)
    by_own, by_reference = moved[:half].sum(), moved[half:].sum()
    scale = abs(by_own) + abs(by_reference)
    if scale == 0:
        return Finding(0.0, "deleting cells of A moves no score: nothing to compare", None)
    score = (by_reference - by_own) / scale
    return Finding(float(score), f"deleting the cells the model's own GradCAM ranks highest drops its score by "
                                 f"{by_own / moved[:half].size:.3g} on average, the reference's GradCAM's by "
                                 f"{by_reference / moved[half:].size:.3g}", None)
