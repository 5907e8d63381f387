"""The station emulator against the servers (virtual time) and against raw peers: byte-exact
requests, URI/credential rotation, LNS rejection, credential-set fallback, HTTP framing."""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import aiohttp
from basics_station_world import World, run_world

from otaharness.emulators.basics_station import BasicsStation, StationHome, StationSettings
from otaharness.protocols.basics_station import NO_UPDATE, Credentials, UpdateInfoRequest, key_crc
from otaharness.runtime.clock import RealClock, VirtualClock, VirtualEventLoop

STATION = 0x0016C001FF10A235
DAY = 86400.0


def der_sequence(size: int, fill: int) -> bytes:
    """A DER SEQUENCE of ``size`` content bytes in the 0x82 long form the station reads."""
    return b"\x30\x82" + size.to_bytes(2, "big") + bytes([fill]) * size


def test_cups_and_tc_uri_and_credential_rotation_byte_exact(tmp_path: Path) -> None:
    cups_credentials = Credentials(trust=der_sequence(300, 1), auth_token=b"Authorization: Bearer cups-1\r\n")
    tc_credentials = Credentials(trust=der_sequence(400, 2), certificate=der_sequence(280, 3), key=der_sequence(260, 4))
    cups_blob, tc_blob = cups_credentials.encode(), tc_credentials.encode()

    async def main(world: World):
        new_cups, new_tc = world.cups_url + "/cups-v2", world.lns_url + "/tc-v2"
        station = world.station(STATION, register=False)
        world.register(STATION, cups_uri=new_cups, tc_uri=new_tc, cups_credentials=cups_blob,
                       tc_credentials=tc_blob)
        async with aiohttp.ClientSession() as http:
            async with http.post(world.cups_url + "/update-info", data=station.update_info_request().encode()) as r:
                first_reply = await r.read()
        await station.start()
        await world.until(lambda: station.tc_connected and station.count("cups-done") == 2)
        return station, first_reply, new_cups, new_tc, world.server.cups.requests, world.cups_url

    station, reply, new_cups, new_tc, requests, old_cups = run_world(tmp_path, main)
    expected = b"".join((
        bytes([len(new_cups)]), new_cups.encode(), bytes([len(new_tc)]), new_tc.encode(),
        struct.pack("<H", len(cups_blob)), cups_blob, struct.pack("<H", len(tc_blob)), tc_blob,
        bytes(4), bytes(4)))
    assert reply == expected
    files = {name: (station.home.path / name).read_bytes() for name in (
        "cups.uri", "tc.uri", "cups.trust", "cups.crt", "cups.key", "tc.trust", "tc.crt", "tc.key", "cups-bak.uri")}
    assert files == {
        "cups.uri": new_cups.encode(), "tc.uri": new_tc.encode(),
        "cups.trust": cups_credentials.trust, "cups.crt": b"", "cups.key": b"Authorization: Bearer cups-1\r\n",
        "tc.trust": tc_credentials.trust, "tc.crt": tc_credentials.certificate, "tc.key": tc_credentials.key,
        "cups-bak.uri": (old_cups + "\n").encode(),  # REG as it was, copied before the first change
    }
    # The new CUPS URI is called at once; it reports CRCs equal to crc32 of the blobs and gets 14 zeros.
    after = UpdateInfoRequest.decode(requests[-1])
    assert (after.cups_uri, after.tc_uri) == (new_cups, new_tc)
    assert (after.cups_cred_crc, after.tc_cred_crc) == (zlib.crc32(cups_blob), zlib.crc32(tc_blob))
    done = [event for event in station.events if event.kind == "cups-done"]
    assert [event.detail for event in done] == [
        "cups uri, cups credentials, tc uri, tc credentials", "no updates"]
    # "CUPS provided CUPS updates - reconnecting in 1m": cups_ondone keeps ahead = CUPS_RESYNC_INTV.
    assert done[1].at - done[0].at == 60.0


def test_lns_rejection_sends_the_station_back_to_cups(tmp_path: Path) -> None:
    async def main(world: World):
        station = world.station(STATION)
        await station.start()
        await world.until(lambda: station.tc_connected)
        rejected_at = world.clock.monotonic()
        reject_url = f"{world.cups_url}/admin/stations/{STATION:016X}/reject"
        async with world.admin_session() as http:
            async with http.put(reject_url, json={"reason": "under maintenance"}) as response:
                assert response.status == 200
            await world.until(lambda: station.count("cups-done") == 2, timeout=600)
            asked_again_after = world.clock.monotonic() - rejected_at
            async with http.delete(reject_url) as response:
                assert (await response.json())["lnsRejectReason"] is None
        await world.until(lambda: station.tc_connected, timeout=600)
        return station, asked_again_after

    station, after = run_world(tmp_path, main)
    kinds = [event.kind for event in station.events]
    closed = kinds.index("tc-closed")
    assert kinds.index("tc-rejected", closed) < kinds.index("tc-stopped", closed) < len(kinds) - 1
    assert station.last("tc-rejected").detail == "under maintenance"
    # 1 s muxs backoff, 10 s discovery backoff, then CUPS after the 60 s resync interval.
    assert after == 71.0
    assert station.count("tc-connected") == 2


def test_credential_set_fallback_reg_bak_boot(tmp_path: Path) -> None:
    async def main(world: World):
        station = world.station(STATION, cups_uri="http://127.0.0.1:1")  # nobody listens there
        (station.home.path / "cups-boot.uri").write_text(world.cups_url)
        await station.start()
        await world.until(lambda: station.home.uri("cups") == world.cups_url and station.tc_connected, timeout=DAY)
        elapsed = world.clock.monotonic()
        # The CUPS change brings the next session (with REG) 1 minute later, which backs REG up.
        await world.until(lambda: station.count("cups-done") == 2, timeout=DAY)
        return station, elapsed, world.cups_url

    station, elapsed, cups_url = run_world(tmp_path, main)
    failures = [event.detail.split(":")[0] for event in station.events if event.kind == "cups-failed"]
    # More than 6 failures on REG, then BAK (no URI: never backed up), then BOOT works.
    assert failures == ["failed"] * 8 + ["no-uri"]
    assert elapsed == 9 * 60.0
    # BOOT's session changed REG without a backup; the first REG session afterwards copied REG to BAK.
    assert (station.home.path / "cups-bak.uri").read_text() == cups_url


def test_the_request_the_station_writes_is_byte_exact(tmp_path: Path) -> None:
    """The whole HTTP request against the observed body (fact sheet §1), captured by a raw peer,
    and the station's reading of replies without Content-Length or chunked (malformed to it)."""
    received: list[bytes] = []
    replies = [b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n" + NO_UPDATE,
               b"HTTP/1.1 200 OK\r\n\r\n" + NO_UPDATE,
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ne\r\n" + NO_UPDATE + b"\r\n0\r\n\r\n"]

    async def cups_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
        received.append(head + await reader.readexactly(length))
        writer.write(replies[len(received) - 1])
        await writer.drain()
        writer.close()

    async def main(clock: VirtualClock):
        peer = await asyncio.start_server(cups_peer, "127.0.0.1", 0)
        port = peer.sockets[0].getsockname()[1]
        sig_key = bytes(range(64))
        home = StationHome(tmp_path / "home").provision(
            cups_uri=f"http://127.0.0.1:{port}", tc_uri="ws://127.0.0.1:16038", version="v0-test", sig_keys=(sig_key,))
        station = BasicsStation(StationSettings(1, version="2.0.6(linux/testsim)", build_date="2026-11-22 14:11:37",
                                                cups_resync_interval=60, tc_timeout=1), home, clock)
        home.path.joinpath("tc.uri").unlink()  # keep TC quiet: no LNS in this test
        await station.start()
        await clock.run_until(lambda: len(received) == 3 and station.count("cups-failed") == 2, timeout=600)
        await station.stop()
        peer.close()
        await peer.wait_closed()
        return station, port, key_crc(sig_key)

    loop = VirtualEventLoop(VirtualClock())
    try:
        station, port, crc = loop.run_until_complete(main(loop.clock))
    finally:
        loop.close()
    body = (b'{"router":"::1","cupsUri":"http://127.0.0.1:%d","tcUri":null,"cupsCredCrc":2077607535,'
            b'"tcCredCrc":2077607535,"station":"2.0.6(linux/testsim) 2026-11-22 14:11:37","model":"linux",'
            b'"package":"v0-test","keys":[%d]}' % (port, crc))
    assert received[0] == (b"POST /update-info HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %5d\r\n\r\n" % (port, len(body))) + body
    assert station.events[[e.kind for e in station.events].index("cups-done")].detail == "no updates"
    details = [event.detail for event in station.events if event.kind == "cups-failed"]
    assert all("malformed CUPS reply: CUPS reply truncated in cupsUri length" in detail for detail in details)


def test_version_message_byte_exact_and_the_emulator_on_real_time(tmp_path: Path) -> None:
    """On a plain loop with RealClock (as `otaharness emulate` runs it): the first frame on the muxs
    connection is the observed version message (fact sheet §7.2) when version.txt is missing."""
    async def main():
        from otaharness.servers.basics_station.server import BasicsStationServer
        from otaharness.servers.basics_station.registry import StationRecord

        clock = RealClock()
        server = BasicsStationServer(tmp_path / "server", clock)
        await server.start()
        server.registry.put(StationRecord(1, tc_uri=server.endpoints()["lns"]))
        home = StationHome(tmp_path / "home").provision(cups_uri=server.endpoints()["cups"])
        station = BasicsStation(StationSettings(1, version="2.0.6(linux/testsim)"), home, clock,
                                bind_address="127.0.0.1")
        await station.start()
        try:
            assert await clock.run_until(lambda: station.router_config is not None, timeout=5)
        finally:
            await station.stop()
            await server.stop()
        return server.lns.history[0].texts[0]

    assert asyncio.run(main()) == ('{"msgtype":"version","station":"2.0.6(linux/testsim)","firmware":null,'
                                   '"package":null,"model":"linux","protocol":2,"features":"rmtsh"}')


def test_cli_builds_several_stations_with_their_own_homes(tmp_path: Path) -> None:
    import argparse

    from otaharness.emulators.basics_station import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--home", str(tmp_path), "--cups-uri", "http://127.0.0.1:5002", "--eui", "::a",
                              "--count", "2", "--package", "v0", "--cups-ok-interval", "3600"])
    stations = cli.stations_from(args, RealClock())
    assert [station.settings.eui for station in stations] == [10, 11]
    assert [station.home.path.name for station in stations] == ["000000000000000A", "000000000000000B"]
    assert all(station.home.uri("cups") == "http://127.0.0.1:5002" and station.home.version() == "v0"
               and station.settings.cups_ok_interval == 3600 for station in stations)


def test_service_module_starts_and_stops_the_back_end(tmp_path: Path) -> None:
    from otaharness.servers.basics_station import service

    async def main():
        runtime = SimpleNamespace(artifacts=tmp_path, clock=RealClock(), data_dir=lambda name: tmp_path / name,
                                  target=lambda flow: SimpleNamespace(endpoints={"plain_http": "true"}))
        server = await service.start(runtime)
        endpoints = server.endpoints()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.tokens()['cups']}"}) as http:
            async with http.get(endpoints["cups"] + "/admin/stations/::1") as response:
                assert response.status == 404
        await server.stop()
        return endpoints

    endpoints = asyncio.run(main())
    assert endpoints["cups"].startswith("http://127.0.0.1:") and endpoints["lns"].startswith("ws://127.0.0.1:")
    assert (tmp_path / "basics-station" / "stations.sqlite").is_file()


def test_the_station_field_is_configurable_and_defaults_to_the_real_form(tmp_path: Path) -> None:
    """`station` of the CUPS request: "<version> <build date>" as the real station builds it
    (CFG_version " " CFG_bdate), or what the settings say."""
    home = StationHome(tmp_path / "home").provision(cups_uri="http://127.0.0.1:1")
    default = BasicsStation(StationSettings(1), home, RealClock()).update_info_request().station
    chosen = BasicsStation(StationSettings(1, station="2.0.6(rpi/std) 2024-05-01 10:00:00"), home,
                           RealClock()).update_info_request().station
    assert re.fullmatch(r"2\.0\.6\(linux/std\) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", default)
    assert chosen == "2.0.6(rpi/std) 2024-05-01 10:00:00"
