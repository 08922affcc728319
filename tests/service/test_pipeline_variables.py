"""The service's typo check on PREDICT_BUY_* variables knows the training pipeline's variable."""

from __future__ import annotations

from ml.evaluate import OVERRIDE_ENV
from service.__main__ import PIPELINE_VARIABLES, unknown_variables


def test_the_gate_override_is_not_reported_as_a_typo():
    assert OVERRIDE_ENV in PIPELINE_VARIABLES
    environ = {OVERRIDE_ENV: "reason", "PREDICT_BUY_PORT": "8000", "PREDICT_BUY_PROT": "1"}
    assert unknown_variables(environ) == "PREDICT_BUY_PROT"
