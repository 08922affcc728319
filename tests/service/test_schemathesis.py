"""Property-based tests of the OpenAPI document: no 5xx, every answer fits it, and it agrees with
the validator both ways (what it allows is accepted, what it forbids is refused).

Each operation of the live server's /openapi.json gets generated requests (valid and invalid
ones, a bounded number) and every response is checked against the document.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service.conftest import LiveServer

pytestmark = [pytest.mark.e2e]

EXAMPLES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    # The document and the validator agree both ways: what it allows is accepted (2xx), what it
    # forbids is refused (4xx).
    positive_data_acceptance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def test_the_api_honours_its_openapi_document(server: LiveServer) -> None:
    # given the live server's own OpenAPI document
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {operation.path for operation in operations}
    assert {"/predict", "/predict/batch", "/model", "/metrics", "/"} <= paths, paths
    for operation in operations:
        # Valid requests and invalid ones (wrong types, missing and unknown fields) alike.

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(*(operation.as_strategy(mode) for mode in GenerationMode)))
        def check(case: schemathesis.Case) -> None:
            # when a generated request is sent / then no 5xx, and the answer fits the document
            case.call_and_validate(base_url=server.base_url, checks=CHECKS)

        check()
