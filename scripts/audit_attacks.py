"""The audit against every attack written to pass it, on one model and one image set.

    python scripts/audit_attacks.py                                  # the bundled default, 16 shapes
    python scripts/audit_attacks.py --weights W --seed 123 --attacks spike "position scale" --json rows.json

For the paper's T1-T4 and each attack of `cam_jax.manipulations.adaptive.ATTACKS`: the largest change
of any logit, how far GradCAM's normalised map moved (mean per pixel), the six magnitude checks' largest
score / threshold, the intervention check's score and the verdict (or the audit's refusal).
"""

from __future__ import annotations

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # before JAX starts: see cam_jax/xla_flags.py

import argparse
import sys

from cam_jax.atomic import write_json
from cam_jax.audit.probing import MIN_IMAGES
from cam_jax.convert import default_weights, load_weights
from cam_jax.data import shapes
from cam_jax.evaluation import red_team
from cam_jax.evaluation.population import audit_images

MAX_COUNT = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights to attack (default: the bundled default)")
    parser.add_argument("--count", type=int, default=16, help=f"generated images ({MIN_IMAGES} to {MAX_COUNT})")
    parser.add_argument("--seed", type=int, default=shapes.TEST_SEED, help="stream of the generated images")
    parser.add_argument("--attacks", nargs="+", default=None, choices=list(red_team.ATTACKS), metavar="NAME",
                        help=f"only these ({', '.join(red_team.ATTACKS)})")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    try:
        if not MIN_IMAGES <= args.count <= MAX_COUNT:
            raise ValueError(f"--count must be in [{MIN_IMAGES}, {MAX_COUNT}], got {args.count}")
        model, _ = load_weights(args.weights or default_weights())
        x = audit_images(model, args.count, args.seed)
    except (OSError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = red_team.assess(model, x, {n: red_team.ATTACKS[n] for n in args.attacks} if args.attacks else None)
    print(red_team.table(rows))
    if args.json:
        command = " ".join(sys.argv[1:] if argv is None else argv)
        write_json(args.json, {"command": f"python scripts/audit_attacks.py {command}", "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
