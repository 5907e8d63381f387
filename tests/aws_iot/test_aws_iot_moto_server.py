"""The moto control plane on loopback: every service the FOTA flow uses, and reset."""

from __future__ import annotations

import urllib.request

from otaharness.servers.aws_iot.moto_server import MotoServer


def test_serves_s3_iot_and_cognito_on_a_loopback_port(moto_server: MotoServer) -> None:
    assert moto_server.url.startswith("http://127.0.0.1:") and not moto_server.url.endswith(":0")
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket="fota-bucket")
    s3.put_object(Bucket="fota-bucket", Key="job1", Body=b"SOME HEX DATA", ContentType="text/x-hex")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "fota-bucket", "Key": "job1"})
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=5-7"})) as response:
        assert response.status == 206 and response.read() == b"HEX"

    pool = moto_server.client("cognito-idp").create_user_pool(PoolName="users")["UserPool"]
    assert pool["Name"] == "users"
    thing = moto_server.client("iot").create_thing(thingName="fota")
    assert thing["thingArn"] == "arn:aws:iot:us-east-1:123456789012:thing/fota"
    assert moto_server.iot_backend().things[thing["thingArn"]].thing_name == "fota"  # same objects

    moto_server.reset()
    assert s3.list_buckets()["Buckets"] == []
    assert moto_server.client("iot").list_things()["things"] == []
    assert moto_server.client("cognito-idp").list_user_pools(MaxResults=10)["UserPools"] == []


def test_slow_clients_are_cut_and_idle_keep_alive_is_not() -> None:
    """Headers sent byte by byte, a half-made TLS handshake's stand-in (silence on a new
    connection) and a stalled body are cut at their deadlines; a kept-alive connection idle
    between requests longer than a deadline is not."""
    import http.client
    import socket
    import time

    from otaharness.servers.read_deadlines import ReadLimits

    quick = ReadLimits(headers=0.5, headers_ceiling=1.0, body=1.0, handshake=0.5)
    server = MotoServer(read_limits=quick)
    url = server.start()
    host, port = url.removeprefix("http://").split(":")
    try:
        def closed_within(sock: socket.socket, trickle: bytes, seconds: float) -> bool:
            sock.settimeout(0.1)
            deadline = time.monotonic() + seconds
            for byte in trickle:
                try:
                    sock.sendall(bytes([byte]))
                    if sock.recv(1) == b"":
                        return True
                except TimeoutError:
                    pass
                except OSError:
                    return True
                if time.monotonic() > deadline:
                    return False
            return False

        slow = socket.create_connection((host, int(port)))
        assert closed_within(slow, b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 1000, 10)
        # the request line at once, then headers trickling (the request line alone is no proof)
        trickling = socket.create_connection((host, int(port)))
        trickling.sendall(b"GET / HTTP/1.1\r\n")
        assert closed_within(trickling, b"X-Slow: " + b"a" * 1000, 10)
        silent = socket.create_connection((host, int(port)))
        silent.settimeout(10)
        assert silent.recv(1) == b""  # cut after handshake + headers_ceiling
        stalled = socket.create_connection((host, int(port)))
        stalled.sendall(b"PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        stalled.settimeout(10)
        started = time.monotonic()
        while stalled.recv(4096):
            pass
        assert time.monotonic() - started < 10

        kept = http.client.HTTPConnection(host, int(port), timeout=10)
        for _ in range(2):
            kept.request("GET", "/moto-api/data.json")
            assert kept.getresponse().read()
            time.sleep(2.0)  # idle longer than every deadline: not slowness
    finally:
        server.stop()


def test_a_chunked_body_that_is_malformed_or_ends_inside_a_chunk_is_a_400_and_stores_nothing() -> None:
    """werkzeug's chunked reader took the end of the connection inside a chunk for bytes to
    come: one request naming a chunk of 2**72 bytes and then closing grew `serve aws-iot` by
    hundreds of MiB a second without end; a smaller chunk stored an object of bytes nobody
    sent. A chunk header that is no hex number was a 500 with a traceback."""
    import socket

    server = MotoServer()
    url = server.start()
    host, port = url.removeprefix("http://").split(":")
    s3 = server.client("s3")
    s3.create_bucket(Bucket="chunks")

    def status_of(request: bytes) -> int:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            try:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)  # the client's end: nothing more will come
            except OSError:
                pass  # the server answered and half-closed before the request's end
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1])

    def put(key: str, chunks: bytes) -> bytes:
        return (f"PUT /chunks/{key} HTTP/1.1\r\nHost: {host}:{port}\r\nTransfer-Encoding: chunked\r\n\r\n"
                .encode() + chunks)

    try:
        assert status_of(put("cut", b"1000000\r\nonly this")) == 400  # 16 MiB announced
        assert status_of(put("hex", b"zz\r\nab\r\n0\r\n\r\n")) == 400
        assert status_of(put("line", b"f" * 70_000)) == 400  # a chunk header with no end
        assert [item["Key"] for item in s3.list_objects_v2(Bucket="chunks").get("Contents", [])] == []
        assert status_of(put("whole", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")) == 200
        assert s3.get_object(Bucket="chunks", Key="whole")["Body"].read() == b"hello world"
    finally:
        server.stop()


def test_a_bucket_post_without_its_key_field_is_a_400_not_a_500(harness) -> None:
    """moto answered a browser-based POST upload without its ``key`` form field with a
    KeyError (500 and a traceback); S3 answers 400 InvalidArgument. A POST with the field
    still stores its object."""
    import urllib.error
    import urllib.request

    s3 = harness.moto.client("s3")
    s3.create_bucket(Bucket="posts")
    for body, content_type in ((b"{}", "application/json"), (b"x=1", "application/x-www-form-urlencoded")):
        request = urllib.request.Request(f"{harness.moto.url}/posts", data=body, method="POST",
                                         headers={"Content-Type": content_type})
        try:
            urllib.request.urlopen(request, timeout=30)
            raise AssertionError("the POST was accepted")
        except urllib.error.HTTPError as error:
            assert error.code == 400 and b"<Code>InvalidArgument</Code>" in error.read()
    assert s3.list_objects_v2(Bucket="posts").get("KeyCount") == 0
    form = b"key=hello.txt&file=hi"
    request = urllib.request.Request(f"{harness.moto.url}/posts", data=form, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 204)
    assert [item["Key"] for item in s3.list_objects_v2(Bucket="posts")["Contents"]] == ["hello.txt"]


def test_responses_are_not_held_for_the_clients_delayed_ack(moto_server: MotoServer) -> None:
    """werkzeug writes a response's headers and body apart; with Nagle's algorithm on, the body
    of each range GET after a kept-alive connection's first waited for the client's delayed ACK
    (40 ms on Linux). The connection moto answers on sends at once."""
    import http.client
    import socket

    host, port = moto_server.url.removeprefix("http://").split(":")
    kept = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        kept.request("GET", "/moto-api/data.json")
        assert kept.getresponse().read()
        served_on = list(moto_server._requests.connections.values())
        assert served_on, "the kept-alive connection is open on the server"
        assert all(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for connection in served_on)
    finally:
        kept.close()


def test_requests_refused_before_moto_sees_them_are_one_info_line_not_an_error(moto_server: MotoServer,
                                                                                caplog) -> None:
    """A request line or headers past http.server's limits, or an HTTP version it does not speak:
    answered 414 / 431 / 505, logged as the client's doing (INFO), not the server's (ERROR)."""
    import logging
    import socket

    host, port = moto_server.url.removeprefix("http://").split(":")
    requests = {b"414": b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
                b"431": b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
                b"505": b"GET / HTTP/3.0\r\n\r\n"}
    with caplog.at_level(logging.INFO):
        for status, request in requests.items():
            with socket.create_connection((host, int(port)), timeout=10) as client:
                client.sendall(request)
                answer = b""
                while chunk := client.recv(4096):
                    answer += chunk
            assert status in answer.split(b"\r\n", 1)[0] or b"Error code: " + status in answer
    refused = [record for record in caplog.records if "refused a malformed request" in record.getMessage()]
    assert len(refused) == 3 and {record.levelno for record in refused} == {logging.INFO}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
