"""The AWS IoT side of the broker: answers jobs and shadow requests and publishes notify /
notify-next, as AWS IoT Core would.

`handle(topic, payload)` is the whole protocol logic (testable without a broker); the MQTT
wiring around it is thin. The bridge subscribes `$aws/things/+/jobs/#` and
`$aws/things/+/shadow/#` explicitly: `#`/`+` at the first level never match `$` topics
(MQTT-4.7.2-1). On a plain broker every subscriber of a response topic sees the response
(real AWS delivers it only to the requester).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from otaharness.protocols.aws_iot_jobs import (
    JOBS_SUBSCRIPTION,
    SHADOW_SUBSCRIPTION,
    DescribeRequest,
    GetPendingRequest,
    JobsRejection,
    JobsRequest,
    JobsTopic,
    RejectedCode,
    ShadowOperation,
    ShadowRejection,
    ShadowTopic,
    ShadowUpdateRequest,
    StartNextRequest,
    TopicError,
    UpdateRequest,
    accepted_topic,
    client_token_of,
    decode_jobs_payload,
    decode_shadow_payload,
    encode,
    execution_accepted,
    get_pending_accepted,
    is_response_topic,
    jobs_rejected,
    jobs_request,
    parse_jobs_topic,
    parse_shadow_topic,
    rejected_topic,
    shadow_rejected,
    split_thing_topic,
    update_accepted,
)
from otaharness.runtime.tasks import BackgroundTasks
from otaharness.servers.aws_iot.jobs import Clock, JobsService
from otaharness.servers.aws_iot.shadows import ShadowService

log = logging.getLogger(__name__)

Outgoing = list[tuple[str, bytes]]


class MqttBridge:
    def __init__(self, jobs: JobsService, shadows: ShadowService, clock: Clock) -> None:
        self.jobs = jobs
        self.shadows = shadows
        self._clock = clock
        self._client: Any = None  # otaharness.runtime.mqtt.MqttClient once started
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks = BackgroundTasks("AWS IoT MQTT bridge")

    def _now(self) -> int:
        return int(self._clock.epoch())

    # ------------------------------------------------------------------ protocol logic

    def handle(self, topic: str, payload: bytes) -> Outgoing:
        """One received message -> the messages to publish, in order (response first, then any
        notify/notify-next it caused). Never raises: bad input gets a rejected response."""
        if is_response_topic(topic):
            return []  # our own (or AWS-style) responses and events
        try:
            thing_name, rest = split_thing_topic(topic, "jobs")
        except TopicError:
            pass
        else:
            return self._handle_jobs(topic, thing_name, payload) if rest else []
        try:
            split_thing_topic(topic, "shadow")
        except TopicError:
            return []
        return self._handle_shadow(topic, payload)

    def notifications(self, thing_name: str) -> Outgoing:
        return [(topic, encode(body)) for topic, body in self.jobs.take_notifications(thing_name)]

    def _handle_jobs(self, topic: str, thing_name: str, payload: bytes) -> Outgoing:
        client_token: str | None = None
        try:
            document = decode_jobs_payload(payload)
            client_token = client_token_of(document)
            try:
                request_topic = parse_jobs_topic(topic)
            except TopicError as error:
                raise JobsRejection(RejectedCode.INVALID_TOPIC, str(error)) from None
            request = jobs_request(request_topic, document)
            body = self._serve_jobs(request_topic, request)
            out = [(accepted_topic(topic), encode(body))]
        except JobsRejection as rejection:
            out = [(rejected_topic(topic), encode(jobs_rejected(rejection, self._now(), client_token)))]
        except Exception:  # keep serving the other devices
            log.exception("jobs request on %s failed", topic)
            internal = JobsRejection(RejectedCode.INTERNAL_ERROR, "internal error")
            out = [(rejected_topic(topic), encode(jobs_rejected(internal, self._now(), client_token)))]
        return out + self.notifications(thing_name)

    def _serve_jobs(self, topic: JobsTopic, request: JobsRequest) -> dict[str, Any]:
        thing = topic.thing_name
        match request:
            case GetPendingRequest():
                in_progress, queued = self.jobs.get_pending(thing)
                return get_pending_accepted(in_progress, queued, self._now(), request.client_token)
            case StartNextRequest():
                execution = self.jobs.start_next(thing, request)
                return execution_accepted(execution, self._now(), request.client_token)
            case DescribeRequest():
                execution = self.jobs.describe(thing, request)
                return execution_accepted(
                    execution, self._now(), request.client_token, request.include_job_document
                )
            case UpdateRequest():
                return update_accepted(self.jobs.update(thing, request), request, self._now())
        raise AssertionError(request)

    def _handle_shadow(self, topic: str, payload: bytes) -> Outgoing:
        client_token: str | None = None
        try:
            document = decode_shadow_payload(payload)
            client_token = client_token_of(document)
            try:
                request_topic = parse_shadow_topic(topic)
            except TopicError as error:
                raise ShadowRejection(400, str(error)) from None
            return self._serve_shadow(request_topic, document, client_token)
        except ShadowRejection as rejection:
            body = shadow_rejected(rejection, self._now(), client_token)
        except Exception:
            log.exception("shadow request on %s failed", topic)
            body = shadow_rejected(ShadowRejection(500, "Internal service failure"), self._now(), client_token)
        return [(rejected_topic(topic), encode(body))]

    def _serve_shadow(self, topic: ShadowTopic, document: dict[str, Any], client_token: str | None) -> Outgoing:
        thing, name = topic.thing_name, topic.shadow_name
        match topic.operation:
            case ShadowOperation.UPDATE:
                result = self.shadows.update(thing, name, ShadowUpdateRequest.from_document(document))
                out = [(accepted_topic(topic), encode(result.accepted))]
                if result.delta is not None:
                    out.append((topic.event_topic("delta"), encode(result.delta)))
                out.append((topic.event_topic("documents"), encode(result.documents)))
                return out
            case ShadowOperation.GET:
                return [(accepted_topic(topic), encode(self.shadows.get(thing, name, client_token)))]
            case ShadowOperation.DELETE:
                return [(accepted_topic(topic), encode(self.shadows.delete(thing, name, client_token)))]
        raise AssertionError(topic.operation)

    # ------------------------------------------------------------------ MQTT wiring

    async def start(self, broker_host: str, broker_port: int, client_id: str = "otaharness-aws-iot",
                    credentials: tuple[str, str] | None = None) -> None:
        """Connect to the broker as the service user (``credentials``), the only one the broker
        lets on `$aws/...` topics besides the gateway."""
        from otaharness.runtime.mqtt import MqttClient  # the runtime's asyncio client

        self._loop = asyncio.get_running_loop()
        username, password = credentials if credentials is not None else (None, None)
        self._client = MqttClient(client_id, broker_host, broker_port, username=username,
                                  password=password)
        for topic_filter in (JOBS_SUBSCRIPTION, SHADOW_SUBSCRIPTION):
            self._client.add_handler(topic_filter, self._on_message)
        await self._client.connect()
        for topic_filter in (JOBS_SUBSCRIPTION, SHADOW_SUBSCRIPTION):
            await self._client.subscribe(topic_filter, qos=1)

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._client is not None:
            await self._client.disconnect()
            self._client = None

    def on_change(self, thing_name: str) -> None:
        """JobsService callback, from any thread (moto's handlers run in their own)."""
        if self._loop is not None and self._client is not None:
            self._loop.call_soon_threadsafe(self._publish_notifications, thing_name)

    def _publish_notifications(self, thing_name: str) -> None:
        messages = self.notifications(thing_name)
        if messages and self._loop is not None:
            self._tasks.spawn(self._publish(messages))

    async def _on_message(self, topic: str, payload: bytes) -> None:
        await self._publish(self.handle(topic, payload))

    async def _publish(self, messages: Outgoing) -> None:
        for topic, payload in messages:
            await self._client.publish(topic, payload, qos=1)
