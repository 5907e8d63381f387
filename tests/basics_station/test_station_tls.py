"""CUPS over HTTPS and the LNS over WSS: stations authenticate with a client certificate bound to
their EUI or a token, each refusal on the wire, the station's TLS set-up as basicstation 2.0.6
does it (mbedTLS 2.28 name check, token header lines), and CUPS credential rotation with fallback.

The stations are the emulator (``otaharness.emulators.basics_station``) on a virtual clock; raw refusals are
checked with plain TLS clients built from the same credential files."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
import websockets
from basics_station_world import World, run_world
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from otaharness.emulators.basics_station import CredentialSet, StationHome
from otaharness.emulators.basics_station.cups_http import post_update_info
from otaharness.emulators.basics_station.tls import TlsSetupError, mbedtls_names_match, station_tls
from otaharness.protocols.basics_station import (
    Credentials,
    RouterInfoRequest,
    RouterInfoResponse,
    UpdateInfoRequest,
    station_auth_header_lines,
)
from otaharness.runtime.pki import Pki
from otaharness.servers.basics_station.identity import (
    certificate_credentials,
    station_certificate,
)

STATION = 0x0016C001FF10A235
OTHER = 0x0016C001FF10A236
DAY = 86400.0


def _home_with(tmp_path: Path, name: str, credentials: Credentials) -> StationHome:
    home = StationHome(tmp_path / name)
    home.store_credentials("cups", credentials)
    home.store_credentials("tc", credentials)
    return home


async def _cups_status(world: World, home: StationHome, router: int, keys: tuple[int, ...] = ()) -> tuple[int, bytes]:
    """POST /update-info for ``router`` as a station with ``home``'s CUPS REG set would."""
    tls, headers = station_tls(home, "cups", CredentialSet.REG)
    url = world.cups_url
    host, port = url.removeprefix("https://").split(":")
    body = UpdateInfoRequest(router=router, cups_uri=url, tc_uri=None, cups_cred_crc=0, tc_cred_crc=0,
                             station="2.0.6(linux/std) 2026-01-01 00:00:00", model="linux", package="v0",
                             keys=keys).encode()
    reply = await post_update_info((host, int(port)), f"{host}:{port}", body, tls=tls, server_hostname=host,
                                   auth_headers=headers)
    return reply.status, reply.body


# -- refusals -------------------------------------------------------------------------------------


def test_each_station_credential_refusal_on_cups_and_the_lns(tmp_path: Path) -> None:
    """No client certificate, another EUI's certificate, station A's token on B, another CA's
    certificate, an expired one: each is refused, and the rightful station gets through."""

    async def main(world: World):
        world.register(STATION)
        world.register(OTHER)
        pki = world.pki
        good = _home_with(tmp_path, "good", world.credentials(STATION))
        server_only = _home_with(tmp_path, "server-only", Credentials(trust=good.credential_files("cups")[0]))
        token_a = _home_with(tmp_path, "token-a", world.credentials(STATION, "token"))
        rogue = _home_with(tmp_path, "rogue", certificate_credentials(
            pki.server_ca.certificate, station_certificate(pki.rogue_ca, STATION)))
        expired = _home_with(tmp_path, "expired", certificate_credentials(
            pki.server_ca.certificate, station_certificate(pki.device_ca, STATION, expired=True)))
        results = {
            "certificate": await _cups_status(world, good, STATION),
            "token": await _cups_status(world, token_a, STATION),
            "no credential": await _cups_status(world, server_only, STATION),
            "certificate for another EUI": await _cups_status(world, good, OTHER),
            "token of A on B": await _cups_status(world, token_a, OTHER),
        }
        handshakes = {}
        for name, home in (("another CA", rogue), ("expired", expired)):
            try:
                await _cups_status(world, home, STATION)
            except ssl.SSLError as error:
                handshakes[name] = str(error)
        lns = {}
        for name, home, eui in (("certificate", good, STATION), ("no credential", server_only, STATION),
                                ("another EUI", good, OTHER), ("token of A on B", token_a, OTHER)):
            tls, headers = station_tls(home, "tc", CredentialSet.REG)
            extra = [tuple(line.split(": ", 1)) for line in headers.decode().split("\r\n") if line]
            try:
                async with connect(f"{world.lns_url}/router-data/{eui:016X}", ssl=tls, proxy=None,
                                   additional_headers=extra or None, server_hostname="127.0.0.1"):
                    lns[name] = 101
            except websockets.InvalidStatus as error:
                lns[name] = error.response.status_code
        # Discovery with another station's credential: an error reply (the station then asks CUPS).
        tls, _ = station_tls(good, "tc", CredentialSet.REG)
        async with connect(f"{world.lns_url}/router-info", ssl=tls, proxy=None, server_hostname="127.0.0.1") as ws:
            await ws.send(RouterInfoRequest(OTHER).to_json())
            discovery = RouterInfoResponse.decode(await ws.recv())
        return results, handshakes, lns, discovery

    results, handshakes, lns, discovery = run_world(tmp_path, main, tls=True)
    assert results["certificate"][0] == 200 and results["token"][0] == 200
    assert results["no credential"][0] == 401 and b"authentication required" in results["no credential"][1]
    assert results["certificate for another EUI"][0] == 403
    assert b"for station 00-16-C0-01-FF-10-A2-35, not 00-16-C0-01-FF-10-A2-36" in results["certificate for another EUI"][1]
    assert results["token of A on B"][0] == 403
    assert "unknown ca" in handshakes["another CA"] and "certificate expired" in handshakes["expired"]
    assert lns == {"certificate": 101, "no credential": 401, "another EUI": 403, "token of A on B": 403}
    assert not discovery.accepted and "not 00-16-C0-01-FF-10-A2-36" in (discovery.error or "")


def test_stations_reach_cups_and_the_lns_with_a_certificate_or_a_token(tmp_path: Path) -> None:
    async def main(world: World):
        by_certificate = world.station(STATION, auth="certificate")
        by_token = world.station(OTHER, auth="token")
        for station in (by_certificate, by_token):
            await station.start()
        await world.until(lambda: world.reported(STATION) == "v0" and world.reported(OTHER) == "v0", timeout=600)
        return by_certificate, by_token, world.server.lns.history

    by_certificate, _, history = run_world(tmp_path, main, tls=True)
    assert by_certificate.home.uri("tc").startswith("wss://127.0.0.1:")
    assert {session.eui: session.identity.split()[0] for session in history} == {STATION: "certificate",
                                                                                 OTHER: "token"}


def test_a_second_authenticated_connection_replaces_the_first(tmp_path: Path) -> None:
    """The newer connection wins (as The Things Stack): the old one is closed with 1008."""

    async def main(world: World):
        world.register(STATION)
        home = _home_with(tmp_path, "home", world.credentials(STATION))
        tls, _ = station_tls(home, "tc", CredentialSet.REG)
        url = f"{world.lns_url}/router-data/{STATION:016X}"
        async with connect(url, ssl=tls, proxy=None, server_hostname="127.0.0.1") as first, \
                connect(url, ssl=tls, proxy=None, server_hostname="127.0.0.1"):
            with pytest.raises(websockets.ConnectionClosed):
                await first.recv()
            return first.close_code, len(world.server.lns.sessions)

    assert run_world(tmp_path, main, tls=True) == (1008, 1)


# -- the station's TLS set-up ---------------------------------------------------------------------


def _certificate(names: list[x509.GeneralName] | None, common_name: str = "server") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_server_names_are_matched_the_mbedtls_2_28_way() -> None:
    import ipaddress

    ip_only = _certificate([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    assert not mbedtls_names_match(ip_only, "127.0.0.1")  # iPAddress entries are ignored
    assert mbedtls_names_match(_certificate([x509.DNSName("127.0.0.1")]), "127.0.0.1")
    wildcard = _certificate([x509.DNSName("*.Example.net")])
    assert mbedtls_names_match(wildcard, "lns.example.NET") and not mbedtls_names_match(wildcard, "a.b.example.net")
    # Without the SAN extension the common name counts; with it, it does not.
    assert mbedtls_names_match(_certificate(None, "localhost"), "localhost")
    assert not mbedtls_names_match(_certificate([x509.DNSName("other")], "localhost"), "localhost")


def test_our_server_certificates_name_localhost_and_127_0_0_1_as_dns_names(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    try:
        certificate_file, _ = pki.server_identity(["localhost"])
        certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
        assert mbedtls_names_match(certificate, "127.0.0.1") and mbedtls_names_match(certificate, "localhost")
    finally:
        pki.close()


@pytest.mark.parametrize(("key_file", "expected"), [
    (b"Authorization: Bearer abc\n", b"Authorization: Bearer abc\r\n"),
    (b"Authorization: Bearer abc\r\n\r\n\n", b"Authorization: Bearer abc\r\n"),
    (b"X-Api_Key: 1\nAuthorization: Bearer z", b"X-Api_Key: 1\r\nAuthorization: Bearer z\r\n"),
    (b"Authorization: Bearer abc\x00ignored", b"Authorization: Bearer abc\r\n"),
    (b"", b""),
    (b"Authorization:Bearer abc", None),  # no space after the colon
    (b"Bad Name: x", None),
    (b": x", None),
])
def test_token_key_files_become_header_lines_as_the_station_reads_them(key_file: bytes, expected) -> None:
    assert station_auth_header_lines(key_file) == expected


def test_a_credential_set_the_station_cannot_use_fails_before_connecting(tmp_path: Path) -> None:
    home = StationHome(tmp_path / "home")
    with pytest.raises(TlsSetupError, match="no trust configured"):
        station_tls(home, "cups", CredentialSet.REG)
    pki = Pki(tmp_path / "pki")
    try:
        trust = certificate_credentials(pki.server_ca.certificate, station_certificate(pki.device_ca, 1)).trust
        home.store_credentials("cups", Credentials(trust=trust, auth_token=b"no colon here"))
        with pytest.raises(TlsSetupError, match="malformed auth token"):
            station_tls(home, "cups", CredentialSet.REG)
        home.store_credentials("cups", Credentials(trust=b"\x30\x03\x02\x01\x00"))
        with pytest.raises(TlsSetupError, match="trust certificates rejected"):
            station_tls(home, "cups", CredentialSet.REG)
    finally:
        pki.close()


# -- rotation through CUPS ------------------------------------------------------------------------


def test_a_rotation_to_a_broken_cups_credential_falls_back_to_the_backup_set(tmp_path: Path) -> None:
    """CUPS hands the station a trust of an unrelated CA: every CUPS session with REG fails; after
    more than 6 failures in a row the station tries BAK (its previous, working set), which CUPS
    answers — and the operator's repaired credentials then reach REG."""

    async def main(world: World):
        station = world.station(STATION)
        await station.start()
        await world.until(lambda: world.reported(STATION) == "v0", timeout=600)
        broken = certificate_credentials(world.pki.rogue_ca.certificate,
                                         station_certificate(world.pki.device_ca, STATION))
        world.server.registry.update(STATION, cups_credentials=broken.encode())
        await station.reboot()  # its next CUPS check now
        await world.until(lambda: station.home.credential_files("cups")[0] == broken.trust, timeout=600)
        # On the LNS the station asks CUPS once a day: 8 failed days, then the BAK set.
        await world.until(lambda: station.count("cups-failed") == 8, timeout=10 * DAY)
        repaired = world.credentials(STATION)
        world.server.registry.update(STATION, cups_credentials=repaired.encode())
        await world.until(lambda: station.home.credential_files("cups") == repaired.stored_files(), timeout=2 * DAY)
        done = station.count("cups-done")
        await world.until(lambda: station.count("cups-done") > done, timeout=2 * DAY)
        return station, [e.detail for e in station.events if e.kind == "cups-failed"]

    station, failures = run_world(tmp_path, main, tls=True)
    assert len(failures) == 8 and all("CERTIFICATE_VERIFY_FAILED" in detail for detail in failures), failures
    sets = [e.detail for e in station.events if e.kind == "cups-set"]
    assert sets == ["BAK"], sets  # the repair came through the backup set, then REG works again
    assert station.last("cups-failed").at < station.last("cups-done").at


# -- tools, upload checks, the service ------------------------------------------------------------


def test_station_credentials_writes_the_files_a_station_reads(tmp_path: Path) -> None:
    """`cups station-credentials` through the admin API (its token, the CA file): the files are
    byte for byte a usable credential set, keys 0600; without the admin token nothing is issued."""
    import argparse

    from otaharness.protocols.basics_station import credential_crc
    from otaharness.provision import basics_station_credentials

    async def main(world: World):
        world.register(STATION)
        args = argparse.Namespace(server=world.cups_url, station_eui=f"{STATION:016X}", home=tmp_path / "st",
                                  auth="token", ca=world.pki.ca_file, token=world.server.admin_token)
        assert await basics_station_credentials.run(args) == 0
        refused = await basics_station_credentials.run(argparse.Namespace(**{**vars(args), "token": None,
                                                                            "home": tmp_path / "no"}))
        home = StationHome(tmp_path / "st")
        status = await _cups_status(world, home, STATION)
        return home, refused, status

    home, refused, status = run_world(tmp_path, main, tls=True)
    trust, certificate, key = home.credential_files("cups")
    assert trust[:1] == b"\x30" and certificate == b"" and key.startswith(b"Authorization: Bearer ")
    assert home.credential_files("tc") == (trust, certificate, key)
    assert home.uri("cups").startswith("https://127.0.0.1:")
    assert (home.path / "cups.key").stat().st_mode & 0o777 == 0o600
    assert home.credential_crc("cups") == credential_crc(trust, None, key)
    assert refused == 1 and not (tmp_path / "no").exists()
    assert status[0] == 200


def test_a_signature_no_station_can_verify_is_refused_at_upload_and_nothing_is_stored(tmp_path: Path) -> None:
    import base64

    from otaharness.protocols.basics_station import SigningKey
    from otaharness.provision.basics_station import ProvisioningError, upgrade_firmware

    key = SigningKey.generate()
    firmware = tmp_path / "fw.sh"
    firmware.write_bytes(b"#!/bin/sh\n")
    (tmp_path / "sig-0.crc").write_text(str(key.crc))

    async def main(world: World):
        world.register(STATION)
        refusals = []
        for name, signature in (("129 bytes", b"\x30" + bytes(128)), ("not DER", bytes(64)),
                                ("trailing byte", key.sign(b"x").der + b"\x00")):
            (tmp_path / "fw.digest").write_text(base64.b64encode(signature).decode())
            with pytest.raises(ProvisioningError) as refused:
                await upgrade_firmware(world.cups_url, f"{STATION:016X}", "v1", firmware, tmp_path / "fw.digest",
                                       tmp_path / "sig-0.crc", token=world.server.admin_token, ca=world.pki.ca_file)
            refusals.append((name, str(refused.value)))
        return refusals, world.server.store.read(f"{STATION:016X}-v1"), world.server.registry.get(STATION)

    refusals, stored, twin = run_world(tmp_path, main, tls=True)
    assert "signature of 129 bytes" in refusals[0][1] and "not DER ECDSA" in refusals[1][1]
    assert "not DER ECDSA" in refusals[2][1] or "signature of 73 bytes" in refusals[2][1]  # a 72-byte one + 1
    assert stored is None and twin.package is None


def test_cups_answers_without_the_update_when_the_stored_signature_is_unusable(tmp_path: Path) -> None:
    """A twin holding what no station can verify (stored before the upload check, or by hand):
    CUPS answers 200 without the update and says why, instead of failing every check."""
    from otaharness.protocols.basics_station import NO_UPDATE

    async def main(world: World):
        world.server.store.add(f"{STATION:016X}-v1", b"#!/bin/sh\n")
        world.register(STATION, package="v1", fw_url=f"{world.cups_url}/admin/firmware/{STATION:016X}-v1",
                       fw_key_checksum=1, fw_signature=b"\x30" + bytes(128), tc_uri=None, cups_uri=None)
        home = _home_with(tmp_path, "home", world.credentials(STATION))
        return (await _cups_status(world, home, STATION, keys=(1,)),
                world.server.registry.get(STATION).last_cups_decision)

    (status, body), decision = run_world(tmp_path, main, tls=True)
    assert (status, body) == (200, NO_UPDATE)
    assert decision == "no update to 'v1': the stored signature is unusable: signature of 129 bytes: " \
                       "a DER ECDSA P-256 signature has 8..72"


def test_the_service_runs_tls_by_default_and_lists_its_trust_file(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from otaharness.runtime.clock import RealClock
    from otaharness.servers.basics_station import service

    async def main():
        pki = Pki(tmp_path / "pki")
        runtime = SimpleNamespace(artifacts=tmp_path, clock=RealClock(), pki=lambda: pki,
                                  data_dir=lambda name: tmp_path / name,
                                  target=lambda flow: SimpleNamespace(endpoints={}))
        server = await service.start(runtime)
        endpoints, tokens = server.endpoints(), server.tokens()
        await server.stop()
        pki.close()
        return endpoints, tokens

    endpoints, tokens = asyncio.run(main())
    assert endpoints["cups"].startswith("https://127.0.0.1:") and endpoints["lns"].startswith("wss://127.0.0.1:")
    assert endpoints["ca"].endswith("server-ca.pem") and len(tokens["cups"]) >= 43


def test_the_backup_set_is_taken_once_in_the_homes_life(tmp_path: Path) -> None:
    """`cups-bak.done` marks the BAK copy done and is read at every start (checkRollForward): two
    rotations across restarts leave BAK holding the set of the first contact, not the last one."""

    async def main(world: World):
        station = world.station(STATION)
        first = station.home.credential_files("cups")
        await station.start()
        await world.until(lambda: world.reported(STATION) == "v0", timeout=600)
        for _ in range(2):
            rotated = world.credentials(STATION)
            world.server.registry.update(STATION, cups_credentials=rotated.encode())
            await station.reboot()
            await world.until(lambda rotated=rotated: station.home.credential_files("cups") == rotated.stored_files(),
                              timeout=600)
        return first, station.home

    first, home = run_world(tmp_path, main, tls=True)
    assert home.backup_done("cups") and home.credential_files("cups", CredentialSet.BAK) == first
