"""Property-based conformance of the LoRaWAN application API against its own /openapi.json
(schemathesis): no 5xx, only documented status codes and content types, responses matching their
schemas, and the document and the server agreeing on valid input both ways: a request breaking
the document is refused with a 4xx (``negative_data_rejection``), a request the document allows
never gets a 400, except for the refusals that depend on the server's state and that the
document's 400 names (no gateway to send a multicast frame through; a payload longer than the
group's data rate carries; a group whose frame counter is used up).

The back end runs on its own loop in a thread, with one station connected (so multicast frames
have a gateway); half of the generated cases get a registered device's EUI or an existing group's
name substituted, so that they reach past the 404s. Bounded by a small max_examples per operation;
nothing is skipped (schemathesis is a test dependency), so under CI=true this runs or fails.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from lorawan_live import ErrorLog, LiveLoRaWAN, live_lorawan
from openapi_spec_validator import validate as validate_openapi
from schemathesis import checks
from schemathesis.generation import GenerationMode

from otaharness.servers.lorawan.openapi import openapi_document

DEVICES = ("0004A30B001C0001", "0004A30B001C0002")  # class A ABP, class C OTAA
GROUP = "fleet"
STATE_DEPENDENT = ("no gateway to send the multicast frame through", "-octet FRMPayload",
                   "used up its 32-bit frame counter")


def no_bad_request_for_valid_input(ctx: Any, response: Any, case: Any) -> None:
    """A request valid by the document (positive mode) never gets 400, but for the refusals that
    depend on the server's state."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return
    error = response.json().get("error", "") if response.text.startswith("{") else response.text
    assert any(reason in error for reason in STATE_DEPENDENT), (
        f"{case.method} {case.formatted_path}: a request valid by the document got 400: {error!r} "
        f"(query {case.query!r}, body {str(case.body)[:300]})")


CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, no_bad_request_for_valid_input]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveLoRaWAN, ErrorLog]]:
    with live_lorawan(Path(tmp_path_factory.mktemp("lorawan-schemathesis"))) as (server, errors):
        with requests.Session() as http:
            http.trust_env = False
            http.headers["Authorization"] = f"Bearer {server.token}"
            for path, body in (
                    (f"/api/devices/{DEVICES[0]}", {"devAddr": "26011B01", "nwkSKey": "00" * 16, "appSKey": "11" * 16}),
                    (f"/api/devices/{DEVICES[1]}", {"appKey": "22" * 16, "joinEui": "70B3D57ED0000001", "class": "C"}),
                    (f"/api/multicast-groups/{GROUP}", {"mcAddr": "01020304", "mcNwkSKey": "33" * 16,
                                                        "mcAppSKey": "44" * 16, "frequency": 869525000, "dr": 0})):
                assert http.put(server.app + path, json=body, timeout=10).status_code == 201
        yield server, errors


def test_openapi_json_is_served_and_is_valid_openapi(live: tuple[LiveLoRaWAN, ErrorLog]) -> None:
    server, _ = live
    document = requests.get(server.app + "/openapi.json", timeout=10).json()
    validate_openapi(document)
    assert document == openapi_document(server.app)


schema = schemathesis.openapi.from_dict(openapi_document())
# Every call carries the token (above): a missing Authorization header is no negative case here.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                with_security_parameters=False)
_alternate = itertools.cycle([True, False])
_devices = itertools.cycle(DEVICES)


def test_both_generation_modes_and_the_coverage_phase_run() -> None:
    """What the conformance test relies on: without negative cases or boundary values it would
    not see an out-of-range FPort accepted or a valid frequency refused."""
    assert set(schema.config.generation.modes) == {GenerationMode.POSITIVE, GenerationMode.NEGATIVE}
    assert schema.config.phases.coverage.enabled and schema.config.phases.fuzzing.enabled


def use_real_ids(case: Any) -> None:
    if not next(_alternate) or not case.path_parameters:
        return
    if "eui" in case.path_parameters:
        case.path_parameters["eui"] = next(_devices)
    if "name" in case.path_parameters and case.method != "PUT":
        case.path_parameters["name"] = GROUP


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_application_api_conforms_to_its_openapi_document(case: Any, live: tuple[LiveLoRaWAN, ErrorLog]) -> None:
    server, errors = live
    use_real_ids(case)
    response = case.call(base_url=server.app, timeout=10, headers={"Authorization": f"Bearer {server.token}"})
    case.validate_response(response, checks=CHECKS)
    assert not errors.lines(), errors.lines()
