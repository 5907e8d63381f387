"""The AWS IoT back end as a runtime service: moto plus our jobs data plane on the scenario broker,
devices on mutual TLS with the scenario's PKI.

Against an external target (`[targets.aws-iot]` with `aws` and `mqtts` (or `mqtt`) URLs, and
optionally `ca`, the PEM file its servers chain to) nothing is started: the endpoints are the
user's. `-D target.aws-iot.plain_mqtt=true` (embedded) also serves MQTT without TLS.
"""

from __future__ import annotations

from otaharness.runtime.targets import boolean, url
from otaharness.servers.aws_iot import AwsIotBackend
from otaharness.servers.aws_iot.moto_server import DUMMY_CREDENTIALS, REGION

# [targets.aws-iot] / -D target.aws-iot.<name>, checked when the config is loaded.
EXTERNAL_TARGET = True
SETTINGS = {
    "aws": url("http", "https"), "iot": url("http", "https"), "iot-jobs-data": url("http", "https"),
    "mqtt": url("mqtt"), "mqtts": url("mqtts"), "ca": None,  # external endpoints
    "plain_mqtt": boolean,  # embedded: also serve MQTT without TLS
}


class AwsIotService:
    def __init__(self, runtime, backend: AwsIotBackend | None, endpoints: dict[str, str]) -> None:
        self.runtime = runtime
        self.backend = backend
        self._endpoints = endpoints

    @property
    def embedded(self) -> bool:
        return self.backend is not None

    def endpoints(self) -> dict[str, str]:
        return dict(self._endpoints)

    def internal_endpoints(self) -> set[str]:
        """The broker's own plain port is behind the gateway: devices use `mqtts` (or the
        gateway's plain `mqtt` when that setting is on, which then replaces it)."""
        return {"mqtt"} if self.embedded and "mqtt" not in self._endpoints else set()

    def device_tls(self, certificate: str, key: str, *, ca_file=None):
        """A device's client TLS context for this target: it trusts the target's `ca` (the
        scenario PKI's, or the user's file; none given: the system's trust store, as for a
        real AWS account) and presents ``certificate`` / ``key`` (PEM texts)."""
        from otaharness.runtime.pki import client_context

        pki = self.runtime.pki()
        name = f"device-{len(list(pki.directory.glob('device-*.crt'))) + 1}"
        cert_file = pki.write(f"{name}.crt", certificate)
        key_file = pki.write(f"{name}.key", key, secret=True)
        return client_context(ca_file or self._endpoints.get("ca"), cert_file, key_file,
                              keylog=pki.keylog)

    def client(self, service_name: str):
        """A boto3 client for a service of this target (moto's, or the user's endpoint)."""
        if self.backend is not None:
            return self.backend.client(service_name)
        import boto3

        url = self._endpoints.get(service_name, self._endpoints["aws"])
        return boto3.client(service_name, endpoint_url=url, region_name=REGION,
                            **DUMMY_CREDENTIALS)

    async def stop(self) -> None:
        if self.backend is not None:
            remove = getattr(self.runtime.clock, "remove_quiet_probe", None)
            if remove is not None:
                remove(self.backend.moto.wait_quiet)
            # moto's backends are process-wide: wipe them so nothing leaks into the next scenario.
            self.backend.reset()
            await self.backend.stop()


async def start(runtime) -> AwsIotService:
    target = runtime.target("aws-iot")
    if not target.embedded:
        return AwsIotService(runtime, None, dict(target.endpoints))
    broker = await runtime.service("broker")
    plain = boolean(target.endpoints.get("plain_mqtt", ""))
    backend = AwsIotBackend(runtime.clock, pki=runtime.pki(), plain_mqtt=plain)
    await backend.start(broker.broker.host, broker.broker.port, broker.broker.service_credentials)
    # moto answers from its own threads: time may jump only once it has answered.
    add_probe = getattr(runtime.clock, "add_quiet_probe", None)
    if add_probe is not None:
        add_probe(backend.moto.wait_quiet)
    return AwsIotService(runtime, backend, backend.endpoints())
