"""Property-based conformance of the CUPS port (the station's POST /update-info and the admin
API) against its own /openapi.json (schemathesis): no 5xx, only documented status codes and
content types, responses matching their schemas, and the document and the server agreeing on
valid input both ways: a request breaking the document is refused with a 4xx
(``negative_data_rejection``), and a request the document allows never gets a 400.

The server runs on its own loop in a thread (schemathesis calls are synchronous). Half of the
generated cases get a registered station EUI and a stored firmware name substituted, so that they
reach past the 404s; bounded by a small max_examples per operation. Nothing here is skipped:
schemathesis is a test dependency (pyproject ``[test]``), so under CI=true it runs or fails.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from basics_station_live import LiveBasicsStation, start_live
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate as validate_openapi
from schemathesis import checks
from schemathesis.generation import GenerationMode

from otaharness.servers.basics_station.openapi import openapi_document
from otaharness.servers.basics_station.registry import StationRecord

# The JSON reader's limits, which the document's info.description states (JSON Schema cannot): a
# positive CUPS request may carry unknown keys holding, say, a 25-digit integer. The codec words
# every such refusal (and only those) "CUPS request refused: <the reader's reason>".
JSON_LIMIT = "bad update-info request: CUPS request refused: "


def no_bad_request_for_valid_input(ctx: Any, response: Any, case: Any) -> None:
    """A request valid by the document (positive mode) never gets 400, but for a JSON limit."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return
    if response.text.startswith(JSON_LIMIT):
        return
    raise AssertionError(f"{case.method} {case.formatted_path}: a request valid by the document got 400: "
                         f"{response.text[:300]!r} (body {str(case.body)[:300]})")


CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, no_bad_request_for_valid_input]
STATION = "0000000000000001"
FIRMWARE = "fw-1"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBasicsStation]:
    server = start_live(tmp_path_factory.mktemp("cups-schemathesis"))
    server.call(lambda s: s.registry.put(StationRecord(1, cups_uri=server.cups, tc_uri=server.lns, package="v1")))
    server.call(lambda s: s.store.add(FIRMWARE, b"#!/bin/sh\n"))
    yield server
    server.stop()


def test_openapi_json_is_served_and_is_valid_openapi(live: LiveBasicsStation) -> None:
    document = requests.get(live.cups + "/openapi.json", timeout=10,
                            headers={"Authorization": f"Bearer {live.token}"}).json()
    validate_openapi(document)
    assert document == openapi_document(live.cups)
    assert set(document["paths"]) >= {"/update-info", "/admin/stations/{eui}", "/admin/stations/{eui}/cups",
                                      "/admin/stations/{eui}/reject", "/admin/firmware/{name}"}


schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
# Every call carries the admin token (below): a missing Authorization header must not count among
# a negative case's faults (its real ids would then make it a valid request). Refusals without the
# token are tested in test_station_tls.py and tests/runtime/test_bearer_tokens.py.
schema.config.generation.update(with_security_parameters=False)
# A negative CUPS request may also be over 2,048 bytes: 413 refuses it as well as 400 would.
_negative = schema.config.checks.negative_data_rejection
_negative.expected_statuses = [*_negative.expected_statuses, "413"]  # a new list: the old is shared
_alternate = itertools.cycle([True, False])


def test_both_generation_modes_and_the_coverage_phase_run() -> None:
    """What the conformance test relies on: without negative cases or boundary values it would
    not see an unknown field accepted or a 255-character URI refused."""
    assert set(schema.config.generation.modes) == {GenerationMode.POSITIVE, GenerationMode.NEGATIVE}
    assert schema.config.phases.coverage.enabled and schema.config.phases.fuzzing.enabled


def use_real_ids(case: Any) -> None:
    if not next(_alternate) or not case.path_parameters:
        return
    if "eui" in case.path_parameters:
        case.path_parameters["eui"] = STATION
    if "name" in case.path_parameters:
        case.path_parameters["name"] = FIRMWARE


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_cups_port_conforms_to_its_openapi_document(case: Any, live: LiveBasicsStation) -> None:
    use_real_ids(case)
    response = case.call(base_url=live.cups, timeout=10, headers={"Authorization": f"Bearer {live.token}"})
    case.validate_response(response, checks=CHECKS)
