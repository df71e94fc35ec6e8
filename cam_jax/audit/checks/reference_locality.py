"""Reference mode: did the function change only within images, where the maps look, and not between them?

An honest version changes its function on the data: swapping an image's whole A for another image's moves
its score differently from the reference about as much as deleting the cells the maps credit does. A term
written to move the maps and not the predictions must vary across the cells of an image (or no map would
take it) and barely across images (or the predictions would move): `adaptive.spread_term`, an fc1 edit that
walks past the other two reference checks, is such a term. It shows as a function changed under partial
deletions and hardly under whole swaps. The score is the ratio of the two changes (`deletion.change`), the
whole swaps' floored at `deletion.FLOOR`.

What it cannot see (docs/GUIDE.md, "What the audit cannot see"): a lie that also changes the function
between images, e.g. the spread term plus a temperature that differs by class, which pays in predictions
(3 points of accuracy on the default to pass); a lie in every logit alike (`adaptive.common_logit`), which
the score, read on the logits less their mean, does not see (the other two checks flag it); and the limits
of the other reference checks.
"""

from __future__ import annotations

import numpy as np

from cam_jax.audit import deletion
from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import Probe
from cam_jax.model import Model

THRESHOLD = 1.5  # 1.5 x the largest honest version's score on 16 images (docs/REPRODUCTION.md)
CLEAN_RANGE = (0.71, 1.02)  # honest fine-tunes of the bundled default (docs/REPRODUCTION.md)


def check(model: Model, probe: Probe) -> Finding:
    """The function's change under the maps' deletions / max(its change under whole-image swaps,
    `deletion.FLOOR`), both against the probe's reference (`deletion.change`)."""
    partial = deletion.change(model, probe, deletion.both_maps(model, probe))
    whole = deletion.change(model, probe, np.ones((1, *probe.a.shape[:3]), bool))
    return Finding(partial / max(whole, deletion.FLOOR),
                   f"the function's response to deleting the maps' top cells changed by {partial:.3g} of the "
                   f"reference's, to swapping whole images by {whole:.3g}", None)
