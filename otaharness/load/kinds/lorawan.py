"""LoRaWAN end devices with their stations under load: ``otaharness emulate lorawan``'s pieces
(:class:`LoRaWANField`: Basics Station emulators with radios and OTAA devices on one in-process
radio medium) with the FUOTA packages of the device emulator (:class:`FuotaAgent`).

Each worker's device host holds its own radio medium and ``--stations-per-worker`` stations, EUI
``--station-eui-base`` + worker_index * 1000000 + s. With ``--cups-token`` each station is
registered with the back end's CUPS admin API (its twin: ``--cups-url`` and ``--lns-url``) and
issued its credential set as a factory gets it (``otaharness cups station-credentials``' call);
without, its home names ``--lns-url`` directly with ``--ca`` as its only trust. The stations
reach the LNS through the fleet's links, so ``--fault`` strikes the stations (``--fault-devices``
counts a worker's stations), as in ``emulate lorawan``.

Each user is one end device, DevEUI ``--dev-eui-base`` + its device number (worker_index *
1000000 + n): AppKey and GenAppKey from the CSPRNG, registered through the application API
(``--app-api``, ``--app-token``) as ``emulate lorawan --register-app`` does, then joining OTAA.
The GenAppKey is what the FUOTA server needs for a campaign: with ``--key-sheet DIR`` each new
device's ``{"dev_eui", "gen_app_key"}`` is written to ``DIR/<DevEUI>.json`` (0600), the key sheet
a manufacturer hands the operator.

Request entries: ``LoRaWAN`` / ``join`` (JoinRequest to JoinAccept, the device's join attempts;
failed when no JoinAccept came), ``LoRaWAN`` / ``uplink`` (an uplink with its receive windows),
``FUOTA`` / the answer's name (``McGroupSetupAns``, ``FragSessionSetupAns``,
``McClassCSessionAns``, ``FragSessionStatusAns``, ``DevUpgradeImageAns``,
``DevRebootCountdownAns``, ``DevVersionAns``; ``AppTimeReq`` after a boot): from the request's
arrival to the end of the uplink that carried the answer), ``FUOTA`` / ``DataFragment`` (each
multicast fragment a device heard, its size; the time since the previous fragment or the session
setup), ``HTTP`` / ``device registration``, ``HTTP`` / ``station credentials``.

An upgrade starts at the campaign's first request to the device (McGroupSetupReq) and ends, as
judged on the device: succeeded once it rebooted into the new image and told the server so
(its DevVersionAns with the new version went out); failed when it refused the image
(DevUpgradeImageAns status), the server deleted it (DevDeleteImageReq: the campaign stopped or
gave up on the device), or it rebooted with a ready image and still runs the old version. Bytes
are the fragments' payload octets the device heard.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from otaharness.api_token_option import authorization_headers
from otaharness.emulators.lorawan_device import (
    DeviceConfig,
    DeviceError,
    DeviceResetError,
    LoRaWANDevice,
)
from otaharness.emulators.lorawan_device.fuota import FuotaAgent
from otaharness.emulators.lorawan_field import LoRaWANField
from otaharness.protocols.basics_station import format_eui, parse_eui
from otaharness.protocols.fuota import Command
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.provision.basics_station import ProvisioningError, station_credentials
from otaharness.runtime.clock import RealClock
from otaharness.runtime.pki import client_context

from ..fleet import DeviceFleet, Reporter, device_number

DEFAULT_STATION_EUI_BASE = "0016C001F1000000"
DEFAULT_DEV_EUI_BASE = "0004A30B00000000"
DEFAULT_JOIN_EUI = "70B3D57ED0000001"
STATION_SPACING_M = 2000.0
DEVICE_RADIUS_M = 500.0  # devices stand this near a station of their worker
REJOIN_SECONDS = (5.0, 15.0)  # a device whose join failed tries again after this long


def version_word(text: str) -> int:
    """``1.2.3`` -> the TS006 version word DevVersionAns carries (major.minor.patch.0)."""
    major, minor, patch = (int(part) for part in text.split("."))
    return major << 24 | minor << 16 | patch << 8


class LoadDevice(LoRaWANDevice):
    """An end device whose joins and uplinks are request entries. An uplink cut by the reboot
    the campaign programmed is part of the upgrade, not a failed round trip (one cut by a reboot
    wave is)."""

    report: Reporter
    last_uplink_error: str | None = None
    reset_cause: str | None = None  # set by whoever reboots the device; None: the upgrade's reboot

    async def join(self) -> bool:
        started, self.reset_cause = time.monotonic(), None
        try:
            joined = await super().join()
        except DeviceError as error:
            reason = (f"{self.reset_cause} during the join"
                      if isinstance(error, DeviceResetError) and self.reset_cause else str(error))
            self.report.request("LoRaWAN", "join", started, 0, self.name, reason)
            raise
        self.report.request("LoRaWAN", "join", started, 0, self.name,
                            None if joined else "no JoinAccept")
        return joined

    async def send(self, fport: int | None, payload: bytes = b"", *, confirmed: bool = False) -> bool:
        started, self.last_uplink_error = time.monotonic(), None
        self.reset_cause = None  # a reboot wave that struck while the device was idle is over
        try:
            answer = await super().send(fport, payload, confirmed=confirmed)
        except DeviceResetError:
            if self.reset_cause is not None:
                self.last_uplink_error = f"{self.reset_cause} during the uplink"
                self.report.request("LoRaWAN", "uplink", started, len(payload), self.name,
                                    self.last_uplink_error)
            raise
        except DeviceError as error:
            self.last_uplink_error = str(error) or type(error).__name__
            self.report.request("LoRaWAN", "uplink", started, len(payload), self.name,
                                self.last_uplink_error)
            raise
        self.report.request("LoRaWAN", "uplink", started, len(payload), self.name)
        return answer


@dataclass
class Upgrade:
    started: float
    version_before: int
    length: int = 0
    ready: bool = False  # the device answered DevUpgradeImageAns with a valid image
    last_fragment: float = 0.0


class LoadAgent(FuotaAgent):
    """The device's FUOTA packages, their answers, fragments and outcome reported."""

    report: Reporter
    upgrade: Upgrade | None = None
    _heard_at: float | None = None
    _answers: list[tuple[str, float, int]] | None = None

    def _hook(self, package: Any, handler: Callable[[Command, bool], None]) -> Callable[[int, bytes, bool], None]:
        on_downlink = super()._hook(package, handler)

        def heard(fport: int, payload: bytes, multicast: bool) -> None:
            self._heard_at = time.monotonic()
            try:
                on_downlink(fport, payload, multicast)
            finally:
                self._heard_at = None
        return heard

    def _queue(self, package: Any, build: Callable[[], Command], delay_s: float = 0.0) -> None:
        requested = self._heard_at or time.monotonic()

        def traced() -> Command:
            command = build()
            if self._answers is not None:
                self._answers.append((type(command).__name__, requested, len(command.to_bytes())))
            self._observe_answer(command)
            return command
        super()._queue(package, traced, delay_s)

    async def _send(self, due: list[Any]) -> None:
        self._answers = []
        try:
            await super()._send(due)
            error = self.device.last_uplink_error  # type: ignore[attr-defined]
            for name, requested, length in self._answers:
                self.report.request("FUOTA", name, requested, length, self.name, error)
                if name == "DevVersionAns" and error is None:
                    self._verified()
        finally:
            self._answers = None

    def _on_multicast_setup(self, command: Command, multicast: bool) -> None:
        if isinstance(command, ts005.McGroupSetupReq) and self.upgrade is None:
            self.upgrade = Upgrade(time.monotonic(), self.firmware_version)
            self.report.upgrade_started(self.name)
        super()._on_multicast_setup(command, multicast)

    def _on_frag_setup(self, command: ts004.FragSessionSetupReq) -> None:
        if self.upgrade is not None:
            self.upgrade.last_fragment = time.monotonic()
        super()._on_frag_setup(command)

    def _on_fragment(self, command: ts004.DataFragment) -> None:
        super()._on_fragment(command)
        upgrade = self.upgrade
        if upgrade is not None and command.frag_index in self._sessions:
            self.report.request("FUOTA", "DataFragment", upgrade.last_fragment or time.monotonic(),
                                len(command.payload), self.name)
            upgrade.length += len(command.payload)
            upgrade.last_fragment = time.monotonic()

    def _on_firmware(self, command: Command, multicast: bool) -> None:
        super()._on_firmware(command, multicast)
        if isinstance(command, ts006.DevDeleteImageReq) and self.upgrade is not None:
            self._end(False, "image deleted by the server (campaign stopped or gave up)")

    def _observe_answer(self, command: Command) -> None:
        if self.upgrade is None or not isinstance(command, ts006.DevUpgradeImageAns):
            return
        status = command.up_image_status
        if status is ts006.UpImageStatus.VALID:
            self.upgrade.ready = True
        elif status is not ts006.UpImageStatus.NO_IMAGE:
            self._end(False, f"image refused: {status.name.lower().replace('_', ' ')}")

    async def reboot(self) -> None:
        await super().reboot()
        upgrade = self.upgrade
        if upgrade is not None and upgrade.ready and self.firmware_version == upgrade.version_before:
            self._end(False, f"runs version {self.firmware_version:#x} after the reboot")

    def _verified(self) -> None:
        upgrade = self.upgrade
        if upgrade is not None and self.firmware_version != upgrade.version_before:
            self._end(True, "")

    def _end(self, ok: bool, reason: str) -> None:
        upgrade, self.upgrade = self.upgrade, None
        if upgrade is not None:
            self.report.upgrade_ended(self.name, ok, reason, upgrade.started, upgrade.length)


@dataclass
class FleetDevice:
    device: LoadDevice
    agent: LoadAgent
    life: asyncio.Task[None]


class LorawanFleet(DeviceFleet):
    kind = "lorawan"

    async def open(self) -> None:
        await super().open()
        options = self.options
        missing = [flag for flag, name in (("--lns-url", "lns_url"), ("--app-api", "app_api"),
                                           ("--fuota-verify-key", "fuota_verify_key"))
                   if not options.get(name)]
        if missing:
            raise SystemExit(f"otaharness load lorawan needs {', '.join(missing)}")
        self.verify_key = load_pem_public_key(Path(options["fuota_verify_key"]).read_bytes())
        self.firmware_version = version_word(options.get("lorawan_firmware_version") or "1.0.0")
        self.hw_version = int(str(options.get("lorawan_hw_version") or "0x00AB0001"), 16)
        self.poll_interval = float(options.get("poll_interval") or 60.0)
        self.dev_eui_base = parse_eui(options.get("dev_eui_base") or DEFAULT_DEV_EUI_BASE)
        self.join_eui = parse_eui(options.get("join_eui") or DEFAULT_JOIN_EUI)
        self.key_sheet = Path(options["key_sheet"]) if options.get("key_sheet") else None
        if self.key_sheet is not None:
            self.key_sheet.mkdir(parents=True, exist_ok=True)
        # positions, channels, jitter: reproducible per worker; keys come from the CSPRNG
        self.rng = random.Random(f"{options.get('seed') or 0}:{self.settings.worker_index}")
        self.ssl = client_context(options["ca"]) if options.get("ca") else True
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl))
        self.app_keys: dict[int, tuple[bytes, bytes]] = {}
        # the stations' homes hold their private keys: a folder only this user reads, removed
        self.homes = self.private_folder("otaharness-lorawan-")
        direct = self.links.direct
        self.field = LoRaWANField(self.homes, RealClock(), self.rng, tc_uri=None,
                                  dial=None if direct else self.links.dial,
                                  address_of=None if direct else self.links.address_of)
        station_base = parse_eui(options.get("station_eui_base") or DEFAULT_STATION_EUI_BASE)
        for index in range(int(options.get("stations_per_worker") or 1)):
            eui = station_base + device_number(self.settings.worker_index, index + 1)
            await self._add_station(format_eui(eui, ""), eui, index)

    async def _add_station(self, name: str, eui: int, index: int) -> None:
        options, home = self.options, self.homes / name
        cups_url = (options.get("cups_url") or "").rstrip("/")
        if options.get("cups_token") and cups_url:
            started = time.monotonic()
            try:
                async with self.http.put(f"{cups_url}/admin/stations/{name}",
                                         json={"cupsUri": cups_url, "tcUri": options["lns_url"]},
                                         headers=authorization_headers(options["cups_token"])) as reply:
                    if reply.status >= 300:
                        raise ProvisioningError(f"registering station {name}: HTTP {reply.status}")
                await station_credentials(cups_url, name, home,
                                          auth=options.get("station_auth") or "certificate",
                                          token=options["cups_token"], ca=options.get("ca"))
            except (ProvisioningError, aiohttp.ClientError, OSError) as failure:
                self.report.request("HTTP", "station credentials", started, 0, name, str(failure))
                raise
            self.report.request("HTTP", "station credentials", started, 0, name)
        else:
            home.mkdir(parents=True)
            (home / "tc.uri").write_text(options["lns_url"] + "\n")
            if options.get("ca"):
                shutil.copyfile(options["ca"], home / "tc.trust")
        self.links.add(name, power_cut=lambda _off, name=name: self.field.stations[name].power_cut())
        await self.field.add_station(name, eui, (index * STATION_SPACING_M, 0.0))

    def name_of(self, number: int) -> str:
        return format_eui(self.dev_eui_base + number, "")

    async def _register(self, name: str, app_key: bytes) -> None:
        options, started = self.options, time.monotonic()
        body = {"joinEui": format_eui(self.join_eui, ""), "appKey": app_key.hex(), "class": "A"}
        try:
            async with self.http.put(f"{options['app_api'].rstrip('/')}/api/devices/{name}", json=body,
                                     headers=authorization_headers(options.get("app_token"))) as reply:
                if reply.status >= 300:
                    raise ProvisioningError(f"HTTP {reply.status}: {(await reply.text())[:200]}")
        except (ProvisioningError, aiohttp.ClientError, OSError) as failure:
            self.report.request("HTTP", "device registration", started, 0, name, str(failure))
            raise
        self.report.request("HTTP", "device registration", started, 0, name)

    def _write_key_sheet(self, name: str, gen_app_key: bytes) -> None:
        if self.key_sheet is None:
            return
        path = self.key_sheet / f"{name}.json"
        path.unlink(missing_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as sheet:
            json.dump({"dev_eui": name, "gen_app_key": gen_app_key.hex()}, sheet)

    async def _start_device(self, number: int) -> FleetDevice:
        name = self.name_of(number)
        if number not in self.app_keys:  # a device started again keeps its keys and registration
            app_key, gen_app_key = secrets.token_bytes(16), secrets.token_bytes(16)
            await self._register(name, app_key)
            self._write_key_sheet(name, gen_app_key)
            self.app_keys[number] = app_key, gen_app_key
        app_key, gen_app_key = self.app_keys[number]
        config = DeviceConfig(dev_eui=self.dev_eui_base + number, app_eui=self.join_eui,
                              app_key=app_key, gen_app_key=gen_app_key)
        stations = max(len(self.field.stations), 1)
        near = self.rng.randrange(stations) * STATION_SPACING_M
        position = (near + self.rng.uniform(-DEVICE_RADIUS_M, DEVICE_RADIUS_M),
                    self.rng.uniform(-DEVICE_RADIUS_M, DEVICE_RADIUS_M))
        device = LoadDevice(name, config, self.field.medium, position, clock=self.field.clock,
                            rng=random.Random(self.rng.random()))
        device.report = self.report
        self.field.devices[name] = device
        agent = LoadAgent(device, self.verify_key, self.firmware_version, self.hw_version,
                          flash_capacity=256 * 1024, rng=random.Random(self.rng.random()),
                          poll_interval_s=self.poll_interval)
        agent.report = self.report
        return FleetDevice(device, agent, asyncio.ensure_future(self._life(device, agent)))

    async def _life(self, device: LoadDevice, agent: LoadAgent) -> None:
        """Join (again, after a failed attempt) until joined; then the agent runs the uplinks."""
        await self.field.until_connected()
        await asyncio.sleep(self.rng.uniform(0, min(self.poll_interval, 10.0)))
        while not device.joined:
            try:
                if await device.join():
                    break
            except DeviceError:
                pass
            await asyncio.sleep(self.rng.uniform(*REJOIN_SECONDS))
        agent.start()

    async def _stop_device(self, device: FleetDevice) -> None:
        device.life.cancel()
        await asyncio.gather(device.life, return_exceptions=True)
        await device.agent.stop()
        self.field.devices.pop(device.device.name, None)
        self.field.medium.detach(device.device.name)

    async def _reboot_device(self, device: FleetDevice) -> None:
        device.device.reset_cause = "reboot wave"  # until the device's next uplink starts
        await device.agent.reboot()

    async def _close_shared(self) -> None:
        await self.field.close(drain_s=0.0)
        await self.http.close()
        shutil.rmtree(self.homes, ignore_errors=True)

    def _connected(self, device: FleetDevice) -> bool:
        return device.device.joined

    def _upgrading(self, device: FleetDevice) -> bool:
        return device.agent.upgrade is not None
