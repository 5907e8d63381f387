"""LoRa Basics Stations under load: the emulator's :class:`BasicsStation`, each round trip
reported.

Each station is EUI ``--station-eui-base`` + its device number (worker_index * 1000000 + n), so
EUIs are unique across workers and the same on every run. Its home directory (a private temporary
folder of the device host, removed at the end) gets its credential set from the back end as a
factory gets it: ``otaharness cups station-credentials``' call (``POST
/admin/stations/{eui}/credentials`` with ``--cups-token``: a client certificate with CN = EUI, or
a bearer token; the key comes from the server's PKI, never from a seed), the firmware team's
``--station-sig-key`` files as ``sig-N.key`` and ``--station-package`` as ``version.txt``.
A home that exists already (a device number started again) is kept, as a real station keeps its
files.

Request entries: ``CUPS`` / ``check`` (one ``POST /update-info`` round trip, to the decoded
reply; a failed session carries the station's reason), ``CUPS`` / ``update download`` (a reply
that carried an update; its size is the update's; failed when the reply was cut inside the
update), ``WS`` / ``LNS connect`` (router-info
discovery and the muxs websocket up to the ``version`` message; a muxs reconnect without
discovery counts from the reconnect), ``HTTP`` / ``station credentials`` (the provisioning call).
A CUPS session or LNS connection broken off by a reboot wave or a power cut (``--fault 'power cut
at 64 KiB for 5 s'``: the station stays off that long) is a failed entry saying so.

An upgrade starts when a CUPS reply carries an update and ends: succeeded when the station next
reaches the LNS reporting another package than before (what the back end's registry records as
``reportedPackage``); failed when the station refuses the update (its decision, e.g. no key
verified the signature), the program cannot run, is killed or exits non-zero, or the station
comes back with the package unchanged. An update program that does not restart the station stays
in progress until the station reconnects (a reboot wave ends it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from otaharness.emulators.basics_station import (
    BasicsStation,
    StationHome,
    StationSettings,
)
from otaharness.emulators.basics_station.station import config_before_update
from otaharness.protocols.basics_station import format_eui, parse_eui
from otaharness.provision.basics_station import ProvisioningError, station_credentials
from otaharness.runtime.clock import RealClock

from ..fleet import DeviceFleet, Reporter

DEFAULT_EUI_BASE = "0016C001F0000000"


@dataclasses.dataclass
class Upgrade:
    started: float
    version_before: str
    length: int
    ran: bool = False


class LoadStation(BasicsStation):
    """A station whose CUPS checks, LNS connections and update outcome are reported."""

    def __init__(self, *args: Any, report: Reporter, **kwargs: Any) -> None:
        self.report = report
        self.upgrade: Upgrade | None = None
        self._cups_started = time.monotonic()
        self._cups_in_flight = False
        self._tc_started: float | None = None
        super().__init__(*args, **kwargs)

    async def _cups_exchange(self) -> Any:
        self._cups_started, self._cups_in_flight = time.monotonic(), True
        try:
            return await super()._cups_exchange()
        finally:
            self._cups_in_flight = False

    async def power_off(self, off_seconds: float) -> None:
        """A power cut (``--fault 'power cut at 64 KiB for 5 s'``): off that long, then booted;
        files kept, RAM state and connections gone."""
        self.interrupted("power cut")
        await self._halt(graceful=False)
        await asyncio.sleep(off_seconds)
        await self.start()

    def interrupted(self, why: str) -> None:
        """Round trips a reboot wave or power cut breaks off fail with it (not the restart an
        update asks for, which is part of the upgrade, nor the stop at the end of the run)."""
        if self._cups_in_flight:
            self.report.request("CUPS", "check", self._cups_started, 0, self.name,
                                f"{why} during the session")
        if self._tc_started is not None:
            self.report.request("WS", "LNS connect", self._tc_started, 0, self.name,
                                f"{why} while connecting")

    def _keep_before_cut(self, cut: Any, credential_set: Any) -> list[str]:
        if cut.status == 200 and config_before_update(cut.partial) is not None:
            self.report.request("CUPS", "update download", self._cups_started, 0, self.name,
                                f"reply cut inside the update, after {len(cut.partial)} bytes")
        return super()._keep_before_cut(cut, credential_set)

    async def _discover(self, tc_uri: str) -> tuple[str, str | None]:
        self._tc_started = time.monotonic()
        return await super()._discover(tc_uri)

    async def _muxs_session(self, muxs_uri: str) -> tuple[str, bool]:
        if self._tc_started is None:  # a reconnect straight to the muxs
            self._tc_started = time.monotonic()
        return await super()._muxs_session(muxs_uri)

    def note(self, kind: str, detail: str = "") -> None:
        super().note(kind, detail)
        report, name = self.report, self.name
        if kind == "cups-done":
            report.request("CUPS", "check", self._cups_started, 0, name)
            self._settle(at_lns=False)
        elif kind == "cups-failed":
            report.request("CUPS", "check", self._cups_started, 0, name, detail)
        elif kind == "update-received":
            length = int(detail.split()[0])
            report.request("CUPS", "update download", self._cups_started, length, name)
            if self.upgrade is None:
                self.upgrade = Upgrade(self._cups_started, self.home.version() or "", length)
                report.upgrade_started(name)
            else:  # the update came again before the last one ended
                self.upgrade.length += length
        elif kind == "update-aborted":
            self._end(False, f"update refused: {detail}")
        elif kind == "update-failed":
            self._end(False, detail)
        elif kind == "update-run" and self.upgrade is not None:
            self.upgrade.ran = True
            if detail != "exit 0":
                self._end(False, f"update program {detail}")
        elif kind == "tc-connected":
            report.request("WS", "LNS connect", self._tc_started or time.monotonic(), 0, name)
            self._tc_started = None
            self._settle(at_lns=True)
        elif kind in ("tc-failed", "tc-rejected"):
            report.request("WS", "LNS connect", self._tc_started or time.monotonic(), 0, name,
                           f"{kind}: {detail}")
            self._tc_started = None
        elif kind == "halt":
            self._tc_started = None

    def _settle(self, at_lns: bool) -> None:
        """After an update ran: the new package at the LNS ends it well; the old one, badly."""
        upgrade = self.upgrade
        if upgrade is None or not upgrade.ran:
            return
        changed = (self.home.version() or "") != upgrade.version_before
        if changed and at_lns:
            self._end(True, "")
        elif not changed:
            self._end(False, "version unchanged")

    def _end(self, ok: bool, reason: str) -> None:
        upgrade, self.upgrade = self.upgrade, None
        if upgrade is not None:
            self.report.upgrade_ended(self.name, ok, reason, upgrade.started,
                                      upgrade.length if ok else 0)


class BasicsStationFleet(DeviceFleet):
    kind = "basics-station"

    async def open(self) -> None:
        await super().open()
        options = self.options
        if not options.get("cups_url"):
            raise SystemExit("otaharness load basics-station needs --cups-url")
        self.cups_url = options["cups_url"].rstrip("/")
        self.eui_base = parse_eui(options.get("station_eui_base") or DEFAULT_EUI_BASE)
        self.sig_keys = tuple(Path(key).read_bytes() for key in options.get("station_sig_key")
                              or ())
        self.settings = StationSettings(0)
        self.settings = dataclasses.replace(
            self.settings,
            cups_ok_interval=float(options.get("cups_interval") or self.settings.cups_ok_interval),
            cups_resync_interval=float(options.get("cups_resync_interval")
                                       or self.settings.cups_resync_interval))
        self.clock = RealClock()
        # the stations' homes hold their private keys: a folder only this user reads, removed
        self.homes = self.private_folder("otaharness-stations-")

    def name_of(self, number: int) -> str:
        return format_eui(self.eui_base + number, "")

    async def _provision(self, name: str, home: Path) -> None:
        """A new station's home, as the factory fills it."""
        options = self.options
        if options.get("cups_token"):
            started = time.monotonic()
            try:
                await station_credentials(self.cups_url, name, home,
                                          auth=options.get("station_auth") or "certificate",
                                          token=options["cups_token"], ca=options.get("ca"))
            except (ProvisioningError, OSError) as failure:
                self.report.request("HTTP", "station credentials", started, 0, name, str(failure))
                shutil.rmtree(home, ignore_errors=True)
                raise
            self.report.request("HTTP", "station credentials", started, 0, name)
            cups_uri = None  # the server wrote it
        else:
            cups_uri = self.cups_url
            if options.get("ca"):  # server authentication only
                home.mkdir(parents=True)
                for category in ("cups", "tc"):
                    shutil.copyfile(options["ca"], home / f"{category}.trust")
        StationHome(home).provision(cups_uri=cups_uri, sig_keys=self.sig_keys,
                                    version=options.get("station_package") or "v0")

    async def _start_device(self, number: int) -> LoadStation:
        name = self.name_of(number)
        home = self.homes / name
        if not home.exists():
            await self._provision(name, home)
        direct = self.links.direct
        station = LoadStation(dataclasses.replace(self.settings, eui=self.eui_base + number),
                              StationHome(home), self.clock, name=name,
                              bind_address=self.links.address_of(name),
                              dial=None if direct else self.links.dial,
                              tls_keylog=self.links.keylog, report=self.report)
        self.links.add(name, power_cut=station.power_off)
        await station.start()
        return station

    async def _stop_device(self, device: LoadStation) -> None:
        await device.stop()

    async def _reboot_device(self, device: LoadStation) -> None:
        device.interrupted("reboot")
        await device.reboot()

    async def _close_shared(self) -> None:
        shutil.rmtree(self.homes, ignore_errors=True)

    def _connected(self, device: LoadStation) -> bool:
        return device.tc_connected

    def _upgrading(self, device: LoadStation) -> bool:
        return device.upgrade is not None
