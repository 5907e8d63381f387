"""Property-based conformance of the OLT API against its own /openapi.json (schemathesis):
no 5xx, only documented status codes and content types, responses matching their schemas, and
the document and the server agreeing on what is valid input both ways:

- schema-violating input (negative cases: a status outside the enum, a page that is not an
  integer, a missing path) is refused with a 4xx (``negative_data_rejection``);
- schema-valid input (positive cases) is never refused as a bad request: 400 means "the request
  breaks the document", so a page the document allows, or a path matching its pattern, must not
  get one (``no_bad_request_for_valid_input``). Other 4xx remain possible for valid input: 404
  (ids drawn at random), 409/410/423 (state), 413 (size), 422 (rules the document cannot state,
  such as a device type's own fields). The one 400 the document allows for valid input is a
  JSON limit its info.description states (nesting, 64-bit integers), which JSON Schema cannot.

The server runs on its own loop in a thread (schemathesis calls are synchronous). Half of the
generated cases get real resource ids substituted so that they reach past the 404s; bounded by a
small max_examples per operation. Positive and negative modes and the coverage phase (boundary
values: page 1,000,000 and 1,000,001, an empty path, a status outside the enum) all run.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from olt_world import LiveServer, live_server
from schemathesis import checks
from schemathesis.generation import GenerationMode

from otaharness.servers.olt.openapi import openapi_document

JSON_LIMIT_DETAIL = "the body exceeds a JSON limit"


def no_bad_request_for_valid_input(ctx: Any, response: Any, case: Any) -> None:
    """A schema-valid request (positive mode) never gets 400, except for a JSON limit."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return
    errors = response.json().get("errors", [{}]) if response.text.startswith("{") else [{}]
    detail = str(errors[0].get("detail", ""))
    body = case.body if isinstance(case.body, (dict, list, str, int, float, bool)) else None
    assert detail.startswith(JSON_LIMIT_DETAIL), (
        f"{case.method} {case.formatted_path}: a request valid by the document got 400: {detail!r} "
        f"(query {case.query!r}, body {str(body)[:300]})")


CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, no_bad_request_for_valid_input]


@pytest.fixture(scope="module")
def live() -> Any:
    with live_server("olt-schemathesis") as server:
        yield server


schema = schemathesis.openapi.from_dict(openapi_document())
# Every call carries a valid token (below): schemathesis must not count a missing Authorization
# header among a negative case's faults (the case would then be valid apart from unknown query
# parameters, which the server ignores as HTTP APIs do).
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                with_security_parameters=False)
# A negative body may also be too large: 413 refuses it as well as 400/422 would.
_negative = schema.config.checks.negative_data_rejection
_negative.expected_statuses = [*_negative.expected_statuses, "413"]  # a new list: the old is shared
_alternate = itertools.cycle([True, False])


def use_real_ids(case: Any, live: LiveServer) -> None:
    if not next(_alternate) or not case.path_parameters:
        return
    for prefix, ids in live.ids.items():
        if prefix.startswith("/") and case.path.startswith(prefix + "/"):
            case.path_parameters["id"] = ids[0]
    if "installationId" in case.path_parameters:
        case.path_parameters["installationId"] = live.ids["installationId"][0]


def test_both_generation_modes_and_the_coverage_phase_run() -> None:
    """What the conformance test relies on: without negative cases or boundary values it would
    not have seen status=bogus accepted or page=1000001 refused."""
    assert set(schema.config.generation.modes) == {GenerationMode.POSITIVE, GenerationMode.NEGATIVE}
    assert schema.config.phases.coverage.enabled and schema.config.phases.fuzzing.enabled


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_openapi_document(case: Any, live: LiveServer) -> None:
    use_real_ids(case, live)
    # Each operation with the token its security requirement names (tenants: the operator's).
    token = live.server.operator_token if case.operation.path == "/v1/tenants" else live.token
    response = case.call(base_url=live.url, headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
    case.validate_response(response, checks=CHECKS)
