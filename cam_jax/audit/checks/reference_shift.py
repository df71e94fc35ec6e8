"""Reference mode: did the explanation move more than the function did, against a trusted checkpoint?

A version of a network that learnt something new changes its explanations about as much as its function;
an attack that keeps the function (distillation to the original) and tunes the map changes the one and not
the other. The explanation's change is GradCAM's, normalised by its maximum, per cell of A, between the
model and the reference (the matrix's "moved"). The function's change is how differently the two respond
to the same interventions: the cells either map ranks highest deleted at A (`audit.deletion`), the mean
|drop in the model / its mean |drop| - drop in the reference / its mean |drop||. The score is their
ratio, the function's change floored at `deletion.FLOOR` so that two functions that respond alike compare on their
maps alone. Beyond UNRELATED the two functions respond to deletions unlike any honest version of the
default did (a random initialisation of its architecture: 1.6); the model is then no version of the
reference, nothing is compared, and the score is THRESHOLD x changed / UNRELATED: flagged, since the
claim that it is a version fails.

What it cannot see (docs/GUIDE.md, "What the audit cannot see"): a tuned map that the function was made
to follow under these deletions as well (the function's change then grows with the map's); a lie that
costs the function as much as an honest retraining would (top-k, which lost 1.2 points of accuracy,
scores 0.26-0.38, inside the honest range; `reference_deletion` catches it); a backdoor whose trigger
is not in the images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cam_jax.audit import deletion
from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe
from cam_jax.cams.maps import normalize
from cam_jax.cams.weightings import grad_cam
from cam_jax.model import Model

UNRELATED = 0.6  # above this change the model is not a version of the reference (honest versions: <= 0.28)
THRESHOLD = 0.68  # 1.5 x the largest honest version's score on 16 images (docs/REPRODUCTION.md)
CLEAN_RANGE = (0.160, 0.452)  # honest fine-tunes of the bundled default (docs/REPRODUCTION.md)


def check(model: Model, probe: Probe) -> Finding:
    """GradCAM's change per cell / max(the function's change under the same deletions (`deletion.change`),
    `deletion.FLOOR`)."""
    changed = deletion.change(model, probe, deletion.both_maps(model, probe))
    own = grad_cam(probe.a, probe.top_grads)
    moved = float(jnp.abs(normalize(jax.nn.relu(own)) - normalize(jax.nn.relu(probe.reference.cam))).mean())
    if changed > UNRELATED:
        # Not a pass: the claim reference mode tests is that the model is a version, and a score of 0 here
        # would let an attack that also changed its function's response walk past the shift.
        return Finding(THRESHOLD * changed / UNRELATED,
                       f"the function responds to deleting the maps' top cells unlike the reference's (changed by "
                       f"{changed:.3g} of its response, above {UNRELATED}): not a version of it, nothing compared",
                       None)
    score = moved / max(changed, deletion.FLOOR)
    return Finding(score, f"GradCAM moved {moved:.3g} per cell of A from the reference's, while the function's "
                          f"response to deleting the maps' top cells changed by {changed:.3g} of the reference's", None)
