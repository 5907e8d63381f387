"""AWS IoT back end for the Jobs FOTA flow: moto's control plane (S3, IoT, iot-data,
cognito-idp) plus what moto lacks: the job-execution state machine, the Jobs MQTT API and
notifications, the iot-jobs-data HTTPS API, shadow-over-MQTT, and AWS IoT's device identity
(mutual TLS on the MQTT gateway and the jobs HTTPS API, HTTPS for moto's S3).

    backend = AwsIotBackend(clock, pki=pki)          # pki: the scenario's (or its own)
    await backend.start(broker_host, broker_port, broker.service_credentials)
    iot = backend.client("iot"); jobs = backend.client("iot-jobs-data")
    backend.reset()        # between scenarios
    await backend.stop()
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from otaharness.runtime.pki import Pki
from otaharness.servers.aws_iot import moto_gaps
from otaharness.servers.aws_iot.identities import Identities, Principal
from otaharness.servers.aws_iot.jobs import Clock, JobsService, LoopScheduler
from otaharness.servers.aws_iot.jobs_http import JobsHttpApi
from otaharness.servers.aws_iot.moto_server import REGION, MotoServer
from otaharness.servers.aws_iot.mqtt_bridge import MqttBridge
from otaharness.servers.aws_iot.mqtt_gateway import MqttGateway
from otaharness.servers.aws_iot.shadows import ShadowService

__all__ = ["AwsIotBackend", "JobsService", "MotoServer", "MqttBridge", "JobsHttpApi", "ShadowService",
           "MqttGateway", "SERVER_NAMES"]

log = logging.getLogger(__name__)

# The host names a device resolves to us: the account's ATS data endpoint, S3 virtual-host
# buckets, and the service endpoints SDKs build.
SERVER_NAMES = (
    f"*.iot.{REGION}.amazonaws.com", f"iot.{REGION}.amazonaws.com",
    f"data.jobs.iot.{REGION}.amazonaws.com", "*.s3.amazonaws.com", "s3.amazonaws.com",
    f"*.s3.{REGION}.amazonaws.com", f"s3.{REGION}.amazonaws.com",
)
# What an SDK reaches us as when it verifies host names: the ATS endpoint of the account.
DATA_ENDPOINT = f"a1b2c3d4e5f6g7-ats.iot.{REGION}.amazonaws.com"


def _one_ticket(context: ssl.SSLContext) -> ssl.SSLContext:
    """One TLS 1.3 session ticket after each full handshake instead of OpenSSL's two (as s2n,
    AWS's TLS library, sends by default): a device can still resume its session, and each
    handshake costs the server one ticket less to seal: 1.4-1.5 -> 1.1-1.2 CPU ms a mutual-TLS
    1.3 handshake on the server side (handshakes on memory buffers), and serve aws-iot does two a
    tracker in a FOTA cycle (the MQTT connection after the reboot, the image's HTTPS)."""
    context.num_tickets = 1
    return context


class AwsIotBackend:
    """``plain_mqtt``: also serve MQTT without TLS on the gateway (identity not enforced there),
    for users who need it and for measuring what TLS costs; ``https=False``: moto (S3) over plain
    HTTP, for devices without TLS."""

    def __init__(self, clock: Clock, host: str = "127.0.0.1", *, pki: Pki | None = None,
                 plain_mqtt: bool = False, https: bool = True) -> None:
        self.clock = clock
        self.host = host
        self._owns_pki = pki is None
        self.pki = pki or Pki()
        self.plain_mqtt = plain_mqtt
        self.moto = MotoServer(host, tls_context=_one_ticket(self.pki.server_context(SERVER_NAMES)) if https else None)
        self.identities = Identities(self.moto.iot_backend)
        self.jobs: JobsService | None = None
        self.bridge: MqttBridge | None = None
        self.http: JobsHttpApi | None = None
        self.gateway: MqttGateway | None = None
        self.plain_gateway: MqttGateway | None = None

    async def start(self, broker_host: str, broker_port: int,
                    service_credentials: tuple[str, str] | None = None) -> None:
        loop = asyncio.get_running_loop()
        # ThreadedMotoServer.start() blocks until its socket listens: a few milliseconds.
        self.moto.start()
        self.jobs = JobsService(self.moto.iot_backend, self.clock, LoopScheduler(loop))
        device_cas = [self.pki.device_ca.certificate_pem]
        gateway_context = _one_ticket(self.pki.server_context(SERVER_NAMES, client_cas=device_cas,
                                                              require_client_certificate=True))
        http_context = _one_ticket(self.pki.server_context(SERVER_NAMES, client_cas=device_cas,
                                                           require_client_certificate=True))
        username, password = service_credentials if service_credentials else (None, None)
        self.gateway = MqttGateway(self.identities, gateway_context, broker_host=broker_host,
                                   broker_port=broker_port, service_username=username,
                                   service_password=password, host=self.host)
        self.http = JobsHttpApi(self.jobs, self.identities, ssl_context=http_context)
        moto_gaps.apply(self.jobs, device_ca=self.pki.device_ca, on_identity_change=self._identity_changed)
        self._trust_registered_cas()
        shadows = ShadowService(self.moto.iotdata_backend, self.clock, self.jobs.lock)
        self.bridge = MqttBridge(self.jobs, shadows, self.clock)
        self.jobs.set_on_change(self.bridge.on_change)
        await self.http.start(self.host)
        await self.gateway.start()
        if self.plain_mqtt:
            self.plain_gateway = MqttGateway(
                self.identities, None, broker_host=broker_host, broker_port=broker_port,
                service_username=username, service_password=password, host=self.host,
                plain_principal=Principal("", None, service=True))
            await self.plain_gateway.start()
        await self.bridge.start(broker_host, broker_port, credentials=service_credentials)
        if service_credentials is None:
            log.warning("the broker lets anonymous clients on $aws/ topics (the amqtt fallback or "
                        "a user's broker): identity is enforced only on the mqtts endpoint")

    def _identity_changed(self, status: bool) -> None:
        """From moto's threads, after a certificate, CA or thing principal changed; ``status``:
        something may have lost the right to connect."""
        self._trust_registered_cas()
        if status and self.gateway is not None:
            self.gateway.recheck_threadsafe()

    def _trust_registered_cas(self) -> None:
        cas = self.identities.trust_anchors()
        if self.gateway is not None:
            self.gateway.trust(cas)
        if self.http is not None:
            self.http.trust(cas)

    async def stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop()
        for gateway in (self.gateway, self.plain_gateway):
            if gateway is not None:
                await gateway.stop()
        if self.http is not None:
            await self.http.stop()
        if self.jobs is not None:
            self.jobs.reset()
        moto_gaps.remove()
        self.moto.stop()
        self.jobs = self.bridge = self.http = self.gateway = self.plain_gateway = None
        if self._owns_pki:
            self.pki.close()

    def reset(self) -> None:
        """Between scenarios: every moto backend wiped, timers and notification memory gone."""
        if self.jobs is not None:
            self.jobs.reset()
        self.moto.reset()

    def endpoints(self) -> dict[str, str]:
        """mqtts (the gateway), aws (moto over HTTPS), iot-jobs-data (HTTPS, client
        certificates), ca (the PEM file a client trusts); mqtt only with ``plain_mqtt``."""
        if self.http is None or self.http.url is None or self.gateway is None:
            raise RuntimeError("AwsIotBackend is not started")
        found = {"aws": self.moto.url, "iot-jobs-data": self.http.url, "mqtts": self.gateway.url,
                 "ca": str(self.pki.ca_file)}
        if self.plain_gateway is not None:
            found["mqtt"] = self.plain_gateway.url
        return found

    def register_issued_certificate(self, issued) -> dict[str, str]:
        """Register a device certificate as if AWS's own CA (the PKI's device CA) had issued it
        through CreateKeysAndCertificate, ACTIVE — e.g. one issued already expired."""
        from moto.iot.models import FakeCertificate

        backend = self.moto.iot_backend()
        record = FakeCertificate(issued.certificate_pem, "ACTIVE", backend.account_id, backend.region_name)
        backend.certificates[record.certificate_id] = record
        return {"certificateArn": record.arn, "certificateId": record.certificate_id}

    def client(self, service_name: str, *, certificate: tuple[str, str] | None = None) -> Any:
        """boto3 client (dummy credentials, us-east-1) for moto, or for our iot-jobs-data API
        (which needs a device's ``certificate``: (certificate file, key file))."""
        endpoint = self.endpoints()["iot-jobs-data"] if service_name == "iot-jobs-data" else None
        return self.moto.client(service_name, endpoint, ca_file=str(self.pki.ca_file),
                                client_certificate=certificate)
