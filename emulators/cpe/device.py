"""An emulated CWMP CPE (TR-069 Amendment 6 §3.7): informs, sessions with the session retry
back-off, Connection Requests, the Download RPC for every file type, reboots and power cuts.

State is split like a real device's: :class:`NonVolatile` (parameters, installed packages and
configuration, transfers not yet acknowledged) survives reboots and power cuts; events not yet
delivered, the session and running downloads live in RAM and are lost on a power cut.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from otaharness.protocols.cwmp import (
    CWMP_1_0,
    CWMP_1_2,
    EVENT_BOOT,
    EVENT_BOOTSTRAP,
    EVENT_CONNECTION_REQUEST,
    EVENT_M_DOWNLOAD,
    EVENT_M_REBOOT,
    EVENT_PERIODIC,
    EVENT_TRANSFER_COMPLETE,
    EVENT_VALUE_CHANGE,
    FIRMWARE_UPGRADE_IMAGE,
    RINGER_FILE,
    TONE_FILE,
    VENDOR_CONFIGURATION_FILE,
    WEB_CONTENT,
    DeviceIdStruct,
    Download,
    DownloadResponse,
    Envelope,
    EventStruct,
    Fault,
    GetParameterValues,
    GetParameterValuesResponse,
    GetRPCMethods,
    GetRPCMethodsResponse,
    Header,
    Inform,
    InformResponse,
    ParameterValueStruct,
    Reboot,
    RebootResponse,
    SetParameterValues,
    SetParameterValuesFault,
    SetParameterValuesResponse,
    TransferComplete,
    TransferCompleteFaultStruct,
    TransferCompleteResponse,
    build_envelope,
)
from otaharness.protocols.cwmp.codes import CWMP_1_0_TRANSFER_COMPLETE_FAULT_CODES
from otaharness.runtime import timeline

from .connection_request import ConnectionRequestServer
from .datamodel import DataModel
from .firmware import CorruptFile, parse_alter_script, parse_dummy_npk, parse_image, parse_upgrade_xml
from .profiles import PROFILES, Profile
from .quirks import Quirks, move_fault_struct_last
from .transport import (
    AcsSession,
    Credentials,
    Link,
    SessionFailed,
    TransferFailed,
    download,
    tls_context,
)

log = logging.getLogger(__name__)

CPE_METHODS = ("GetRPCMethods", "GetParameterValues", "SetParameterValues", "Download", "Reboot")
RETRY_GROWTH_STOPS_AT = 10  # TR-069 §3.2.1.1 table: the wait range stops growing at retry 10


class Clock(Protocol):
    def epoch(self) -> float: ...
    def utcnow(self) -> datetime: ...
    def monotonic(self) -> float: ...


@dataclass
class PendingTransfer:
    """A finished Download, reported with TransferComplete until the ACS acknowledges it."""

    command_key: str
    fault_code: int
    fault_string: str
    start_time: datetime
    complete_time: datetime


@dataclass
class NonVolatile:
    datamodel: DataModel
    packages: dict[str, str]
    bootstrapped: bool = False
    transfers: list[PendingTransfer] = field(default_factory=list)
    boot_events: list[EventStruct] = field(default_factory=list)  # e.g. M Reboot <key>
    staged_packages: dict[str, str] = field(default_factory=dict)  # installed at next boot
    staged_version: str | None = None  # generic image waiting for the reboot
    downloads_in_progress: dict[str, datetime] = field(default_factory=dict)
    configuration: str = ""  # the whole configuration (replaced by non-.alter files)
    scripts_applied: list[str] = field(default_factory=list)  # .alter scripts, in order
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file type -> file


def retry_wait(retry: int, minimum_wait: float, multiplier_permille: int,
               rng: random.Random) -> float:
    """Seconds before session retry ``retry`` (1, 2, ...): random in [m·k^(n-1), m·k^n],
    the range growing until retry 10 (TR-069 §3.2.1.1; fact sheet §3.1)."""
    k = multiplier_permille / 1000
    n = min(retry, RETRY_GROWTH_STOPS_AT)
    return rng.uniform(minimum_wait * k ** (n - 1), minimum_wait * k ** n)


class Cpe:
    def __init__(self, serial_number: str, *, acs_url: str, clock: Clock, rng: random.Random,
                 profile: str | Profile = "mikrotik", datamodel: str | None = None,
                 connection_requests: ConnectionRequestServer | None = None,
                 bind_address: str | None = None, link: Link | None = None,
                 username: str = "", password: str = "",
                 connection_request_username: str = "", connection_request_password: str = "",
                 quirks: Quirks = Quirks(), namespace: str = CWMP_1_2,
                 periodic_interval: float | None = None, boot_seconds: float = 30.0,
                 reboot_after_firmware: bool = True, ca_file: str | None = None,
                 tls_keylog: str | None = None,
                 trace: Callable[[str, bytes], None] | None = None) -> None:
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        model = DataModel.load(datamodel or self.profile.datamodel)
        model.set("DeviceInfo.SerialNumber", serial_number)
        model.set("ManagementServer.URL", acs_url)
        model.set("ManagementServer.Username", username)
        model.set("ManagementServer.Password", password)
        model.set("ManagementServer.ConnectionRequestUsername", connection_request_username)
        model.set("ManagementServer.ConnectionRequestPassword", connection_request_password)
        if periodic_interval is not None:
            model.set("ManagementServer.PeriodicInformInterval", str(int(periodic_interval)))
        self.nv = NonVolatile(model, dict(self.profile.packages))
        if self.profile.main_package:
            model.set("DeviceInfo.SoftwareVersion", self.nv.packages[self.profile.main_package])
        self.serial_number = serial_number
        self.clock = clock
        self.rng = rng
        self.bind_address = bind_address
        self.link = link
        self.quirks = quirks
        self.namespace = namespace
        self.boot_seconds = boot_seconds
        self.reboot_after_firmware = reboot_after_firmware
        self.trace = trace
        self.credentials = Credentials(username, password, quirks)
        # HTTPS to the ACS and file servers: trusted CA (None: the system's), per the quirks.
        self.tls = tls_context(ca_file, not quirks.skip_certificate_check, tls_keylog)
        self._connection_requests = connection_requests
        self._own_listener = connection_requests is None
        self._token = f"{rng.getrandbits(64):016x}"  # the Connection Request URL's path
        self._message_ids = itertools.count(1)
        # RAM
        self.powered = False
        self._events: list[EventStruct] = []
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()  # cancelled at power off
        self._lifecycle: set[asyncio.Task[Any]] = set()  # reboots: outlive the power off
        self._after_session: list[Callable[[], object]] = []  # run when the session ends
        self._sessions_open = 0
        self._boot_time = 0.0
        # observations for tests and logs
        self.sessions_completed = 0
        self.retry_count = 0
        self.last_session_error = ""
        self.informs: list[tuple[str, ...]] = []  # event codes of each Inform sent
        self.session_attempts: list[float] = []  # clock.monotonic() of each session start
        self.overlapping_sessions = 0  # sessions started beside another (quirk)

    # -- identity and parameters -----------------------------------------------------------
    @property
    def model(self) -> DataModel:
        return self.nv.datamodel

    @property
    def software_version(self) -> str:
        return self.model.get("DeviceInfo.SoftwareVersion")

    @property
    def device_id(self) -> DeviceIdStruct:
        return DeviceIdStruct(manufacturer=self.model.get("DeviceInfo.Manufacturer"),
                              oui=self.model.get("DeviceInfo.ManufacturerOUI"),
                              product_class=self.model.get("DeviceInfo.ProductClass"),
                              serial_number=self.serial_number)

    # -- power -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Power on (first boot: 0 BOOTSTRAP + 1 BOOT)."""
        if self._connection_requests is None:
            self._connection_requests = ConnectionRequestServer(self.bind_address or "127.0.0.1")
            await self._connection_requests.start()
        self._power_on()

    async def stop(self) -> None:
        """Power off for good (end of a test)."""
        for task in list(self._lifecycle):
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*self._lifecycle, return_exceptions=True)
        await self._power_off()
        if self._own_listener and self._connection_requests is not None:
            await self._connection_requests.stop()
            self._connection_requests = None

    async def reboot(self, command_key: str | None = None) -> None:
        """Orderly reboot; ``command_key`` set when a Reboot RPC asked for it (M Reboot)."""
        if command_key is not None:
            self.nv.boot_events.append(EventStruct(event_code=EVENT_M_REBOOT,
                                                   command_key=command_key))
        await self._power_off()
        await asyncio.sleep(self.boot_seconds)
        self._power_on()

    async def power_cut(self, off_seconds: float = 0.0) -> None:
        """Power lost and back after ``off_seconds``: RAM (queued events, sessions, running
        downloads) is lost; an interrupted download is reported as failed after the boot."""
        await self._power_off()
        await asyncio.sleep(off_seconds + self.boot_seconds)
        self._power_on()

    def _power_on(self) -> None:
        assert self._connection_requests is not None
        self.powered = True
        self._boot_time = self.clock.monotonic()
        self._events = []
        if not self.nv.bootstrapped:
            self._events.append(EventStruct(event_code=EVENT_BOOTSTRAP))
        self._events.append(EventStruct(event_code=EVENT_BOOT))
        self._events += self.nv.boot_events
        self.nv.boot_events = []
        for key, started in self.nv.downloads_in_progress.items():
            self.nv.transfers.append(PendingTransfer(key, 9010, "download interrupted by power loss",
                                                     started, self.clock.utcnow()))
        self.nv.downloads_in_progress.clear()
        self._install_staged_firmware()
        timeline.note(self.bind_address or self.device_id.serial_number, "state",
                      f"boots {self.model.get('DeviceInfo.SoftwareVersion')}")
        url = self._connection_requests.register(
            self._token, self.model.get("ManagementServer.ConnectionRequestUsername"),
            self.model.get("ManagementServer.ConnectionRequestPassword"),
            self._on_connection_request, self.clock.monotonic)
        self.model.set("ManagementServer.ConnectionRequestURL", url)
        self._spawn(self._session_loop())
        self._spawn(self._periodic_informs())
        self._wake.set()

    async def _power_off(self) -> None:
        self.powered = False
        if self._connection_requests is not None:
            self._connection_requests.unregister(self._token)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._after_session.clear()
        self._sessions_open = 0

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _install_staged_firmware(self) -> None:
        if self.quirks.keep_version:
            self.nv.staged_packages.clear()
            self.nv.staged_version = None
        new_version = self.nv.staged_version
        if self.nv.staged_packages:
            self.nv.packages.update(self.nv.staged_packages)
            self.nv.staged_packages = {}
            new_version = self.nv.packages.get(self.profile.main_package, new_version)
        self.nv.staged_version = None
        if new_version is not None and self.model.set("DeviceInfo.SoftwareVersion", new_version):
            self._events.append(EventStruct(event_code=EVENT_VALUE_CHANGE))

    # -- triggers ------------------------------------------------------------------------------
    def queue_event(self, code: str, command_key: str = "") -> None:
        if all(e.event_code != code for e in self._events):
            self._events.append(EventStruct(event_code=code, command_key=command_key))
        self._wake.set()

    def _on_connection_request(self) -> bool:
        if not self.powered:
            return False
        if self.quirks.overlapping_sessions and self._sessions_open:
            # cwmp-sim: a second session right away, beside the one in progress.
            self.overlapping_sessions += 1
            self._spawn(self._overlapping_session())
            return True
        self.queue_event(EVENT_CONNECTION_REQUEST)
        return True

    async def _periodic_informs(self) -> None:
        while True:
            interval = float(self.model.get("ManagementServer.PeriodicInformInterval") or 0)
            enabled = self.model.get("ManagementServer.PeriodicInformEnable") in ("true", "1")
            await asyncio.sleep(interval if enabled and interval > 0 else 3600)
            if enabled and interval > 0:
                self.queue_event(EVENT_PERIODIC)

    # -- sessions ------------------------------------------------------------------------------
    async def _session_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._run_session(None)
            except SessionFailed as failure:
                self.retry_count += 1
                self.last_session_error = str(failure)
                wait = retry_wait(
                    self.retry_count,
                    float(self.model.get("ManagementServer.CWMPRetryMinimumWaitInterval")),
                    int(self.model.get("ManagementServer.CWMPRetryIntervalMultiplier")), self.rng)
                try:  # a new event during the wait retries at once
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                self._wake.set()
                continue
            self.retry_count = 0

    async def _overlapping_session(self) -> None:
        try:
            await self._run_session([EventStruct(event_code=EVENT_CONNECTION_REQUEST)])
        except SessionFailed as failure:  # no retry: the queued events keep their own session
            self.last_session_error = str(failure)

    async def _run_session(self, events: list[EventStruct] | None) -> None:
        """One session. ``events`` None: the queued events (normal); else exactly these."""
        queued = events is None
        self.session_attempts.append(self.clock.monotonic())
        inform_events = self._inform_events(list(self._events) if queued else events or [])
        client = AcsSession(self.model.get("ManagementServer.URL"), self.credentials,
                            self.bind_address, self.link, self.tls)
        self._sessions_open += 1
        try:
            await self._converse(client, inform_events, queued)
            self.sessions_completed += 1
        finally:
            self._sessions_open -= 1
            await client.close()
        # What the ACS asked for (reboot, downloads) starts once the session is over.
        actions, self._after_session = self._after_session, []
        for action in actions:
            action()

    def _inform_events(self, base: list[EventStruct]) -> list[EventStruct]:
        events = list(base)
        transfers = [] if self.quirks.no_transfer_complete else self.nv.transfers
        if transfers and self.quirks.transfer_complete_events != "none":
            events.append(EventStruct(event_code=EVENT_TRANSFER_COMPLETE))
            for transfer in transfers:
                key = "" if self.quirks.transfer_complete_events == "empty-key" else transfer.command_key
                events.append(EventStruct(event_code=EVENT_M_DOWNLOAD, command_key=key))
        unique: dict[tuple[str, str], EventStruct] = {}
        for event in events:
            unique.setdefault((event.event_code, event.command_key), event)
        return list(unique.values())[:64]

    async def _converse(self, client: AcsSession, events: list[EventStruct], queued: bool) -> None:
        self.model.set("DeviceInfo.UpTime", str(int(self.clock.monotonic() - self._boot_time)))
        inform = Inform(device_id=self.device_id, event=tuple(events), max_envelopes=1,
                        current_time=self.clock.utcnow(), retry_count=self.retry_count,
                        parameter_list=self._inform_parameters())
        self.informs.append(tuple(e.event_code for e in events))
        timeline.note(self.bind_address or self.device_id.serial_number, "session",
                      "Inform: " + ", ".join(e.event_code for e in events))
        reply = await client.post(self._emit(Envelope(body=inform, header=self._header(),
                                                      namespace=self.namespace)))
        if reply is None or not isinstance(reply.body, InformResponse):
            raise SessionFailed(f"expected InformResponse, got {reply and reply.body.TYPE_NAME}")
        if queued:
            self._events = [e for e in self._events if e not in events]
        if any(e.event_code == EVENT_BOOTSTRAP for e in events):
            self.nv.bootstrapped = True
        namespace = reply.namespace
        hold = bool(reply.header.hold_requests)
        sent: set[str] = set()
        in_flight: PendingTransfer | None = None
        while True:
            if reply is not None and not isinstance(
                    reply.body, (InformResponse, TransferCompleteResponse, Fault)):
                hold = bool(reply.header.hold_requests)  # an ACS request: answer it
                answer = await self._answer(reply)
                reply = await client.post(self._emit(answer))
                continue
            if reply is not None and isinstance(reply.body, TransferCompleteResponse) and in_flight:
                if in_flight in self.nv.transfers:
                    self.nv.transfers.remove(in_flight)
            in_flight = None
            transfers = [] if self.quirks.no_transfer_complete else self.nv.transfers
            waiting = [t for t in transfers if t.command_key not in sent]
            if waiting and not hold:
                in_flight = waiting[0]
                sent.add(in_flight.command_key)
                reply = await client.post(self._emit(self._transfer_complete(in_flight, namespace)))
                continue
            if reply is None:
                return  # the ACS has nothing more and neither have we
            reply = await client.post(b"")

    def _inform_parameters(self) -> tuple[ParameterValueStruct, ...]:
        return tuple(ParameterValueStruct(name=name, value=p.value, value_type=p.type)
                     for name, p in self.model.forced_inform())

    def _header(self, reply_to: Envelope | None = None) -> Header:
        if reply_to is not None:
            return Header(id=reply_to.header.id)
        return Header(id=f"{self.serial_number}-{next(self._message_ids)}")

    def _emit(self, envelope: Envelope) -> bytes:
        data = build_envelope(envelope)
        if self.quirks.times_before_fault and isinstance(envelope.body, TransferComplete):
            data = move_fault_struct_last(data)
        if self.trace is not None:
            self.trace("cpe", data)  # what goes on the wire, quirks included
        return data

    def _transfer_complete(self, transfer: PendingTransfer, namespace: str) -> Envelope:
        code, text = transfer.fault_code, transfer.fault_string
        if namespace == CWMP_1_0 and code not in CWMP_1_0_TRANSFER_COMPLETE_FAULT_CODES:
            code = 9010  # cwmp-1-0 knows only the general transfer failure
        return Envelope(body=TransferComplete(
            command_key=transfer.command_key,
            fault_struct=TransferCompleteFaultStruct(fault_code=code, fault_string=text[:256]),
            start_time=transfer.start_time, complete_time=transfer.complete_time),
            header=self._header(), namespace=namespace)

    # -- ACS requests, one method per RPC (like genieacs-sim's methods.js) ---------------------
    async def _answer(self, request: Envelope) -> Envelope:
        handler = getattr(self, f"_rpc_{request.body.TYPE_NAME}", None)
        if handler is None:
            body = Fault(fault_code=9000, fault_string=f"{request.body.TYPE_NAME} not supported")
        else:
            body = handler(request.body)
        return Envelope(body=body, header=self._header(request), namespace=request.namespace)

    def _rpc_GetRPCMethods(self, request: GetRPCMethods) -> GetRPCMethodsResponse:
        return GetRPCMethodsResponse(method_list=CPE_METHODS)

    def _rpc_GetParameterValues(self, request: GetParameterValues) -> Any:
        found = self.model.matching(request.parameter_names)
        if found is None:
            return Fault(fault_code=9005, fault_string="Invalid parameter name")
        return GetParameterValuesResponse(parameter_list=tuple(
            ParameterValueStruct(name=n, value=p.value, value_type=p.type) for n, p in found))

    def _rpc_SetParameterValues(self, request: SetParameterValues) -> Any:
        problems = []
        for item in request.parameter_list:
            parameter = self.model.parameters.get(item.name)
            if parameter is None:
                problems.append(SetParameterValuesFault(parameter_name=item.name, fault_code=9005,
                                                        fault_string="Invalid parameter name"))
            elif not parameter.writable:
                problems.append(SetParameterValuesFault(parameter_name=item.name, fault_code=9008,
                                                        fault_string="not writable"))
        if problems:
            return Fault(fault_code=9003, fault_string="Invalid arguments",
                         set_parameter_values_fault=tuple(problems))
        for item in request.parameter_list:
            self.model.parameters[item.name].value = item.value
        self.model.set("ManagementServer.ParameterKey", request.parameter_key)
        return SetParameterValuesResponse(status=0)

    def _rpc_Reboot(self, request: Reboot) -> RebootResponse:
        self._after_session.append(lambda: self._spawn_detached(self.reboot(request.command_key)))
        return RebootResponse()

    def _rpc_Download(self, request: Download) -> Any:
        if not request.url.lower().startswith(("http://", "https://")):
            return Fault(fault_code=9013, fault_string="Unsupported protocol for file transfer")
        if not self._supports(request.file_type):
            return Fault(fault_code=9003, fault_string=f"unsupported FileType {request.file_type!r}")
        self._after_session.append(lambda: self._spawn(self._download(request)))
        return DownloadResponse(status=1)

    def _spawn_detached(self, coroutine: Any) -> None:
        # A reboot cancels the tasks that power-off stops: it must not be one of them.
        task = asyncio.ensure_future(coroutine)
        self._lifecycle.add(task)
        task.add_done_callback(self._lifecycle.discard)

    def _supports(self, file_type: str) -> bool:
        return (file_type in (FIRMWARE_UPGRADE_IMAGE, WEB_CONTENT, VENDOR_CONFIGURATION_FILE,
                              TONE_FILE, RINGER_FILE) or file_type.startswith("X "))

    # -- Download ------------------------------------------------------------------------------
    async def _download(self, request: Download) -> None:
        # Accepted = owed a TransferComplete, even across a power cut (kept non-volatile).
        self.nv.downloads_in_progress[request.command_key] = self.clock.utcnow()
        await asyncio.sleep(request.delay_seconds)
        started = self.clock.utcnow()
        needs_reboot = False
        try:
            content = await self._fetch(request.url, request, request.file_size)
            needs_reboot = await self._apply(request, content)
            fault_code, fault_string = 0, ""
        except TransferFailed as failure:
            fault_code, fault_string = failure.fault_code, str(failure)
        except CorruptFile as corrupt:
            fault_code, fault_string = 9018, f"File corrupted: {corrupt}"
        del self.nv.downloads_in_progress[request.command_key]
        timeline.note(self.bind_address or self.device_id.serial_number, "download",
                      f"{request.url}: {fault_string or 'fetched and applied'}")
        transfer = PendingTransfer(request.command_key, fault_code, fault_string, started,
                                   self.clock.utcnow())
        self.nv.transfers.append(transfer)
        if needs_reboot and self.reboot_after_firmware:
            self._spawn_detached(self.reboot())
        elif self.quirks.transfer_complete_events != "none":
            self.queue_event(EVENT_TRANSFER_COMPLETE)
        # else (genieacs-sim): the TransferComplete waits for the next session of any kind

    async def _fetch(self, url: str, request: Download, size: int = 0) -> bytes:
        return await download(url, request.username, request.password,
                              bind_address=self.bind_address, link=self.link, tls=self.tls,
                              expected_size=size)

    async def _apply(self, request: Download, content: bytes) -> bool:
        """Install ``content``; True when a reboot completes the install (firmware)."""
        file_type = request.file_type
        name = request.target_file_name or request.url.rsplit("/", 1)[-1]
        if file_type == FIRMWARE_UPGRADE_IMAGE:
            if self.profile.firmware == "upgrade-xml":
                packages = {}
                for url in parse_upgrade_xml(content):  # each link, as RouterOS does
                    package = parse_dummy_npk(await self._fetch(url, request))
                    packages[package.name] = package.version
                self.nv.staged_packages = packages
            else:
                self.nv.staged_version = parse_image(content)
            return True
        if file_type == VENDOR_CONFIGURATION_FILE:
            self._apply_configuration(request.url, content)
        else:  # web content, tone, ringer, MikroTik factory configuration, other vendor types
            self.nv.files[file_type] = (name, content)
        return False

    def _apply_configuration(self, url: str, content: bytes) -> None:
        """MikroTik: a URL ending in .alter runs as a script on the existing configuration;
        any other file replaces the whole configuration (fact sheet §5)."""
        try:
            text = content.decode()
        except UnicodeDecodeError:
            raise CorruptFile("configuration file is not text") from None
        if url.split("?", 1)[0].endswith(".alter"):
            self.nv.scripts_applied.append(text)
            for path, values in parse_alter_script(text):
                for key, value in values.items():
                    parameter = self.profile.script_parameters.get((path, key))
                    if parameter is not None and self.model.set(parameter, value):
                        self._events.append(EventStruct(event_code=EVENT_VALUE_CHANGE))
        else:
            self.nv.configuration = text
            self.nv.scripts_applied.clear()

