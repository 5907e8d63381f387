"""TR-069 CPEs under load: the emulator's :class:`Cpe`, each round trip reported.

Request entries: ``CWMP`` / ``Inform session`` (one whole session, Inform to the empty
reply; its size is what the CPE sent), ``HTTP`` / ``file GET`` (one Download's file, or each
package an upgrade XML links to; its size is the file's). An upgrade starts when the CPE accepts a
firmware Download and ends when the ACS acknowledges its TransferComplete: succeeded when the
transfer had no fault and the CPE runs another version than before; else failed with the
TransferComplete's fault string (or ``version unchanged``).
"""

from __future__ import annotations

import random
import time
from typing import Any

from otaharness.emulators.cpe.connection_request import ConnectionRequestServer
from otaharness.emulators.cpe.device import Cpe
from otaharness.emulators.cpe.transport import SessionFailed, TransferFailed
from otaharness.protocols.cwmp import FIRMWARE_UPGRADE_IMAGE, DownloadResponse
from otaharness.runtime.clock import RealClock

from ..fleet import DeviceFleet, Reporter


class LoadCpe(Cpe):
    """A CPE whose sessions, downloads and upgrade outcome are reported."""

    def __init__(self, *args: Any, report: Reporter, **kwargs: Any) -> None:
        super().__init__(*args, trace=self._count_sent, **kwargs)
        self.report = report
        self.connected = False
        self._sent = 0
        self._upgrade_key: str | None = None  # CommandKey of the firmware Download under way
        self._upgrade_started = 0.0
        self._upgrade_bytes = 0
        self._version_before = ""
        self._transfer_result: tuple[int, str] | None = None

    @property
    def upgrading(self) -> bool:
        return self._upgrade_key is not None

    def _count_sent(self, _side: str, data: bytes) -> None:
        self._sent += len(data)

    async def _run_session(self, events: Any) -> None:
        started, self._sent = time.monotonic(), 0
        try:
            await super()._run_session(events)
        except SessionFailed as failure:
            self.connected = False
            self.report.request("CWMP", "Inform session", started, self._sent,
                                self.serial_number, str(failure))
            raise
        self.connected = self.powered
        self.report.request("CWMP", "Inform session", started, self._sent, self.serial_number)
        self._settle_upgrade()

    def _rpc_Download(self, request: Any) -> Any:
        answer = super()._rpc_Download(request)
        if (isinstance(answer, DownloadResponse) and request.file_type == FIRMWARE_UPGRADE_IMAGE
                and self._upgrade_key is None):
            self._upgrade_key = request.command_key
            self._upgrade_started, self._upgrade_bytes = time.monotonic(), 0
            self._version_before = self.software_version
            self._transfer_result = None
            self.report.upgrade_started(self.serial_number)
        return answer

    async def _fetch(self, url: str, request: Any, size: int = 0) -> bytes:
        started = time.monotonic()
        try:
            content = await super()._fetch(url, request, size)
        except TransferFailed as failure:
            self.report.request("HTTP", "file GET", started, 0, self.serial_number, str(failure))
            raise
        self._upgrade_bytes += len(content)
        self.report.request("HTTP", "file GET", started, len(content), self.serial_number)
        return content

    async def _download(self, request: Any) -> None:
        await super()._download(request)
        if request.command_key == self._upgrade_key:
            for transfer in self.nv.transfers:
                if transfer.command_key == request.command_key:
                    self._transfer_result = (transfer.fault_code, transfer.fault_string)

    def _power_on(self) -> None:
        super()._power_on()
        # A power cut during the download: the CPE owes a "download interrupted" transfer.
        if self._upgrade_key is not None and self._transfer_result is None:
            for transfer in self.nv.transfers:
                if transfer.command_key == self._upgrade_key:
                    self._transfer_result = (transfer.fault_code, transfer.fault_string)

    def _settle_upgrade(self) -> None:
        """After a session: the upgrade ends once the ACS acknowledged its TransferComplete."""
        if self._upgrade_key is None or self._transfer_result is None:
            return
        if any(t.command_key == self._upgrade_key for t in self.nv.transfers):
            return  # not acknowledged yet
        fault_code, fault_string = self._transfer_result
        if fault_code:
            ok, reason = False, f"{fault_code} {fault_string}"
        elif self.software_version == self._version_before:
            ok, reason = False, "version unchanged"
        else:
            ok, reason = True, ""
        self.report.upgrade_ended(self.serial_number, ok, reason, self._upgrade_started,
                                  self._upgrade_bytes)
        self._upgrade_key = None
        self._transfer_result = None

    async def _power_off(self) -> None:
        self.connected = False
        await super()._power_off()


class CpeFleet(DeviceFleet):
    kind = "cpe"

    async def open(self) -> None:
        self.clock = RealClock()
        self.listener = ConnectionRequestServer(self.options.get("cr_host") or "127.0.0.1", 0)
        await self.listener.start()
        await super().open()
        acs_url = self.options.get("acs_url")
        if not acs_url:
            raise SystemExit("otaharness load cpe needs --acs-url")
        self.acs_url = acs_url

    async def _start_device(self, number: int) -> LoadCpe:
        name = self.name_of(number)
        direct = self.links.direct
        cpe = LoadCpe(name, acs_url=self.acs_url, clock=self.clock,
                      rng=random.Random(f"{self.options.get('seed', 0)}:{number}"),
                      profile=self.options.get("cpe_profile") or "mikrotik",
                      connection_requests=self.listener,
                      bind_address=self.links.address_of(name),
                      link=None if direct else self.links.link,
                      username=self.options.get("username") or "",
                      password=self.options.get("password") or "",
                      periodic_interval=self.options.get("periodic_interval"),
                      boot_seconds=float(self.options.get("boot_seconds") or 0.0),
                      ca_file=self.options.get("ca"), report=self.report)
        self.links.add(name, power_cut=cpe.power_cut)
        await cpe.start()
        return cpe

    async def _stop_device(self, device: LoadCpe) -> None:
        await device.stop()

    async def _reboot_device(self, device: LoadCpe) -> None:
        await device.reboot()

    async def _close_shared(self) -> None:
        await self.listener.stop()

    def _connected(self, device: LoadCpe) -> bool:
        return device.connected

    def _upgrading(self, device: LoadCpe) -> bool:
        return device.upgrading
