"""An emulated LoRa Basics Station (2.0.6): CUPS client, TC (LNS) client, update runner.

Behaviour follows ``src/cups.c``, ``src/tc.c``, ``src-linux/sys_linux.c`` (fact sheet §1-§7):

* Start: a leftover ``update.bin`` is run again (``startupMaster``), then CUPS and TC start
  side by side.
* CUPS (``cups_ondone``): after success the next session is ``cups_ok_interval`` ahead (24 h), or
  ``cups_resync_interval`` (1 min) when CUPS sent a new CUPS URI/credentials; after a failure ``cups_resync_interval``
  (1 min); whenever TC is connected, ``cups_ok_interval``. The session uses the credential set
  REG, then rotates REG → BAK → BOOT → REG after more than 6 failures in a row, a non-200 reply
  (rejected) or a missing URI; success returns to REG. The request always describes the REG set.
* Update (``cups_ondone``): written to ``update.bi_`` (0750), renamed to ``update.bin``, checked
  against every 64-byte ``sig-N.key`` (the key CRC of the reply is ignored), run or removed as the
  decision table says. Running: a program with cwd = the home dir, its output in ``update.log``,
  within ``update_time_limit`` real seconds, under ``clock.busy`` so virtual time stands still.
  A program that created ``station.restart`` gets the station restarted (its supervisor's job).
* A reply cut inside its update segment fails the session, but the URIs and credentials before
  the update stay committed (``sys_commitConfigUpdate()`` runs when the update segment starts).
* TLS (``conn_setup_tls``, :mod:`.tls`): an ``https``/``wss`` URI is used with the files of the
  credential set — CUPS with the set of its session (REG, BAK or BOOT), TC always with REG (2.0.6
  never rotates TC's set) — a client certificate or a token sent as HTTP header lines; a set
  that cannot be set up, a server certificate that does not verify, a name that does not match
  the mbedTLS way: the session fails (CUPS rotates its set after more than 6 failures in a row).
* TC (``tc_continue``): discovery on ``/router-info`` of ``tc.uri``; ``version`` then
  ``router_config`` on the muxs URI. Rejected or no ``tc.uri`` or 10 retries → TC stops and CUPS
  is triggered (in ``cups_resync_interval``); CUPS restarts TC when its session ends. Muxs
  reconnect backoff 2^n s (n ≤ 4), discovery backoff 10 s × retries (≤ 60 s).

Timers run on the loop (virtual under the harness); ``dial(url) -> (host, port)`` maps a server
URL to the address to connect to (the runtime's link proxy), connections bind ``bind_address``.
Under the harness: ``BasicsStation(settings, StationHome(dir), runtime.clock,
bind_address=runtime.address_of(name), dial=runtime.link)``; standalone, ``dial`` defaults to the
URL's own host and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from otaharness.emulators.basics_station.cups_http import (
    CupsHttpError,
    CupsReplyCut,
    post_update_info,
)
from otaharness.emulators.basics_station.home import (
    RESTART_REQUEST,
    UPDATE_FILE,
    UPDATE_PARTIAL,
    CredentialSet,
    StationHome,
)
from otaharness.emulators.basics_station.tls import TlsSetupError, station_tls
from otaharness.protocols.basics_station import (
    ROUTER_INFO_PATH,
    BasicsStationCodecError,
    Credentials,
    RouterConfig,
    RouterInfoRequest,
    RouterInfoResponse,
    UpdateInfoRequest,
    UpdateInfoResponse,
    VersionMessage,
    station_key_crcs,
    station_update_decision,
)
from otaharness.runtime import timeline
from otaharness.runtime.tasks import BackgroundTasks

if TYPE_CHECKING:
    from otaharness.runtime.clock import Clock

log = logging.getLogger(__name__)

Dial = Callable[[str], Awaitable[tuple[str, int]]]

FAIL_COUNT_THRESHOLD = 6  # cups.c FAIL_CNT_THRES
TC_RETRY_LIMIT = 10
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class StationSettings:
    """What ``station.conf`` and the build decide (defaults of ``src/s2conf.h``)."""

    eui: int
    version: str = "2.0.6(linux/std)"
    build_date: str = "2026-01-01 00:00:00"
    station: str | None = None  # the CUPS request's "station"; None: "<version> <build_date>" as built
    model: str = "linux"
    features: str = "rmtsh"
    cups_ok_interval: float = 86400.0
    cups_resync_interval: float = 60.0
    cups_conn_timeout: float = 60.0
    tc_timeout: float = 60.0
    update_time_limit: float = 30.0  # real seconds (the program runs outside the loop)


@dataclass
class StationEvent:
    at: float  # loop time
    kind: str  # e.g. "cups-done", "cups-failed", "update-run", "update-aborted", "tc-connected"
    detail: str = ""


@dataclass
class _Ram:
    """State lost at a reboot or power cut."""

    cups_set: CredentialSet = CredentialSet.REG
    cups_failures: int = 0
    cups_last_failed: bool = False
    cups_session_pending: bool = True  # startup: sys_triggerCUPS(0)
    cups_running: bool = False
    cups_due: float = 0.0
    router_config: RouterConfig | None = None


@dataclass(frozen=True)
class _CupsOutcome:
    state: str  # "done", "failed", "rejected" (HTTP status not 200), "no-uri"
    detail: str = ""
    changes: list[str] = field(default_factory=list)


CONFIG_PREFIX_SIZES = (1, 1, 2, 2, 4)  # length prefixes of cupsUri, tcUri, cupsCred, tcCred, signature


def config_before_update(partial: bytes) -> UpdateInfoResponse | None:
    """The segments before the update of a reply cut inside its update segment (the update left
    empty), or None when the cut came before the update's length."""
    offset = 0
    for size in CONFIG_PREFIX_SIZES:
        if offset + size > len(partial):
            return None
        offset += size + int.from_bytes(partial[offset:offset + size], "little")
    if offset + 4 > len(partial):
        return None
    try:
        return UpdateInfoResponse.decode(partial[:offset] + bytes(4))
    except BasicsStationCodecError:
        return None


def _credentials_of(response: UpdateInfoResponse) -> dict[str, Credentials | None]:
    return {category: Credentials.decode(blob) if blob else None for category, blob in
            (("cups", response.cups_credentials), ("tc", response.tc_credentials))}


async def _dial_directly(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS.get(parts.scheme, 80)


class BasicsStation:
    def __init__(self, settings: StationSettings, home: StationHome, clock: Clock, *,
                 bind_address: str | None = None, dial: Dial | None = None, name: str | None = None,
                 tls_keylog: str | None = None) -> None:
        self.settings = settings
        self.tls_keylog = tls_keylog  # where TLS session secrets go (NSS key log), for Wireshark
        self.home = home
        self.clock = clock
        self.bind_address = bind_address
        self.dial = dial or _dial_directly
        self.name = name or f"station-{settings.eui:016X}"
        self.events: list[StationEvent] = []
        self.boots = 0
        self._ram = _Ram()
        self._cups_wake = asyncio.Event()
        self._cups_task: asyncio.Task[Any] | None = None
        self._tc_task: asyncio.Task[Any] | None = None
        self._restart_task: asyncio.Task[Any] | None = None
        self._tasks = BackgroundTasks(self.name)  # every task of this life, also stopped TC ones finishing
        self._muxs: ClientConnection | None = None
        self._tc_connected = False
        # Hooks for the radio side (emulators/basics_station/radio.py): a handler per LNS msgtype
        # other than router_config, and the last MuxTime with the loop time it arrived at.
        self.lns_handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.mux_time: tuple[float, float] | None = None

    # -- observation ----------------------------------------------------------------------------
    def note(self, kind: str, detail: str = "") -> None:
        self.events.append(StationEvent(asyncio.get_running_loop().time(), kind, detail))
        log.info("%s: %s %s", self.name, kind, detail)
        timeline.note(self.bind_address or self.name, "state", f"{kind} {detail}".strip())

    def count(self, kind: str) -> int:
        return sum(1 for event in self.events if event.kind == kind)

    def last(self, kind: str) -> StationEvent | None:
        return next((event for event in reversed(self.events) if event.kind == kind), None)

    @property
    def tc_connected(self) -> bool:
        return self._tc_connected

    @property
    def running(self) -> bool:
        return self._cups_task is not None

    # -- life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.running:
            return
        self.boots += 1
        self._ram = _Ram()
        self.note("boot", f"#{self.boots}")
        (self.home.path / RESTART_REQUEST).unlink(missing_ok=True)
        if (self.home.path / UPDATE_FILE).exists():  # startupMaster: a leftover update runs again
            self.note("update-rerun", "update.bin left from before the restart")
            await self._run_update()
        self._ram.cups_due = asyncio.get_running_loop().time()
        self._cups_task = self._tasks.spawn(self._cups_loop(), name="CUPS")
        self._start_tc()

    async def stop(self) -> None:
        """Orderly shutdown: connections closed with a close handshake; a pending restart dropped."""
        restart = self._restart_task
        if restart is not None and restart is not asyncio.current_task() and not restart.done():
            restart.cancel()
            await asyncio.gather(restart, return_exceptions=True)
        await self._halt(graceful=True)

    async def reboot(self) -> None:
        await self._halt(graceful=True)
        await self.start()

    async def power_cut(self) -> None:
        """Power lost and back: RAM state gone, connections dropped without a goodbye, files kept
        (including a half-written ``update.bi_``)."""
        await self._halt(graceful=False)
        await self.start()

    async def _halt(self, graceful: bool) -> None:
        if self._muxs is not None and not graceful:
            self._muxs.transport.abort()  # no close frame, no FIN handshake: the power is gone
        self._cups_task = self._tc_task = None
        await self._tasks.cancel_all()
        self._tc_connected = False
        self.note("halt", "orderly" if graceful else "power cut")

    async def wait_restart(self) -> None:
        """For callers that must not leave a pending restart behind."""
        if self._restart_task is not None:
            await self._restart_task

    # -- CUPS scheduling (cups_ondone / sys_triggerCUPS / sys_delayCUPS) ------------------------------
    def trigger_cups(self, delay: float | None = None) -> None:
        """``sys_triggerCUPS``: a session in ``delay`` s (None = the resync interval), unless one is pending."""
        ram = self._ram
        if ram.cups_session_pending or ram.cups_running:
            return
        ram.cups_session_pending = True
        loop_time = asyncio.get_running_loop().time()
        ram.cups_due = loop_time + (self.settings.cups_resync_interval if delay is None else delay)
        self._cups_wake.set()

    def _delay_cups(self) -> None:
        """``sys_delayCUPS``: TC is up, so a failed CUPS need not be retried soon."""
        ram = self._ram
        if ram.cups_last_failed and not ram.cups_session_pending and not ram.cups_running:
            ram.cups_due = asyncio.get_running_loop().time() + self.settings.cups_ok_interval
            self._cups_wake.set()

    async def _cups_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while (remaining := self._ram.cups_due - loop.time()) > 0:
                self._cups_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cups_wake.wait(), remaining)
            ram = self._ram
            ram.cups_running, ram.cups_session_pending = True, False
            try:
                ahead = await self._cups_session()
            finally:
                ram.cups_running = False
            if self._tc_connected:
                ahead = self.settings.cups_ok_interval
            ram.cups_due = loop.time() + ahead
            self._start_tc()  # sys_startTC after every CUPS interaction

    async def _cups_session(self) -> float:
        """One CUPS interaction; returns the delay until the next one."""
        ram = self._ram
        outcome = await self._cups_exchange()
        if outcome.state == "done":
            ram.cups_set, ram.cups_failures, ram.cups_last_failed = CredentialSet.REG, 0, False
            cups_changed = any(change.startswith("cups") for change in outcome.changes)
            # "CUPS provided CUPS updates - reconnecting in 1m": the resync interval (its `ahead`
            # keeps CUPS_RESYNC_INTV), not at once; 24 h anyway while TC is connected.
            return self.settings.cups_resync_interval if cups_changed else self.settings.cups_ok_interval
        if ram.cups_failures > FAIL_COUNT_THRESHOLD or outcome.state in ("rejected", "no-uri"):
            ram.cups_set = CredentialSet((ram.cups_set + 1) % len(CredentialSet))
        ram.cups_failures += 1
        ram.cups_last_failed = True
        self.note("cups-failed", f"{outcome.state}: {outcome.detail}")
        return self.settings.cups_resync_interval

    async def _cups_exchange(self) -> _CupsOutcome:
        """POST /update-info with the current credential set and apply the reply."""
        credential_set = self._ram.cups_set
        if credential_set != CredentialSet.REG:
            self.note("cups-set", credential_set.name)  # "Connecting to CUPS-bak ..."
        url = self.home.uri("cups", credential_set)
        if url is None:
            return _CupsOutcome("no-uri", f"no CUPS URI in the {credential_set.name} set")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return _CupsOutcome("failed", f"bad CUPS URI {url!r}")
        tls, auth_headers = None, b""
        if parts.scheme == "https":
            try:
                tls, auth_headers = station_tls(self.home, "cups", credential_set, self.tls_keylog)
            except TlsSetupError as error:
                return _CupsOutcome("failed", str(error))
        request = self.update_info_request()
        try:
            async with asyncio.timeout(self.settings.cups_conn_timeout):
                address = await self.dial(url)
                reply = await post_update_info(
                    address, f"{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme]}", request.encode(),
                    self.bind_address, tls=tls, server_hostname=parts.hostname, auth_headers=auth_headers)
        except CupsReplyCut as cut:
            kept = self._keep_before_cut(cut, credential_set)
            return _CupsOutcome("failed", f"{url}: {type(cut).__name__}: {cut}" + (
                f" (kept {', '.join(kept)})" if kept else ""))
        except (OSError, TimeoutError, CupsHttpError) as error:
            return _CupsOutcome("failed", f"{url}: {type(error).__name__}: {error}")
        if reply.status != 200:
            return _CupsOutcome("rejected", f"HTTP {reply.status} {reply.reason}: {reply.body[:200]!r}")
        self._backup_cups(credential_set)
        try:
            response = UpdateInfoResponse.decode(reply.body)
            credentials = _credentials_of(response)
        except BasicsStationCodecError as error:
            return _CupsOutcome("failed", f"malformed CUPS reply: {error}")
        changes = self._commit_config(response, credentials)
        if any(change.startswith("tc") for change in changes):
            self._stop_tc()  # restarted when this CUPS session ends
        self.note("cups-done", ", ".join(changes + ["update"] * bool(response.update)) or "no updates")
        if response.update:
            await self._take_update(response)
        return _CupsOutcome("done", changes=changes)

    def update_info_request(self) -> UpdateInfoRequest:
        home, settings = self.home, self.settings
        return UpdateInfoRequest(
            router=settings.eui,
            cups_uri=home.uri("cups"),
            tc_uri=home.uri("tc"),
            cups_cred_crc=home.credential_crc("cups"),
            tc_cred_crc=home.credential_crc("tc"),
            station=settings.station if settings.station is not None else f"{settings.version} {settings.build_date}",
            model=settings.model,
            package=home.version(),
            keys=tuple(station_key_crcs(home.sig_key_files())),
        )

    def _backup_cups(self, credential_set: CredentialSet) -> None:
        """``sys_backupConfig``: on the first 200 reply to a REG session, REG is copied to BAK."""
        if credential_set == CredentialSet.REG and not self.home.backup_done("cups"):
            self.home.backup("cups")

    def _commit_config(self, response: UpdateInfoResponse, credentials: dict[str, Credentials | None]) -> list[str]:
        """Commit URIs/credentials (CUPS first: a CUPS change makes the station call back at once)."""
        changes = []
        for category, uri in (("cups", response.cups_uri), ("tc", response.tc_uri)):
            if uri is None and credentials[category] is None:
                continue
            self.home.commit(category, uri, credentials[category])
            changes += [f"{category} uri"] * (uri is not None) + [f"{category} credentials"] * (credentials[category] is not None)
        return changes

    def _keep_before_cut(self, cut: CupsReplyCut, credential_set: CredentialSet) -> list[str]:
        """A reply cut inside its update segment: the station has already committed the URIs and
        credentials before it (``cups.c`` calls ``sys_commitConfigUpdate()`` when the update
        segment starts), so they stay, though the session failed and TC is not restarted."""
        if cut.status != 200:
            return []
        self._backup_cups(credential_set)  # done when the 200 header arrived
        response = config_before_update(cut.partial)
        if response is None:
            return []
        try:
            credentials = _credentials_of(response)
        except BasicsStationCodecError:
            return []
        return self._commit_config(response, credentials)

    # -- update ---------------------------------------------------------------------------------
    async def _take_update(self, response: UpdateInfoResponse) -> None:
        partial, update_file = self.home.path / UPDATE_PARTIAL, self.home.path / UPDATE_FILE
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o750), "wb") as file:
            file.write(response.update)
        partial.replace(update_file)
        self.note("update-received", f"{len(response.update)} bytes")
        decision = station_update_decision(response, self.home.sig_key_files())
        assert decision is not None
        if not decision.runs_update:
            update_file.unlink(missing_ok=True)
            self.note("update-aborted", decision.outcome.value)
            return
        self.note("update-accepted", decision.outcome.value + (
            f" (sig-{decision.key_index}.key)" if decision.key_index is not None else ""))
        await self._run_update()
        restart = self.home.path / RESTART_REQUEST
        if restart.exists():
            restart.unlink()
            self.note("restart-requested", "by the update program")
            self._restart_task = asyncio.create_task(self.reboot(), name=f"{self.name} restart")

    async def _run_update(self) -> None:
        """Run ``update.bin`` in the sandbox within the time limit, virtual time standing still."""
        # Absolute: the program runs with cwd = the home, so a relative home would be doubled.
        update_file = (self.home.path / UPDATE_FILE).absolute()
        loop = asyncio.get_running_loop()
        with self.clock.busy("station update"), open(self.home.path / "update.log", "ab") as output:
            try:
                process = await asyncio.create_subprocess_exec(
                    str(update_file), cwd=self.home.path, stdin=asyncio.subprocess.DEVNULL,
                    stdout=output, stderr=output,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "STATION_HOME": str(self.home.path)})
            except OSError as error:  # not executable, bad format
                self.note("update-failed", f"cannot run update.bin: {error}")
                return
            finished = threading.Event()  # a real-time watchdog: the loop's clock does not move now
            watchdog = loop.run_in_executor(None, finished.wait, self.settings.update_time_limit)
            waiting = asyncio.ensure_future(process.wait())
            either: set[asyncio.Future[Any]] = {waiting, watchdog}
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    process.kill()
                    self.note("update-failed", f"killed after {self.settings.update_time_limit:g} s")
                code = await waiting
            finally:
                if process.returncode is None:  # cancelled (power cut): the program dies with us
                    process.kill()
                    await process.wait()
                finished.set()
                await watchdog
        self.note("update-run", f"exit {code}")

    # -- TC ---------------------------------------------------------------------------------------
    def _start_tc(self) -> None:
        if self._tc_task is None or self._tc_task.done():
            self._tc_task = self._tasks.spawn(self._tc_loop(), name="TC")


    def _stop_tc(self) -> None:
        if self._tc_task is not None and self._tc_task is not asyncio.current_task():
            self._tc_task.cancel()
        self._tc_task = None
        self._tc_connected = False

    async def _tc_loop(self) -> None:
        retries, muxs_uri = 0, None
        while True:
            tc_uri = self.home.uri("tc")
            if tc_uri is None:
                state = "no-uri"
            elif muxs_uri is None:
                state, muxs_uri = await self._discover(tc_uri)
                if muxs_uri is not None:
                    continue
            else:
                state, connected = await self._muxs_session(muxs_uri)
                if connected:
                    retries = 0
            if state in ("rejected", "no-uri") or retries >= TC_RETRY_LIMIT:
                self.note("tc-stopped", f"{state} after {retries} retries: invoking CUPS")
                self._tc_task = None
                self.trigger_cups()
                return
            if muxs_uri is not None:
                if retries <= 4 and state == "closed":
                    await asyncio.sleep(1 << retries)
                    retries += 1
                    continue
                muxs_uri, retries = None, 1
            await asyncio.sleep(min(retries, 6) * 10)
            retries += 1

    async def _websocket(self, url: str, address: tuple[str, int]) -> ClientConnection:
        """A websocket to ``url`` at ``address``; over TLS with the TC REG set (``TlsSetupError``
        when the station cannot set it up). The station offers no extensions or subprotocols and
        sends no pings."""
        parts = urlsplit(url)
        tls: dict[str, Any] = {}
        headers: list[tuple[str, str]] = []
        if parts.scheme == "wss":
            context, auth_headers = station_tls(self.home, "tc", CredentialSet.REG, self.tls_keylog)
            tls = {"ssl": context, "server_hostname": parts.hostname}
            for line in auth_headers.decode("latin-1").split("\r\n"):
                if line:
                    field_name, _, value = line.partition(": ")
                    headers.append((field_name, value))
        return await connect(
            url, host=address[0], port=address[1], proxy=None, compression=None, user_agent_header=None,
            open_timeout=None, ping_interval=None, close_timeout=5, additional_headers=headers or None,
            local_addr=(self.bind_address, 0) if self.bind_address else None, **tls)

    async def _discover(self, tc_uri: str) -> tuple[str, str | None]:
        parts = urlsplit(tc_uri)
        url = f"{parts.scheme}://{parts.netloc}{ROUTER_INFO_PATH}"
        try:
            async with asyncio.timeout(self.settings.tc_timeout):
                websocket = await self._websocket(url, await self.dial(url))
                async with websocket:
                    await websocket.send(RouterInfoRequest(self.settings.eui).to_json())
                    answer = RouterInfoResponse.decode(await websocket.recv())
        except TlsSetupError as error:
            # tc_start fails a TLS setup with TC_ERR_NOURI (its error state is set to FAILED only
            # after conn_setup_tls): TC stops and CUPS is asked at once, no retries.
            self.note("tc-failed", f"discovery {url}: {error}")
            return "no-uri", None
        except (OSError, TimeoutError, websockets.WebSocketException, BasicsStationCodecError) as error:
            self.note("tc-failed", f"discovery {url}: {type(error).__name__}: {error}")
            return "failed", None
        if not answer.accepted:
            self.note("tc-rejected", answer.error or "no uri")
            return "rejected", None
        return "ok", answer.uri

    async def _muxs_session(self, muxs_uri: str) -> tuple[str, bool]:
        try:
            async with asyncio.timeout(self.settings.tc_timeout):
                websocket = await self._websocket(muxs_uri, await self.dial(muxs_uri))
        except (OSError, TimeoutError, websockets.WebSocketException, TlsSetupError) as error:
            self.note("tc-failed", f"muxs {muxs_uri}: {type(error).__name__}: {error}")
            return "failed", False
        self._muxs = websocket
        try:
            version = self.home.version()
            await websocket.send(VersionMessage(self.settings.version, version, version, self.settings.model,
                                                self.settings.features).to_json())
            self._tc_connected = True
            self.note("tc-connected", f"{muxs_uri} package {version!r}")
            if not self.home.backup_done("tc"):
                self.home.backup("tc")
            self._delay_cups()
            async for message in websocket:
                self._on_lns_message(message)
        except websockets.ConnectionClosed:
            pass
        except BasicsStationCodecError as error:
            self.note("tc-failed", f"closing: {error}")
            await websocket.close(1000)
        finally:
            self._muxs = None
            self._tc_connected = False
            if websocket.state is not State.CLOSED:  # stopped by CUPS or a reboot: say goodbye
                await websocket.close()
        self.note("tc-closed", f"code {websocket.close_code}")
        return "closed", True

    def _on_lns_message(self, message: str | bytes) -> None:
        """``s2e_onMsg``: only router_config matters to the upgrade flow; others are logged."""
        if isinstance(message, bytes):
            raise BasicsStationCodecError("binary message from the LNS")
        try:
            document = json.loads(message)
        except ValueError as error:
            raise BasicsStationCodecError(f"LNS message is not JSON: {error}") from error
        if isinstance(document, dict) and isinstance(document.get("MuxTime"), (int, float)):
            self.mux_time = (float(document["MuxTime"]), asyncio.get_running_loop().time())
        msgtype = document.get("msgtype") if isinstance(document, dict) else None
        handler = self.lns_handlers.get(msgtype) if isinstance(msgtype, str) else None
        if handler is not None and self._ram.router_config is not None:  # s2e drops these before router_config
            handler(document)
        elif isinstance(document, dict) and document.get("msgtype") == "router_config":
            self._ram.router_config = RouterConfig.from_dict(document)
            self.note("router-config", self._ram.router_config.region)
        else:
            self.note("lns-message", str(document.get("msgtype") if isinstance(document, dict) else document))

    @property
    def router_config(self) -> RouterConfig | None:
        return self._ram.router_config

    def ref_time(self) -> float:
        """``RefTime`` of an uplink: the last MuxTime plus the time since it came (0.0 before)."""
        if self.mux_time is None:
            return 0.0
        mux_time, received_at = self.mux_time
        return mux_time + asyncio.get_running_loop().time() - received_at

    def send_to_lns(self, message: dict[str, Any]) -> bool:
        """Queue one JSON message for the LNS; False (dropped) when the muxs connection is down."""
        websocket = self._muxs
        if websocket is None or not self._tc_connected:
            return False
        self._tasks.spawn(self._send_quietly(websocket, json.dumps(message)), name="LNS send")
        return True

    async def _send_quietly(self, websocket: ClientConnection, text: str) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await websocket.send(text)
