"""The policy pack: `pulumi preview --policy-pack infra/policy` runs this to serve the rules."""

from __future__ import annotations

import sys
from pathlib import Path

# Pulumi runs the pack from infra/policy; the rules are imported by their package name.
_ROOT = str(Path(__file__).resolve().parent.parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pulumi_policy import PolicyPack  # noqa: E402 (after the path fix above)

from infra.policy.rules import MANDATORY, policies  # noqa: E402

PolicyPack(name="predict-buy", enforcement_level=MANDATORY, policies=policies())
