"""moto's AWS control plane (S3, IoT, iot-data, cognito-idp) served over HTTP on loopback.

In-process `ThreadedMotoServer`, so the harness shares moto's backend objects (moto_gaps, the
jobs service and the shadow bridge act on them directly).

Slow clients: werkzeug reads each connection in its own thread with no deadline, so a client
sending its headers byte by byte (or never finishing its TLS handshake) holds a thread for ever.
The handler here gives a new connection ``handshake + headers_ceiling`` seconds for its handshake
and first request's headers, a kept-alive connection ``headers_ceiling`` from the first byte of
each next request (idle time between requests is not slowness), and each read of a body ``body``
seconds (the limits of :mod:`otaharness.servers.read_deadlines`). Real time only: these threads
are moto's, outside the scenario's loop; a scenario's virtual jumps cannot fire them, and its
devices' bytes held by a link fault wait in virtual time, which costs little real time. A
connection past its deadline is shut down from the server's one deadline thread (the handler's
thread is blocked in a read, which the shutdown ends); no 408 is written, since a TLS socket cannot
be written from a second thread while the first reads it. One thread for every deadline, not a
``threading.Timer`` each: a timer was a thread started and then woken to end for every request,
four hand-overs of the GIL each, among as many threads as a fleet has downloads at once (serve
aws-iot, 1,500 trackers: waits for the GIL were 12 % of the process's CPU, 3.5 % at 300).

Keep-alive: werkzeug closes every connection after its response, because it cannot drain an
unread request body without eating the next request. A request without a body (a device's S3
range GET) has nothing to drain, so its connection is kept open for the next request, as S3 does:
a tracker's 2 KiB ranges then share one TLS session instead of a handshake each. A request with
a body still ends its connection as werkzeug does.

Chunked bodies: werkzeug's reader (``DechunkedInput``) takes the end of the connection inside a
chunk for more bytes to come, so a request announcing a chunk of 2**72 bytes and closing made
its thread fill memory without end (hundreds of MiB a second), and a smaller one handed moto an
object of bytes nobody sent. The handler reads a chunked body whole before moto runs (moto reads
every body whole anyway), through werkzeug's reader over one that refuses a short read and a
chunk header line longer than ``MAX_CHUNK_HEADER``; a body that ends early or is malformed is
answered 400 and the connection closed, and moto never sees it."""

from __future__ import annotations

import heapq
import io
import itertools
import logging
import socket
import ssl
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iot.models import IoTBackend, iot_backends
from moto.iotdata.models import IoTDataPlaneBackend, iotdata_backends
from moto.moto_api._internal.models import moto_api_backend
from moto.server import MotoRequestHandler, ThreadedMotoServer
from werkzeug.http import parse_set_header
from werkzeug.serving import DechunkedInput

from otaharness.runtime.broker import broker_backlog
from otaharness.servers.http_service import LINGERING_CLOSE_SECONDS
from otaharness.servers.read_deadlines import DEFAULT_READ_LIMITS, ReadLimits

log = logging.getLogger(__name__)

ACCOUNT_ID = DEFAULT_ACCOUNT_ID
REGION = "us-east-1"
# moto accepts any credentials; botocore only needs some to sign.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


LISTEN_BACKLOG = 4096
QUIET_TIMEOUT = 10.0  # real seconds a quiet probe waits for moto to finish what it is doing


class _RequestCounter:
    """Requests moto's threads have read and not yet answered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.connections: dict[threading.Thread, socket.socket] = {}  # open ones, by their thread

    def opened(self, connection: socket.socket) -> None:
        with self._lock:
            self.connections[threading.current_thread()] = connection

    def closed(self) -> None:
        with self._lock:
            self.connections.pop(threading.current_thread(), None)

    def close_all(self, timeout: float) -> None:
        """End every open connection (a kept-alive one waits for its next request) and wait
        for their threads, so that a stopped server leaves no thread behind."""
        with self._lock:
            open_now = dict(self.connections)
        for connection in open_now.values():
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone
        deadline = time.monotonic() + timeout
        for thread in open_now:
            thread.join(max(0.0, deadline - time.monotonic()))

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def exit(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _NothingMore:
    """What werkzeug's drain after a response reads from a kept-alive connection: nothing, so
    the next request stays in the socket for the next ``handle_one_request``."""

    @staticmethod
    def read(_size: int = -1) -> bytes:
        return b""


MAX_CHUNK_HEADER = 4096  # bytes of a chunk's size line with its extensions


class _WholeChunks:
    """The connection's reader as ``DechunkedInput`` reads it, except that the connection ending
    inside a chunk, or a chunk header line without its end, is an error (OSError), not more
    bytes to come."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    def read(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) < size:
            raise OSError(f"the connection ended {size - len(data)} bytes before the end of a chunk")
        return data

    def readline(self, size: int = -1) -> bytes:
        # werkzeug 3.1.9 asks for at most 100 bytes of a chunk header and 2 of its end, 3.1.8
        # for a whole line: either way no more than MAX_CHUNK_HEADER, and a short line without
        # its end is the connection's end (a long one is left to werkzeug's own check).
        limit = MAX_CHUNK_HEADER + 1 if size < 0 else min(size, MAX_CHUNK_HEADER + 1)
        line = self._reader.readline(limit)
        if not line.endswith(b"\n"):
            if len(line) < limit:
                raise OSError("the connection ended inside a chunk header")
            if size < 0:
                raise OSError(f"a chunk header longer than {MAX_CHUNK_HEADER} bytes")
        return line


class _Deadlines:
    """The deadlines of every connection of one server, kept by one thread: each connection's
    next deadline is an entry in a heap by time. The deadlines have one of two lengths and are
    set in time order, so a new one is seldom the earliest and wakes nobody. A cancelled one
    stays in the heap, disarmed, until the thread next wakes, which drops it with every disarmed
    entry ahead of the first armed one: the thread wakes about once per deadline length, not
    once per request."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, _ConnectionDeadline]] = []
        self._sequence = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="moto connection deadlines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()
        self._thread.join()

    def arm(self, deadline: _ConnectionDeadline, seconds: float, what: str) -> None:
        with self._condition:
            entry = (time.monotonic() + seconds, next(self._sequence), deadline)
            deadline.armed = (entry[1], what, seconds)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._condition.notify()

    def disarm(self, deadline: _ConnectionDeadline) -> None:
        with self._condition:
            deadline.armed = None

    def _run(self) -> None:
        with self._condition:
            while not self._stopped:
                now = time.monotonic()
                due = []
                while self._heap:
                    when, sequence, deadline = self._heap[0]
                    armed = deadline.armed is not None and deadline.armed[0] == sequence
                    if armed and when > now:
                        break  # the earliest deadline still armed: sleep until it
                    heapq.heappop(self._heap)
                    if armed:
                        due.append((deadline, deadline.armed))
                        deadline.armed = None
                if due:
                    self._condition.release()  # a cut needs no lock; handlers may arm meanwhile
                    try:
                        for deadline, (_, what, seconds) in due:
                            deadline.cut(what, seconds)
                    finally:
                        self._condition.acquire()
                    continue
                self._condition.wait(self._heap[0][0] - now if self._heap else None)


class _ConnectionDeadline:
    """Shuts a connection down when its time is up, unless cancelled first (one at a time)."""

    def __init__(self, deadlines: _Deadlines, connection: socket.socket, peer: str) -> None:
        self._deadlines = deadlines
        self._connection = connection
        self._peer = peer
        self.armed: tuple[int, str, float] | None = None  # (entry, what, seconds), under the lock

    def start(self, seconds: float, what: str) -> None:
        self._deadlines.arm(self, seconds, what)  # replaces the one armed before

    def cancel(self) -> None:
        if self.armed is not None:  # read without the lock: only this connection's thread arms
            self._deadlines.disarm(self)

    def cut(self, what: str, seconds: float) -> None:
        log.info("closing the connection from %s: its %s did not arrive within %g s", self._peer, what, seconds)
        try:
            self._connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone


def _counting_handler(counter: _RequestCounter, limits: ReadLimits, deadlines: _Deadlines) -> type:
    class CountingRequestHandler(MotoRequestHandler):
        # werkzeug writes a response's headers and its body apart: with Nagle's algorithm the
        # body of a kept-alive connection's response waited for the client's delayed ACK of the
        # headers, 40 ms on Linux, for every range GET after a connection's first.
        disable_nagle_algorithm = True

        # Counted from when parse_request() has read the headers until the response is written:
        # then the request is in moto's hands, out of the kernel's. Not earlier: a request whose
        # bytes a throttled or delayed link still holds leaves moto waiting, not working, and
        # only the passing of (virtual) time releases them. A request body held back that way
        # still counts; the probe's timeout ends that wait.
        def parse_request(self) -> bool:
            parsed = super().parse_request()  # reads the headers (the request line is in)
            self._deadline.cancel()  # the headers are in
            self.connection.settimeout(limits.body)  # each read of the body, if one comes
            counter.enter()
            self._counted = True
            return parsed

        def handle(self) -> None:
            counter.opened(self.connection)
            self._deadline = _ConnectionDeadline(deadlines, self.connection, self.client_address[0])
            self._deadline.start(limits.handshake + limits.headers_ceiling, "TLS handshake and first request")
            self._served_one = False
            try:
                super().handle()
            except ssl.SSLError as error:  # a client that refused our certificate, or spoke no TLS
                log.info("TLS with %s failed: %s", self.client_address[0], error)
            finally:
                self._deadline.cancel()
                counter.closed()

        def make_environ(self) -> dict[str, Any]:
            environ = super().make_environ()  # its wsgi.input keeps the connection's reader
            if self._chunked_body is not None:  # read whole already: moto gets it as it is
                environ["wsgi.input"] = io.BytesIO(self._chunked_body)
                environ["CONTENT_LENGTH"] = str(len(self._chunked_body))
                environ.pop("wsgi.input_terminated", None)
                environ.pop("HTTP_TRANSFER_ENCODING")  # else werkzeug ignores the length
            self._keep_alive = self._without_body() and not self.close_connection
            if self._keep_alive:
                self._request_reader, self.rfile = self.rfile, _NothingMore()
            return environ

        def _without_body(self) -> bool:
            length = self.headers.get("Content-Length", "").strip()
            return (self.request_version == "HTTP/1.1" and length in ("", "0")
                    and "Transfer-Encoding" not in self.headers)

        def send_header(self, keyword: str, value: str) -> None:
            if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
                return  # werkzeug's "always close": not for a request with nothing left to read
            super().send_header(keyword, value)

        def run_wsgi(self) -> None:
            self._chunked_body = None
            if "chunked" in parse_set_header(self.headers.get("Transfer-Encoding")):
                try:
                    self._chunked_body = DechunkedInput(_WholeChunks(self.rfile)).read()
                except (OSError, ValueError) as error:
                    log.info("refused a chunked body from %s: %s", self.client_address[0], error)
                    self._refuse(400, f"malformed chunked body: {error}")
                    return
            try:
                super().run_wsgi()
            finally:
                if self._keep_alive:
                    self.rfile = self._request_reader

        def log_error(self, format: str, *args: Any) -> None:
            # http.server says here what it refused before werkzeug saw a request (a request
            # line or header past its limits, an HTTP version it does not speak: 414, 431, 505)
            # and a read that timed out: the client's doing, which werkzeug logged as ERROR.
            log.info("refused a malformed request from %s: %s", self.client_address[0],
                     format % args if args else format)

        def _refuse(self, status: int, reason: str) -> None:
            """A plain answer that closes the connection (not send_error: werkzeug logs that
            as an ERROR of the server, for what is the client's fault)."""
            body = (reason + "\n").encode()
            self.close_connection = True
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            # Lingering close, as http_service's: what the client still sends is read and dropped
            # for a moment, else closing with it unread resets the connection and the client
            # may lose the answer.
            until = time.monotonic() + LINGERING_CLOSE_SECONDS
            try:
                self.connection.shutdown(socket.SHUT_WR)
                while (left := until - time.monotonic()) > 0:
                    self.connection.settimeout(left)
                    if not self.rfile.read1(65536):
                        break
            except OSError:
                pass  # the client is gone, or took its time: closing now

        def handle_one_request(self) -> None:
            self._counted = False
            self._keep_alive = False
            if self._served_one:
                try:
                    arrived = self.rfile.peek(1)  # idle until the next request's first byte
                except OSError:
                    arrived = b""
                if arrived:
                    self._deadline.start(limits.headers_ceiling, "request headers")
            try:
                super().handle_one_request()
            finally:
                self._served_one = True
                self._deadline.cancel()
                try:
                    self.connection.settimeout(None)
                except OSError:
                    pass
                if self._counted:
                    counter.exit()

    return CountingRequestHandler


def _remember_backends_by_host(app: Any) -> None:
    """moto 5.2.5's dispatcher finds the backend for a request's host under its one lock by
    listing moto's package folder (os.listdir plus an isdir per entry) and then trying its URL
    patterns in turn, on every request: at a fleet's 2 KiB range GETs this was moto's largest
    cost, serialised across its threads, and the listing needs a descriptor (a process at its
    limit failed requests with EMFILE). The answer depends only on the host and on moto's
    installed modules and patterns, fixed for the process, so each host's is remembered."""
    find = app.get_backend_for_host
    found: dict[str | None, Any] = {}

    def get_backend_for_host(host: str | None) -> Any:
        if host not in found:
            found[host] = find(host)
        return found[host]

    app.get_backend_for_host = get_backend_for_host


class MotoServer:
    """``tls_context``: serve HTTPS with it (the handshake happens in the request's own thread,
    not in the accepting one, so a slow or faulted client holds up nobody else)."""

    def __init__(self, host: str = "127.0.0.1", region: str = REGION,
                 tls_context: ssl.SSLContext | None = None,
                 read_limits: ReadLimits = DEFAULT_READ_LIMITS) -> None:
        self.host = host
        self.read_limits = read_limits
        self.region = region
        self.tls_context = tls_context
        self._server: ThreadedMotoServer | None = None
        self._url: str | None = None
        self._session = boto3.session.Session()
        self._session_lock = threading.Lock()

    def start(self) -> str:
        # One line per request from werkzeug would drown the scenario logs; errors stay visible.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        self._server.start()
        self._requests = _RequestCounter()
        self._deadlines = _Deadlines()
        self._deadlines.start()
        # moto 5.2.5 builds its werkzeug server in start(); nothing has connected yet.
        self._server._server.RequestHandlerClass = _counting_handler(self._requests, self.read_limits,
                                                                     self._deadlines)
        # werkzeug listens with a backlog of 128: a fleet's simultaneous range GETs overflow it,
        # and a dropped SYN is retried a real second later, long after virtual time moved on.
        # Linux takes a second listen() as the new backlog.
        self._server._server.socket.listen(LISTEN_BACKLOG)
        if self.tls_context is not None:
            # werkzeug's own ssl_context would shake hands inside accept(), in its only
            # accepting thread: wrap the listening socket so each connection does it lazily.
            werkzeug_server = self._server._server
            werkzeug_server.socket = self.tls_context.wrap_socket(
                werkzeug_server.socket, server_side=True, do_handshake_on_connect=False)
        _remember_backends_by_host(self._server._server.app)
        host, port = self._server.get_host_and_port()
        self._url = f"{'https' if self.tls_context is not None else 'http'}://{host}:{port}"
        return self._url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._requests.close_all(QUIET_TIMEOUT)  # kept-alive connections end with the server
            self._deadlines.stop()
            self._server = None
            self._url = None

    def wait_quiet(self, timeout: float = QUIET_TIMEOUT) -> bool:
        """Quiet probe for the virtual clock: block until moto handles no request and the kernel
        holds no byte for or from it (a request not yet read, a response not yet sent, a
        connection not yet accepted). Two quiet looks in a row, so that a request caught between
        the kernel and the end of parse_request() on the first look is seen on the second."""
        if self._server is None:
            return True
        port = self._server.get_host_and_port()[1]
        deadline = time.perf_counter() + timeout
        quiet_looks = 0
        while quiet_looks < 2:
            if self._requests.in_flight == 0 and broker_backlog(port) == 0:
                quiet_looks += 1
                if quiet_looks == 1:
                    time.sleep(0.0002)
            else:
                quiet_looks = 0
                if time.perf_counter() > deadline:
                    log.warning("moto did not become quiet within %.0f s", timeout)
                    return False
                time.sleep(0.0002)
        return True

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("moto server is not running")
        return self._url

    @staticmethod
    def reset() -> None:
        """Wipe every moto backend (what POST /moto-api/reset does), so no state leaks between
        scenarios."""
        moto_api_backend.reset()

    def iot_backend(self) -> IoTBackend:
        return iot_backends[ACCOUNT_ID][self.region]

    def iotdata_backend(self) -> IoTDataPlaneBackend:
        return iotdata_backends[ACCOUNT_ID][self.region]

    def client(self, service_name: str, endpoint_url: str | None = None, *,
               ca_file: str | None = None, client_certificate: tuple[str, str] | None = None) -> Any:
        """A boto3 client for this server (or another loopback endpoint, e.g. iot-jobs-data),
        verifying its certificate against ``ca_file``. No retries: a loopback server that fails
        should fail the step at once."""
        with self._session_lock:  # boto3 sessions are not thread-safe
            return self._session.client(
                service_name,
                endpoint_url=endpoint_url or self.url,
                region_name=self.region,
                verify=ca_file if ca_file is not None else True,
                config=Config(retries={"total_max_attempts": 1}, client_cert=client_certificate),
                **DUMMY_CREDENTIALS,
            )
