"""nRF9160 asset trackers under load: the emulator's autonomous :class:`Tracker` (the nRF
``aws_fota`` flow), over MQTT with mutual TLS and HTTPS range requests, each round trip reported.

Identity, as a real fleet gets it: with ``--aws-api`` each new tracker has its thing created and
its keys and certificate issued by the back end's IoT control plane (CreateThing,
CreateKeysAndCertificate ACTIVE, AttachThingPrincipal, and AttachPolicy with ``--iot-policy``);
AWS generates the key pair (the embedded back end's device CA does, from the CSPRNG) and the
private key reaches the tracker only: written 0600 to a folder of this host's own, loaded into the
tracker's TLS context and deleted at once. The calls are boto3's (synchronous), so each runs in a
thread of the loop's executor. With ``--credentials-dir`` the things exist already, with
``<thing>.cert.pem`` and ``<thing>.private.key`` each, as ``otaharness emulate aws-tracker`` reads
them.

Request entries: ``MQTT`` / ``connect`` (TLS, CONNECT to CONNACK, the subscriptions aws_fota
makes and its ``$next/get``), ``MQTT`` / ``job update`` (each UpdateJobExecution, publish to
accepted/rejected), ``HTTPS`` / ``range GET`` (each fragment's request; its size is the bytes it
delivered), ``HTTPS`` / ``IoT API`` (each control-plane call of the provisioning). An upgrade
starts with the job's IN_PROGRESS update and ends with its SUCCEEDED update (the tracker booted
the job's image: succeeded, with the bytes downloaded for it) or FAILED (failed, with the
``statusDetails.reason`` the tracker reported).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from otaharness.emulators.aws_tracker.cli import (
    EndpointError,
    _credentials,
    endpoint,
    power_cut,
)
from otaharness.emulators.aws_tracker.download import RangeDownload
from otaharness.emulators.aws_tracker.tracker import CurrentJob, Tracker
from otaharness.runtime.clock import RealClock
from otaharness.runtime.pki import client_context

from ..fleet import DeviceFleet, Reporter

DEFAULT_PREFIX = "tracker-"


class ReportedRangeDownload(RangeDownload):
    """The nRF download client, each fragment's GET a request entry of its tracker."""

    def __init__(self, *args: Any, report: Reporter, device: str, tracker: LoadTracker,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report, self.device, self.tracker = report, device, tracker

    async def _fragment(self, session: Any) -> None:
        started, before = time.monotonic(), self.offset
        try:
            await super()._fragment(session)
        except asyncio.CancelledError:  # a timeout or the tracker going down broke it off
            self._done(started, before, "broken off (download timeout or tracker down)")
            raise
        except Exception as failure:
            self._done(started, before, str(failure) or type(failure).__name__)
            raise
        self._done(started, before, None)

    def _done(self, started: float, before: int, error: str | None) -> None:
        delivered = self.offset - before
        self.tracker.upgrade_bytes += delivered
        self.report.request("HTTPS", "range GET", started, delivered, self.device, error)


class LoadTracker(Tracker):
    """A tracker whose connections, job updates, downloads and upgrade outcome are reported.
    The upgrade bookkeeping is the load run's, not device state: it survives reboots."""

    def __init__(self, *args: Any, report: Reporter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report = report
        self.range_download = partial(ReportedRangeDownload, report=report,  # type: ignore[assignment]
                                      device=self.thing_name, tracker=self)
        self.upgrade_job: str | None = None
        self.upgrade_started = 0.0
        self.upgrade_bytes = 0
        self.version_before = ""

    async def _connect_now(self) -> None:
        started = time.monotonic()
        try:
            await super()._connect_now()
        except Exception as failure:
            self.report.request("MQTT", "connect", started, 0, self.thing_name,
                                str(failure) or type(failure).__name__)
            raise
        self.report.request("MQTT", "connect", started, 0, self.thing_name)

    async def _update(self, job: CurrentJob, status: str,
                      details: dict[str, str] | None = None) -> None:
        started = time.monotonic()
        try:
            await super()._update(job, status, details)
        except Exception as failure:
            self.report.request("MQTT", "job update", started, 0, self.thing_name,
                                f"{status}: {failure}")
            raise
        self.report.request("MQTT", "job update", started, 0, self.thing_name)
        if status == "IN_PROGRESS" or (status == "FAILED" and self.upgrade_job is None):
            self._start_upgrade(job.job_id)
        if status in ("SUCCEEDED", "FAILED") and self.upgrade_job == job.job_id:
            if status == "FAILED":
                ok, reason = False, (details or {}).get("reason", "FAILED")
            elif self.app_version == self.version_before:
                ok, reason = False, "version unchanged"
            else:
                ok, reason = True, ""
            self.report.upgrade_ended(self.thing_name, ok, reason, self.upgrade_started,
                                      self.upgrade_bytes if ok else 0)
            self.upgrade_job = None

    def _start_upgrade(self, job_id: str) -> None:
        if self.upgrade_job == job_id:
            return  # the same job again after a reboot or power cut: still the one upgrade
        self.upgrade_job, self.upgrade_started, self.upgrade_bytes = job_id, time.monotonic(), 0
        self.version_before = self.app_version
        self.report.upgrade_started(self.thing_name)


class AwsTrackerFleet(DeviceFleet):
    kind = "aws-tracker"

    def default_prefix(self) -> str:
        return DEFAULT_PREFIX

    async def open(self) -> None:
        await super().open()
        options = self.options
        if not options.get("mqtt") or not (options.get("aws_api") or options.get("credentials_dir")):
            raise SystemExit("otaharness load aws-tracker needs --mqtt and --aws-api or "
                             "--credentials-dir")
        secure = urlsplit(options["mqtt"]).scheme == "mqtts"
        try:
            mqtt_named = endpoint(options["mqtt"], ("mqtts",) if secure else ("mqtt", "tcp"),
                                  8883 if secure else 1883)
            if options.get("s3_endpoint"):
                endpoint(options["s3_endpoint"], ("https",) if secure else ("http",),
                         443 if secure else 80)
        except EndpointError as error:
            raise SystemExit(str(error)) from None
        self.secure = secure
        self.server_name = options.get("server_name") or mqtt_named[0]
        self.clock = RealClock()
        self.mqtt = await self.links.link(options["mqtt"])
        self.s3 = await self.links.link(options["s3_endpoint"]) if options.get("s3_endpoint") else None
        # The keys' only stop on the way to a TLS context (ssl loads a chain from files only).
        self.key_folder = self.private_folder("otaharness-load-trackers-")
        self.iot = None
        if options.get("aws_api"):
            self.iot = await asyncio.to_thread(self._iot_client)

    def _iot_client(self) -> Any:
        import boto3  # here: only this kind's hosts need it

        region = self.options.get("aws_region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        session = boto3.session.Session(region_name=region)
        if session.get_credentials() is None:  # else every tracker's CreateThing fails alike
            raise ValueError("--aws-api needs AWS credentials on this host, as the AWS CLI "
                             "does (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)")
        return session.client("iot", endpoint_url=self.options["aws_api"],
                              verify=self.options.get("ca") or None)

    async def _iot_call(self, device: str, operation: str, **parameters: Any) -> dict[str, Any]:
        started = time.monotonic()
        try:
            answer = await asyncio.to_thread(getattr(self.iot, operation), **parameters)
        except Exception as failure:
            self.report.request("HTTPS", "IoT API", started, 0, device, f"{operation}: {failure}")
            raise
        self.report.request("HTTPS", "IoT API", started, 0, device)
        return answer

    async def _provision(self, thing: str) -> tuple[str, str]:
        """The thing, and its certificate (PEM) and private key (PEM) issued by AWS IoT."""
        await self._iot_call(thing, "create_thing", thingName=thing)
        issued = await self._iot_call(thing, "create_keys_and_certificate", setAsActive=True)
        await self._iot_call(thing, "attach_thing_principal", thingName=thing,
                             principal=issued["certificateArn"])
        if self.options.get("iot_policy"):
            await self._iot_call(thing, "attach_policy", policyName=self.options["iot_policy"],
                                 target=issued["certificateArn"])
        return issued["certificatePem"], issued["keyPair"]["PrivateKey"]

    def _tls_of(self, thing: str, certificate: str | None, key: str | None) -> Any:
        if certificate is None or key is None:  # --credentials-dir
            cert_file, key_file = _credentials(argparse.Namespace(
                credentials_dir=self.options["credentials_dir"], cert=None, key=None), thing)
            return client_context(self.options.get("ca"), cert_file, key_file)
        cert_file, key_file = self.key_folder / f"{thing}.crt", self.key_folder / f"{thing}.key"
        try:
            cert_file.write_text(certificate)
            with os.fdopen(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(key)
            return client_context(self.options.get("ca"), cert_file, key_file)
        finally:
            cert_file.unlink(missing_ok=True)
            key_file.unlink(missing_ok=True)

    async def _start_device(self, number: int) -> LoadTracker:
        thing = self.name_of(number)
        certificate = key = None
        if self.secure and self.iot is not None:
            certificate, key = await self._provision(thing)
        elif self.iot is not None:
            await self._iot_call(thing, "create_thing", thingName=thing)
        try:
            tls = self._tls_of(thing, certificate, key) if self.secure else None
        except (OSError, ValueError) as error:  # ssl.SSLError and EndpointError included
            raise ValueError(f"{thing}: no usable credentials: {error}") from None
        options = self.options
        tracker = LoadTracker(
            thing, mqtt_host=self.mqtt[0], mqtt_port=self.mqtt[1], clock=self.clock,
            s3_endpoint=self.s3, bind_address=self.links.address_of(thing),
            app_version=options.get("app_version") or "1.0.0",
            fragment_size=int(options.get("fragment_size") or 2048),
            reboot_seconds=float(options.get("tracker_reboot_seconds") or 0.0),
            tls=tls, mqtt_server_name=self.server_name, report=self.report)
        self.links.add(thing, power_cut=partial(power_cut, tracker))
        await tracker.power_on()
        return tracker

    async def _stop_device(self, device: LoadTracker) -> None:
        await device.disconnect()

    async def _reboot_device(self, device: LoadTracker) -> None:
        await device.reboot()

    async def _close_shared(self) -> None:
        shutil.rmtree(self.key_folder, ignore_errors=True)

    def _connected(self, device: LoadTracker) -> bool:
        return device.connected

    def _upgrading(self, device: LoadTracker) -> bool:
        return device.upgrade_job is not None
