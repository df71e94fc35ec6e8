"""Each check's threshold, and the range its score took on the honest population.

Provisional values, reasoned from the checks' definitions, until `scripts/audit_eval.py` measures
the honest population.
"""

THRESHOLDS = {
    "constant_channel": 3.0,
    "activation_dominance": 2.5,
    "class_invariance": 3.0,
    "gradient_dominance": 2.5,
    "finite_differences": 0.3,
    "weight_outliers": 2.5,
}
CLEAN_RANGES = {name: (0.0, 0.0) for name in THRESHOLDS}
