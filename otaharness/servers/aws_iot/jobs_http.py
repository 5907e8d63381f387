"""The HTTPS data plane `iot-jobs-data` (what moto lacks), on its own loopback port: its REST
paths collide with the IoT control plane's (`/things/{thing}/jobs/{jobId}`), so it cannot share
moto's endpoint. Paths, shapes and errors from botocore's iot-jobs-data 2017-09-29 model.

As AWS serves it (a device's data plane): TLS with a client certificate; the certificate must be
registered and ACTIVE, and the thing in the path attached to it, else 403 ForbiddenException."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiohttp import web

from otaharness.protocols.aws_iot_jobs import (
    DescribeRequest,
    JobsRejection,
    RejectedCode,
    StartNextRequest,
    UpdateRequest,
    decode_jobs_payload,
    validate_thing_name,
)
from otaharness.runtime.pki import ClientTrust
from otaharness.servers.aws_iot.identities import Identities, IdentityRefused
from otaharness.servers.aws_iot.jobs import JobsService
from otaharness.servers.http_errors import undecodable_body
from otaharness.servers.http_service import HttpSite, serve_app

log = logging.getLogger(__name__)

# MQTT rejection code -> (HTTP status, botocore error shape). The REST model has no
# VersionMismatch error; AWS reports a stale expectedVersion as a conflict (409).
_HTTP_ERRORS: dict[RejectedCode, tuple[int, str]] = {
    RejectedCode.INVALID_JSON: (400, "InvalidRequestException"),
    RejectedCode.INVALID_REQUEST: (400, "InvalidRequestException"),
    RejectedCode.INVALID_TOPIC: (400, "InvalidRequestException"),
    RejectedCode.RESOURCE_NOT_FOUND: (404, "ResourceNotFoundException"),
    RejectedCode.INVALID_STATE_TRANSITION: (409, "InvalidStateTransitionException"),
    RejectedCode.VERSION_MISMATCH: (409, "InvalidStateTransitionException"),
    RejectedCode.TERMINAL_STATE_REACHED: (410, "TerminalStateException"),
    RejectedCode.REQUEST_THROTTLED: (429, "ThrottlingException"),
    RejectedCode.INTERNAL_ERROR: (503, "ServiceUnavailableException"),
}


def error_response(rejection: JobsRejection) -> web.Response:
    """AWS rest-json error: botocore reads the shape name from x-amzn-ErrorType."""
    status, error_type = _HTTP_ERRORS[rejection.code]
    return web.json_response(
        {"message": rejection.message}, status=status, headers={"x-amzn-ErrorType": error_type}
    )


async def _body(request: web.Request) -> dict[str, Any]:
    return decode_jobs_payload(await request.read())


def _query_document(request: web.Request) -> dict[str, Any]:
    """Query parameters as the JSON request fields they stand for."""
    document: dict[str, Any] = {}
    if "executionNumber" in request.query:
        document["executionNumber"] = request.query["executionNumber"]
    if "includeJobDocument" in request.query:
        raw = request.query["includeJobDocument"].lower()
        document["includeJobDocument"] = {"true": True, "false": False}.get(raw, raw)
    return document


def _forbidden(message: str) -> web.Response:
    return web.json_response({"message": message}, status=403,
                             headers={"x-amzn-ErrorType": "ForbiddenException"})


class JobsHttpApi:
    """With ``identities`` and ``ssl_context``: HTTPS, each request authorized by its
    connection's client certificate. Without: plain HTTP for in-process tests."""

    def __init__(self, jobs: JobsService, identities: Identities | None = None, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.jobs = jobs
        self.identities = identities
        self.ssl_context = ssl_context
        self._trust = ClientTrust(ssl_context) if ssl_context is not None else None
        self._site: HttpSite | None = None
        self.url: str | None = None

    def trust(self, ca_pems: list[str]) -> None:
        """Accept client certificates of these (registered) CAs from now on."""
        if self._trust is not None:
            self._trust.add(ca_pems)

    def _authorize(self, request: web.Request) -> web.Response | None:
        if self.identities is None:
            return None
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            principal = self.identities.authenticate(der)
        except IdentityRefused as refused:
            return _forbidden(str(refused))
        thing = request.match_info.get("thing", "")
        if not principal.service and self.identities.thing_of(principal, thing) is None:
            return _forbidden(f"thing {thing!r} is not attached to {principal.describe()}")
        return None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, undecodable_body])
        app.router.add_get("/things/{thing}/jobs", self.get_pending_job_executions)
        # `$next` must win over the `{job_id}` route.
        app.router.add_put("/things/{thing}/jobs/$next", self.start_next_pending_job_execution)
        app.router.add_get("/things/{thing}/jobs/{job_id}", self.describe_job_execution)
        app.router.add_post("/things/{thing}/jobs/{job_id}", self.update_job_execution)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        refusal = self._authorize(request)
        if refusal is not None:
            return refusal
        try:
            return await handler(request)
        except JobsRejection as rejection:
            return error_response(rejection)
        except web.HTTPException:
            raise  # aiohttp's own 404/405 for paths the API does not have
        except Exception:
            log.exception("iot-jobs-data %s %s failed", request.method, request.path)
            return error_response(JobsRejection(RejectedCode.INTERNAL_ERROR, "internal error"))

    @staticmethod
    def _thing(request: web.Request) -> str:
        return validate_thing_name(request.match_info["thing"])

    async def get_pending_job_executions(self, request: web.Request) -> web.Response:
        in_progress, queued = self.jobs.get_pending(self._thing(request))
        return web.json_response(
            {
                "inProgressJobs": [view.summary_json() for view in in_progress],
                "queuedJobs": [view.summary_json() for view in queued],
            }
        )

    async def start_next_pending_job_execution(self, request: web.Request) -> web.Response:
        thing = self._thing(request)
        execution = self.jobs.start_next(thing, StartNextRequest.from_document(await _body(request)))
        return web.json_response(
            {} if execution is None else {"execution": execution.execution_json(True, document_as_object=False)}
        )

    async def describe_job_execution(self, request: web.Request) -> web.Response:
        thing = self._thing(request)
        describe = DescribeRequest.from_document(_query_document(request), request.match_info["job_id"])
        execution = self.jobs.describe(thing, describe)
        if execution is None:
            return web.json_response({})
        return web.json_response(
            {"execution": execution.execution_json(describe.include_job_document, document_as_object=False)}
        )

    async def update_job_execution(self, request: web.Request) -> web.Response:
        thing = self._thing(request)
        update = UpdateRequest.from_document(await _body(request), request.match_info["job_id"])
        execution = self.jobs.update(thing, update)
        body: dict[str, Any] = {}
        if update.include_job_execution_state:
            body["executionState"] = execution.state.to_json()
        if update.include_job_document and execution.job_document is not None:
            body["jobDocument"] = execution.job_document
        return web.json_response(body)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._site = await serve_app(self.app(), host, port, ssl_context=self.ssl_context,
                                     actor="aws-iot-jobs")
        self.url = self._site.url
        return self.url

    async def stop(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
            self.url = None
