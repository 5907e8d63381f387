"""Property-based conformance of the FUOTA API against its own /openapi.json (schemathesis): no
5xx, only documented status codes and content types, responses matching their schemas.

The server runs on its own loop in a thread (fuota_live.py; schemathesis calls are synchronous).
Half of the generated cases get the id of a real campaign substituted, and half of the generated
campaign bodies get devices the network server knows, so that they reach past the 404s and the
"unknown device" 400s; bounded by a small max_examples per operation. schemathesis is a test
dependency (pyproject's ``test`` extra): this test never skips.
"""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis
from fuota_live import LiveFuota, device, good_config
from hypothesis import HealthCheck, settings
from schemathesis import checks

from otaharness.servers.fuota.openapi import openapi_document

CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance]

schema = schemathesis.openapi.from_dict(openapi_document())
_alternate = itertools.cycle([True, False])
_real_ids: list[int] = []


def substitute(case: Any, live: LiveFuota) -> None:
    if not next(_alternate):
        return
    if not _real_ids:  # campaigns to aim at: created, running, stopped
        created, running, stopped = (live.create(good_config(name=name, devices=(index,)))
                                     for index, name in ((0, "created"), (1, "running"), (2, "stopped")))
        assert live.request("POST", f"/campaigns/{running}/start").status_code == 202
        assert live.request("POST", f"/campaigns/{stopped}/start").status_code == 202
        assert live.request("POST", f"/campaigns/{stopped}/stop").status_code == 202
        _real_ids.extend([created, running, stopped])
    if case.path_parameters and "id" in case.path_parameters:
        case.path_parameters["id"] = _real_ids[hash(case.path) % len(_real_ids)]
    body = getattr(case, "body", None)
    if isinstance(body, dict) and isinstance(body.get("config"), dict):
        body["config"]["devices"] = [device(3), device(4)]


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_openapi_document(case: Any, live: LiveFuota) -> None:
    substitute(case, live)
    response = case.call(base_url=live.url, timeout=30, headers={"Authorization": f"Bearer {live.token}"})
    case.validate_response(response, checks=CHECKS)
