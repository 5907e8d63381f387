"""The MQTT broker of a scenario: a mosquitto process, the in-process amqtt fallback, or a user's.

Every broker has the same small interface (:class:`Broker`): ``await start()``, ``await stop()``,
``name``, ``host``, ``port``, ``url``, ``log_path`` and a synchronous :meth:`Broker.flush` barrier
that the virtual clock calls before it lets time jump (see ``otaharness/runtime/clock.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import ipaddress
import logging
import os
import pwd
import re
import resource
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from otaharness.protocols.mqtt_wire import encode_varint
from otaharness.runtime.redaction import remember

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
MQTT_DEFAULT_PORT = 1883
# Real seconds: these bound waits on another process, not scenario timers.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
FLUSH_TIMEOUT = 2.0


# Linux ends a child given PR_SET_PDEATHSIG when the *thread* that forked it ends, not the process:
# mosquitto is forked from one thread kept for the process's life, so a broker ends with the
# process that started it, even when that process is killed outright (SIGKILL leaves no chance to
# stop it, and the broker runs in its own session, away from the killed process group).
PROCESS_LIFETIME_THREAD_PREFIX = "process-lifetime-"  # not a runtime's leftover (runtime.close)
_spawners: dict[int, ThreadPoolExecutor] = {}


def _process_lifetime_spawner() -> ThreadPoolExecutor:
    """This process's spawner thread (a forked child has none of its parent's threads)."""
    pid = os.getpid()
    if pid not in _spawners:
        _spawners.clear()
        _spawners[pid] = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=PROCESS_LIFETIME_THREAD_PREFIX + "broker-spawner")
    return _spawners[pid]


def _ends_with_this_process(argv: list[str]) -> list[str]:
    """``argv`` run through util-linux's setpriv, which asks for SIGTERM when its parent thread ends
    and then executes ``argv`` (same pid); ``argv`` unchanged where there is no setpriv."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv


class BrokerError(Exception):
    """A broker could not be started, stopped or reached."""


class BrokerUnavailable(BrokerError):
    """The requested broker is not installed (an error under CI, never a skip)."""


class BrokerPreferenceError(ValueError):
    """A broker preference that is neither auto, mosquitto, amqtt nor an mqtt:// URL."""


# The harness's own server-side components (the AWS IoT gateway and jobs data plane) log in as
# this user; anonymous clients are kept off `$`-topics (`$aws/...`), where identity matters.
SERVICE_USERNAME = "otaharness-service"


class Broker:
    """What the runtime needs from any broker."""

    name: str
    host: str = LOCALHOST
    port: int | None = None
    log_path: Path | None = None
    # (username, password) of the service user, when this broker keeps anonymous clients off
    # `$`-topics; None when it does not (the fallback, a user's broker).
    service_credentials: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise BrokerError(f"{self.name} is not started")
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Block until no message is still inside the broker; True when that is known."""
        raise NotImplementedError

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


# --- the flush barrier: a raw MQTT 3.1.1 connection on a blocking socket ---------------------------
# Hand-encoded because it must run inside the loop's selector, where neither asyncio nor a client
# library's own loop may be used. Packet layouts: MQTT 3.1.1 (OASIS 2014) §3.1 CONNECT,
# §3.8 SUBSCRIBE, §3.3 PUBLISH; remaining length encoding §2.2.3.

_CONNECT, _CONNACK, _PUBLISH, _SUBSCRIBE, _SUBACK = 0x10, 0x20, 0x30, 0x82, 0x90


def _utf8_string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + encode_varint(len(body)) + body


def _encode_connect(client_id: str) -> bytes:
    # Protocol name, level 4 (3.1.1), flags: clean session; keepalive 0 so that an idle barrier
    # connection is never dropped for inactivity.
    return _packet(_CONNECT, _utf8_string("MQTT") + bytes([4, 0x02]) + (0).to_bytes(2, "big")
                   + _utf8_string(client_id))


def _encode_subscribe(packet_id: int, topic_filter: str, qos: int = 0) -> bytes:
    return _packet(_SUBSCRIBE, packet_id.to_bytes(2, "big") + _utf8_string(topic_filter) + bytes([qos]))


def _encode_publish(topic: str, payload: bytes) -> bytes:
    return _packet(_PUBLISH, _utf8_string(topic) + payload)  # QoS 0: no packet identifier


class _FlushBarrier:
    """One private persistent connection to a broker, subscribed to its own random topic."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        token = secrets.token_hex(6)
        self.client_id = f"otabarrier-{token}"  # 23 characters: the 3.1.1 guaranteed maximum
        self.topic = f"otaharness/barrier/{token}"
        self.broker_is_local = False
        self._sock: socket.socket | None = None
        self._received = bytearray()
        self._sequence = 0

    def round_trip(self, deadline: float) -> None:
        """Publish to our own topic and wait for the broker to send it back."""
        self.ensure_open(deadline)
        self._sequence += 1
        # A sequence number in the payload, so that a late echo of an earlier, timed-out flush
        # cannot be taken for this one.
        expected = _encode_publish(self.topic, str(self._sequence).encode())
        self._send(expected, deadline)
        while self._next_packet(deadline) != expected:
            pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._received.clear()

    def ensure_open(self, deadline: float) -> None:
        if self._sock is not None:
            return
        self._sock = socket.create_connection((self.host, self.port), timeout=_timeout_left(deadline))
        self.broker_is_local = ipaddress.ip_address(self._sock.getpeername()[0]).is_loopback
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._send(_encode_connect(self.client_id), deadline)
        connack = self._next_packet(deadline)
        if connack[0] != _CONNACK or connack[-1] != 0:
            raise BrokerError(f"barrier connection refused: CONNACK {connack.hex()}")
        self._send(_encode_subscribe(1, self.topic), deadline)
        suback = self._next_packet(deadline)
        if suback[0] != _SUBACK or suback[-1] >= 0x80:
            raise BrokerError(f"barrier subscription refused: SUBACK {suback.hex()}")

    def _send(self, data: bytes, deadline: float) -> None:
        assert self._sock is not None
        self._sock.settimeout(_timeout_left(deadline))
        self._sock.sendall(data)

    def _next_packet(self, deadline: float) -> bytes:
        """The next whole packet the broker sent, as raw bytes."""
        while True:
            size = _complete_packet_size(self._received)
            if size is not None:
                packet = bytes(self._received[:size])
                del self._received[:size]
                return packet
            assert self._sock is not None
            self._sock.settimeout(_timeout_left(deadline))
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("broker closed the barrier connection")
            self._received += chunk


def _timeout_left(deadline: float) -> float:
    left = deadline - time.perf_counter()
    if left <= 0:
        raise TimeoutError("broker flush barrier timed out")
    return left


def _complete_packet_size(data: bytearray) -> int | None:
    """Size of the first packet in ``data`` if all of it has arrived, else None."""
    length, multiplier = 0, 1
    for position in range(1, min(len(data), 5)):
        length += (data[position] & 0x7F) * multiplier
        multiplier *= 128
        if not data[position] & 0x80:
            size = position + 1 + length
            return size if len(data) >= size else None
    if len(data) >= 5:
        raise BrokerError("malformed remaining length from broker")
    return None


# --- what the kernel still holds for the broker: sock_diag netlink (linux/inet_diag.h) -------------

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_INET_DIAG_REQ_BYTECODE, _INET_DIAG_INFO = 1, 2
_INET_DIAG_BC_S_GE, _INET_DIAG_BC_S_LE, _INET_DIAG_BC_D_GE, _INET_DIAG_BC_D_LE = 2, 3, 4, 5
_TCP_ESTABLISHED, _TCP_CLOSE_WAIT, _TCP_LISTEN = 1, 8, 10
_TCPI_NOTSENT_BYTES_OFFSET = 144  # struct tcp_info.tcpi_notsent_bytes (Linux >= 4.6)
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_INET_DIAG_REQUEST = struct.Struct("=BBBxI48x")  # family, protocol, extensions, states, (socket id)
_INET_DIAG_MESSAGE_QUEUES = struct.Struct("=4xIIIII")  # after family..retrans and the socket id
_RTATTR = struct.Struct("=HH")  # length, type


class TcpSocketState(NamedTuple):
    state: int
    local_port: int
    remote_port: int
    local_address: bytes
    remote_address: bytes
    unread: int  # receive queue; for a listening socket, connections not accepted yet
    unsent: int  # written by the application, not yet transmitted (unacknowledged if unknown)


def _port_bytecode(port: int) -> bytes:
    """inet_diag filter: local port == P or remote port == P.

    Ops are (code, yes, no) with a port op's operand in the following op's 'no' field; each
    jumps ahead by 'yes' or 'no' bytes; landing exactly on the end accepts, past it rejects. The
    kernel only accepts 'no' targets that lie on the chain of 'yes' jumps, hence "local > P"
    rather than "local <= P" for the second test.
    """
    return struct.pack(
        "=" + "BBHBBH" * 4,
        _INET_DIAG_BC_S_GE, 8, 16, 0, 0, port,      # local < P: go to the remote tests
        _INET_DIAG_BC_S_GE, 8, 24, 0, 0, port + 1,  # local == P: accept (jump to the end)
        _INET_DIAG_BC_D_GE, 8, 20, 0, 0, port,      # remote < P: reject
        _INET_DIAG_BC_D_LE, 8, 12, 0, 0, port,      # remote <= P: accept, else reject
    )


def tcp_sockets(port: int) -> list[TcpSocketState]:
    """IPv4 TCP sockets with ``port`` at either end, from the kernel (sock_diag)."""
    states = 1 << _TCP_ESTABLISHED | 1 << _TCP_CLOSE_WAIT | 1 << _TCP_LISTEN
    bytecode = _port_bytecode(port)
    body = (_INET_DIAG_REQUEST.pack(socket.AF_INET, socket.IPPROTO_TCP, 1 << (_INET_DIAG_INFO - 1), states)
            + _RTATTR.pack(_RTATTR.size + len(bytecode), _INET_DIAG_REQ_BYTECODE) + bytecode)
    request = _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY,
                                 _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + body
    found: list[TcpSocketState] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as netlink:
        netlink.send(request)
        while True:
            data = netlink.recv(1 << 17)
            offset = 0
            while offset + _NLMSG_HEADER.size <= len(data):
                length, kind, _flags, _sequence, _port_id = _NLMSG_HEADER.unpack_from(data, offset)
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR:
                    error = -struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)[0]
                    raise OSError(error, f"sock_diag: {os.strerror(error)}")
                found.append(_parse_inet_diag_message(data, offset + _NLMSG_HEADER.size, offset + length))
                offset += (length + 3) & ~3


def _parse_inet_diag_message(data: bytes, start: int, end: int) -> TcpSocketState:
    state = data[start + 1]
    local_port, remote_port = struct.unpack_from("!HH", data, start + 4)
    local_address, remote_address = data[start + 8:start + 12], data[start + 24:start + 28]
    _expires, unread, unacknowledged, _uid, _inode = _INET_DIAG_MESSAGE_QUEUES.unpack_from(data, start + 48)
    unsent = unacknowledged
    attribute = start + 72
    while attribute + _RTATTR.size <= end:
        attribute_length, attribute_type = _RTATTR.unpack_from(data, attribute)
        if attribute_length < _RTATTR.size:
            break
        notsent_at = attribute + _RTATTR.size + _TCPI_NOTSENT_BYTES_OFFSET
        if attribute_type == _INET_DIAG_INFO and notsent_at + 4 <= attribute + attribute_length:
            unsent = struct.unpack_from("=I", data, notsent_at)[0]
        attribute += (attribute_length + 3) & ~3
    return TcpSocketState(state, local_port, remote_port, local_address, remote_address, unread, unsent)


def broker_backlog(port: int) -> int:
    """Bytes in transit through the kernel for the broker on local ``port`` that no selector can
    see yet: not yet transmitted by a client, not yet read by the broker, or written by the broker
    but not yet transmitted to a recipient that has nothing else to read."""
    sockets = tcp_sockets(port)
    broker_side = [entry for entry in sockets if entry.local_port == port]
    client_side = [entry for entry in sockets if entry.remote_port == port]
    inbound = sum(entry.unread for entry in broker_side) + sum(entry.unsent for entry in client_side)
    readable = {(entry.local_port, entry.local_address) for entry in client_side if entry.unread}
    outbound = sum(entry.unsent for entry in broker_side if entry.state != _TCP_LISTEN
                   and (entry.remote_port, entry.remote_address) not in readable)
    return inbound + outbound


class _RemoteFlush:
    """flush() for a broker in another process: echo round trips plus a look at kernel queues.

    mosquitto 2.0 is single-threaded; each loop iteration takes one epoll snapshot and, for every
    socket in it (in no specified order), reads and handles ONE packet (``packet__read`` in
    ``loop_handle_reads_writes``), writing what that produces to the recipients' sockets at once.
    A client that sent a burst therefore leaves packets in the broker's receive queue for later
    iterations, and written packets can wait in the kernel on either side (Nagle, congestion
    window, delayed ACKs: observed for up to ~50 ms on loopback). A fixed number of echoes proves
    nothing about either. So: repeat echo round trips until two consecutive ones are each
    followed by the kernel reporting (sock_diag) no :func:`broker_backlog`. Why two: the first
    quiet look may catch the broker after it read a packet but before it wrote what that
    produces; our next echo is served by a later loop iteration (its packet arrived after that
    iteration's epoll snapshot), so the look after it sees those writes. When flush() returns,
    every message sent before it sits in its recipient's socket, where the caller's selector sees
    it (or behind data the recipient can already read).

    Without sock_diag (not Linux) or for a broker on another host: two round trips, best effort.
    """

    def __init__(self) -> None:
        self._barrier: _FlushBarrier | None = None
        self._failing = False
        self._kernel_queues_visible = True

    def flush(self, host: str, port: int | None, timeout: float) -> bool:
        if port is None:
            return False
        if self._barrier is None or (self._barrier.host, self._barrier.port) != (host, port):
            self.close()
            self._barrier = _FlushBarrier(host, port)
        try:
            self._drain(self._barrier, timeout)
        except (OSError, BrokerError) as exc:  # TimeoutError and ConnectionError are OSErrors
            self._barrier.close()  # reopened on the next flush
            if not self._failing:
                log.warning("broker flush barrier to %s:%s failed: %s", host, port, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def _drain(self, barrier: _FlushBarrier, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        barrier.ensure_open(deadline)
        quiet_looks = 0
        while quiet_looks < 2:
            barrier.round_trip(deadline)
            if self._backlog(barrier):
                quiet_looks = 0
                time.sleep(0.0002)  # let the broker and the kernel move on; don't spin
            else:
                quiet_looks += 1

    def _backlog(self, barrier: _FlushBarrier) -> int:
        if not (barrier.broker_is_local and self._kernel_queues_visible):
            return 0
        try:
            return broker_backlog(barrier.port)
        except OSError as exc:
            self._kernel_queues_visible = False
            log.warning("cannot read socket queues (sock_diag): %s; broker flush is best effort", exc)
            return 0

    def close(self) -> None:
        if self._barrier is not None:
            self._barrier.close()
            self._barrier = None


# --- mosquitto -----------------------------------------------------------------------------------


def find_mosquitto() -> str | None:
    """The mosquitto binary: on PATH, else in the sbin directories Debian installs it to."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def mosquitto_version(binary: str) -> str:
    """e.g. "2.0.11", read from the binary's help text (first line "mosquitto version 2.0.11")."""
    result = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=STOP_TIMEOUT,
                            check=False)
    match = re.search(r"mosquitto version (\S+)", result.stdout + result.stderr)
    return match.group(1) if match else "unknown"


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def mosquitto_acl() -> str:
    """Anonymous clients may use every topic but `$`-topics (a `#` rule does not match them,
    MQTT 3.1.1 §4.7.2); the service user may use all."""
    return "\n".join(["topic readwrite #", f"user {SERVICE_USERNAME}", "topic readwrite #",
                      "topic readwrite $aws/#", ""])


def mosquitto_config(port: int, *, password_file: Path | None = None,
                     acl_file: Path | None = None) -> str:
    access = ([f"password_file {password_file}", f"acl_file {acl_file}"]
              if password_file is not None and acl_file is not None else [])
    return "\n".join([
        f"listener {port} {LOCALHOST}",
        "allow_anonymous true",
        *access,
        "persistence false",
        # Run as whoever we are: as root mosquitto would otherwise drop to 'mosquitto'/'nobody',
        # who cannot write into our private temp dir. Has no effect when not root.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        # stderr, redirected to log_path by us: unbuffered, and it also catches startup errors.
        "log_dest stderr",
        "log_type all",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        # Thousands of clients, bursts of QoS 1: generous per-client limits.
        "max_inflight_messages 1000",
        "max_queued_messages 100000",
        "max_connections -1",
        # The largest keepalive a client may ask for (the default, stated on purpose): no lower
        # limit that would drop clients whose keepalive timers run on a virtual clock.
        "max_keepalive 65535",
        "set_tcp_nodelay true",
        "sys_interval 0",  # no periodic $SYS traffic
        "",
    ])


class MosquittoBroker(Broker):
    """A mosquitto process per scenario, in its own temp dir, on a free loopback port."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise BrokerUnavailable("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = found
        self.name = "mosquitto"
        self.port = None
        self.log_path = None
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._remote_flush = _RemoteFlush()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        # Blocking waits on another process belong in the executor, which the virtual clock counts
        # as busy (its timers must not run while we wait in real time).
        await asyncio.get_running_loop().run_in_executor(None, self._start_blocking)
        log.info("%s listening on %s (log %s)", self.name, self.url, self.log_path)

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._stop_blocking)

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        if self._process is None or self._process.poll() is not None:
            return False
        return self._remote_flush.flush(self.host, self.port, timeout)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _start_blocking(self) -> None:
        if self._process is not None:
            raise BrokerError(f"{self.name} is already running on {self.url}")
        self.name = f"mosquitto {mosquitto_version(self.binary)}"
        self._directory = Path(tempfile.mkdtemp(prefix="otaharness-mosquitto-"))
        self.log_path = self._directory / "mosquitto.log"
        self._write_access_files()
        try:
            # The free port can be taken between our probe and mosquitto's bind: try a few.
            for _attempt in range(3):
                if self._spawn_and_wait(free_port()):
                    return
            raise BrokerError(f"{self.name}: no free port after 3 attempts:\n{self.log_tail()}")
        except BaseException:
            self._stop_blocking()
            raise

    def _write_access_files(self) -> None:
        """The service user's password (hashed by mosquitto_passwd) and the ACL. Without
        mosquitto_passwd every client is anonymous and `$`-topics stay open (logged)."""
        assert self._directory is not None
        tool = shutil.which("mosquitto_passwd") or shutil.which(
            "mosquitto_passwd", path=str(Path(self.binary).parent) + ":/usr/bin:/usr/sbin")
        if tool is None:
            log.warning("mosquitto_passwd not found: anonymous clients can reach $aws/ topics")
            return
        password = remember(secrets.token_hex(24))  # hex: never taken for an option by a command line
        password_file = self._directory / "passwords"
        subprocess.run([tool, "-b", "-c", str(password_file), SERVICE_USERNAME, password],
                       check=True, capture_output=True, timeout=START_TIMEOUT)
        (self._directory / "acl").write_text(mosquitto_acl())
        self.service_credentials = (SERVICE_USERNAME, password)

    def _spawn_and_wait(self, port: int) -> bool:
        """Start mosquitto on ``port``; True once it accepts connections, False if the port was taken."""
        assert self._directory is not None and self.log_path is not None
        config_path = self._directory / "mosquitto.conf"
        access = {"password_file": self._directory / "passwords", "acl_file": self._directory / "acl"}
        config_path.write_text(mosquitto_config(port, **access) if self.service_credentials
                               else mosquitto_config(port))
        with open(self.log_path, "wb") as log_file:  # a retry starts a fresh log
            self._process = _process_lifetime_spawner().submit(
                subprocess.Popen, _ends_with_this_process([self.binary, "-c", str(config_path)]),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True).result()  # a Ctrl-C in the terminal is ours to handle, not its
        _raise_open_files_limit(self._process.pid)
        self.port = port
        deadline = time.perf_counter() + START_TIMEOUT
        while time.perf_counter() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self._process = None
                self.port = None
                if "Address already in use" in tail:
                    return False
                raise BrokerError(f"{self.name} exited at start:\n{tail}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, port), timeout=0.5):
                return True
            time.sleep(0.01)
        raise BrokerError(f"{self.name} did not accept connections within {START_TIMEOUT:.0f} s:\n"
                          f"{self.log_tail()}")

    def _stop_blocking(self) -> None:
        self._remote_flush.close()
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        self.port = None
        self.service_credentials = None


def _raise_open_files_limit(pid: int) -> None:
    """Let the broker hold as many sockets as the hard limit allows (thousands of clients)."""
    with contextlib.suppress(OSError, AttributeError):  # prlimit is Linux-only
        _soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))


# --- amqtt (in-process fallback) ---------------------------------------------------------------------

# amqtt >= 0.11.2 refuses client PUBLISH to any topic starting with '$' (so no $aws/... jobs topics).
AMQTT_LAST_GOOD_VERSION = (0, 11, 1)


class AmqttBroker(Broker):
    """amqtt in our own event loop: anonymous, topic checks off, MQTT 3.1.1 clients only."""

    def __init__(self) -> None:
        version = importlib.metadata.version("amqtt")
        self.name = f"amqtt {version}"
        self.port = None
        self.log_path = None  # it logs through Python logging ("amqtt.*" loggers)
        self._broker: Any = None
        numeric = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
        if numeric > AMQTT_LAST_GOOD_VERSION:
            log.warning("%s refuses client publishes to $-topics such as $aws/...; "
                        "the project pins amqtt==0.11.1", self.name)

    async def start(self) -> None:
        # Imported here: only the fallback needs it, and it must be constructed in a running loop.
        from amqtt.broker import Broker as AmqttServer  # type: ignore[import-untyped]

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{LOCALHOST}:0"}},
            "sys_interval": 0,  # no periodic timer on the (virtual) loop
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        self._broker = AmqttServer(config)
        await self._broker.start()
        # amqtt 0.11.1 has no public accessor for the bound port of a listener.
        server = self._broker._servers["default"].instance
        self.port = server.sockets[0].getsockname()[1]
        log.info("%s serving in-process on %s", self.name, self.url)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
        self.port = None

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        # It runs inside our own loop, whose idleness the clock already sees.
        return True


# --- a user's broker ----------------------------------------------------------------------------------


class ExternalBroker(Broker):
    """A broker someone else runs (``mqtt://host:port``); start/stop leave it alone."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise BrokerPreferenceError(f"expected mqtt://host[:port], got {url!r}")
        self.name = f"external broker {parts.hostname}:{parts.port or MQTT_DEFAULT_PORT}"
        self.host = parts.hostname
        self.port = parts.port or MQTT_DEFAULT_PORT
        self.log_path = None
        self._remote_flush = _RemoteFlush()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._remote_flush.close()

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        # Best effort: the argument in _RemoteFlush is mosquitto's; other brokers may differ.
        return self._remote_flush.flush(self.host, self.port, timeout)


def choose_broker(preference: str = "auto", *, ci: bool) -> Broker:
    """auto: mosquitto if installed, else the amqtt fallback (an error under CI instead);
    "mosquitto" / "amqtt" force one; an mqtt://host:port URL uses that broker as it is."""
    if preference.startswith("mqtt://"):
        return ExternalBroker(preference)
    if preference == "mosquitto":
        return MosquittoBroker()
    if preference == "amqtt":
        return AmqttBroker()
    if preference != "auto":
        raise BrokerPreferenceError(
            f"broker preference {preference!r}: expected auto, mosquitto, amqtt or mqtt://host:port")
    binary = find_mosquitto()
    if binary is not None:
        return MosquittoBroker(binary)
    if ci:
        raise BrokerUnavailable("mosquitto is required under CI (apt-get install mosquitto)")
    log.warning("mosquitto not found: the in-process amqtt fallback serves MQTT "
                "(slower, MQTT 3.1.1 only)")
    return AmqttBroker()
