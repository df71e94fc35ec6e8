"""Audit: checks that tell a manipulated model from an honest one, a verdict, and what to trust instead.

`audit_model(model, images)` runs the checks (`CHECKS`, one module each in `cam_jax.audit.checks`)
on unlabelled images and returns a `Report`; `recommend` gives the explanation without the
channels it flags (`excluded`: any explanation method on the model without them).
"""

from cam_jax.audit.checks import CHECKS as CHECKS
from cam_jax.audit.checks import REFERENCE_CHECKS as REFERENCE_CHECKS
from cam_jax.audit.checks import Check as Check
from cam_jax.audit.probing import Probe as Probe
from cam_jax.audit.probing import probe as probe
from cam_jax.audit.recommendation import Excluded as Excluded
from cam_jax.audit.recommendation import Recommendation as Recommendation
from cam_jax.audit.recommendation import excluded as excluded
from cam_jax.audit.recommendation import recommend as recommend
from cam_jax.audit.verdict import CheckResult as CheckResult
from cam_jax.audit.verdict import Report as Report
from cam_jax.audit.verdict import audit_model as audit_model

__all__ = ["CHECKS", "REFERENCE_CHECKS", "Check", "CheckResult", "Excluded", "Probe", "Recommendation", "Report",
           "audit_model", "excluded", "probe", "recommend"]
