"""The seed's CUPS firmware upgrade, end to end over real sockets on a virtual clock, and its
failure cases (wrong signature, missing key, unsigned, broken or stale update files)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import zlib
from pathlib import Path

import pytest
from basics_station_world import World, fixture_path, run_world

from otaharness.protocols.basics_station import UpdateInfoRequest, UpdateOutcome
from otaharness.provision import basics_station_prepare, basics_station_upgrade_firmware
from otaharness.provision.basics_station import (
    ProvisioningError,
    prepare_signature_key,
    upgrade_firmware,
    write_firmware_digest,
)

DAY = 86400.0
STATION = 0x0016C001FF10A235
OTHER_STATION = 0x0016C001FF10A236


def upgrade_arguments(world: World, keys: Path, firmware: Path, *, package: str = "v1",
                      digest: str = "fw.digest", checksum: str = "sig-0.crc") -> argparse.Namespace:
    return argparse.Namespace(
        station_eui=f"{STATION:016X}", package=package, firmware_location=firmware,
        digest_location=keys / digest, checksum_location=keys / checksum, server=world.cups_url,
        token=world.server.admin_token, ca=world.pki.ca_file if world.pki else None)


def prepare(keys: Path, firmware: Path, index: int = 0) -> bytes:
    """The operator's preparation through the CLI module; returns the station's sig-N.key."""
    args = argparse.Namespace(output_dir=keys, key_index=index, firmware=firmware,
                              digest=keys / ("fw.digest" if index == 0 else f"fw-{index}.digest"))
    assert asyncio.run(basics_station_prepare.run(args)) == 0
    return (keys / f"sig-{index}.key").read_bytes()


def test_seed_flow_provision_upgrade_reconnect_report(tmp_path: Path) -> None:
    keys, firmware = tmp_path / "keys", fixture_path("update_v1.sh")
    sig_key = prepare(keys, firmware)
    assert len(sig_key) == 64
    assert int((keys / "sig-0.crc").read_text()) == zlib.crc32(sig_key)

    async def main(world: World):
        station = world.station(STATION, sig_keys=(sig_key,), cups_ok_interval=DAY)
        bystander = world.station(OTHER_STATION, sig_keys=(sig_key,), cups_ok_interval=DAY)
        for device in (station, bystander):
            await device.start()
        await world.until(lambda: world.reported(STATION) == "v0" and world.reported(OTHER_STATION) == "v0")
        assert station.router_config is not None and station.router_config.region == "EU868"
        assert station.home.uri("tc") == world.lns_url  # handed out by CUPS

        assert await basics_station_upgrade_firmware.run(upgrade_arguments(world, keys, firmware)) == 0
        twin = world.server.registry.get(STATION)
        assert (twin.package, twin.fw_key_checksum) == ("v1", int((keys / "sig-0.crc").read_text()))

        started = world.clock.monotonic()
        await world.until(lambda: world.reported(STATION) == "v1", timeout=2 * DAY)
        # Nothing happens before the station's next regular CUPS check, a day later.
        assert world.clock.monotonic() - started == pytest.approx(DAY, abs=120)
        return station, bystander, world.server.cups.requests, world.server.registry.get(STATION)

    station, bystander, requests, twin = run_world(tmp_path, main)
    accepted = station.last("update-accepted")
    assert accepted is not None and accepted.detail == UpdateOutcome.RUN_VERIFIED.value + " (sig-0.key)"
    assert station.last("update-run").detail == "exit 0"
    assert station.boots == 2 and station.count("restart-requested") == 1
    assert station.home.version() == "v1" and not (station.home.path / "update.bin").exists()
    # After the restart the station asked CUPS with its new package and got nothing more.
    last_request = UpdateInfoRequest.decode(requests[-1])
    assert last_request.router in (STATION, OTHER_STATION)
    station_requests = [UpdateInfoRequest.decode(body) for body in requests
                        if UpdateInfoRequest.decode(body).router == STATION]
    assert station_requests[-1].package == "v1"
    assert twin.last_cups_decision == "no update: station runs the desired package 'v1'"
    # The other station in the same process was not touched.
    assert bystander.home.version() == "v0" and bystander.count("update-accepted") == 0


def test_signature_by_another_key_is_not_run(tmp_path: Path) -> None:
    keys, firmware = tmp_path / "keys", fixture_path("update_v1.sh")
    station_key = prepare(keys, firmware, 0)
    prepare(keys, firmware, 1)  # a second key signs; the twin still names key 0's checksum

    async def main(world: World):
        station = world.station(STATION, sig_keys=(station_key,))
        await station.start()
        await world.until(lambda: world.reported(STATION) == "v0")
        await upgrade_firmware(world.cups_url, f"{STATION:016X}", "v1", firmware, keys / "fw-1.digest",
                               keys / "sig-0.crc", token=world.server.admin_token)
        await station.reboot()  # the next CUPS check now
        await world.until(lambda: station.count("update-aborted") == 1)
        await world.until(lambda: station.tc_connected)
        return station

    station = run_world(tmp_path, main)
    assert station.last("update-aborted").detail == UpdateOutcome.ABORT_NOT_VERIFIED.value
    assert station.count("update-run") == 0
    assert station.home.version() == "v0" and not (station.home.path / "update.bin").exists()


def test_every_64_byte_key_is_tried_until_one_verifies(tmp_path: Path) -> None:
    keys, firmware = tmp_path / "keys", fixture_path("update_v1.sh")
    stranger = prepare_signature_key(tmp_path / "other").key_file.read_bytes()
    signer = prepare(keys, firmware, 0)

    async def main(world: World):
        # sig-0.key does not verify, sig-1.key is not 64 bytes, sig-2.key is the signer's.
        station = world.station(STATION, sig_keys=(stranger, b"short", signer))
        await upgrade_firmware(world.cups_url, f"{STATION:016X}", "v1", firmware, keys / "fw.digest",
                               keys / "sig-0.crc", token=world.server.admin_token)
        await station.start()
        await world.until(lambda: world.reported(STATION) == "v1")
        return station

    station = run_world(tmp_path, main)
    assert station.events[[e.kind for e in station.events].index("update-accepted")].detail == (
        UpdateOutcome.RUN_VERIFIED.value + " (sig-2.key)")


def test_station_without_the_key_gets_no_update_and_the_server_says_why(tmp_path: Path) -> None:
    keys, firmware = tmp_path / "keys", fixture_path("update_v1.sh")
    prepare(keys, firmware, 0)
    other_key = prepare_signature_key(tmp_path / "station-keys").key_file.read_bytes()

    async def main(world: World):
        station = world.station(STATION, sig_keys=(other_key,))
        await station.start()
        await world.until(lambda: station.tc_connected)
        await upgrade_firmware(world.cups_url, f"{STATION:016X}", "v1", firmware, keys / "fw.digest",
                               keys / "sig-0.crc", token=world.server.admin_token)
        await station.reboot()
        await world.until(lambda: station.count("cups-done") == 2)
        return station, world.server.registry.get(STATION)

    station, twin = run_world(tmp_path, main)
    assert station.last("cups-done").detail == "no updates"
    checksum = int((keys / "sig-0.crc").read_text())
    assert twin.last_cups_decision == (
        f"no update to 'v1': the station lacks the signing key (fwKeyChecksum {checksum} not in keys "
        f"[{zlib.crc32(other_key)}])")
    assert station.home.version() == "v0"


@pytest.mark.risk
def test_no_key_and_no_signature_runs_the_update_unsigned(tmp_path: Path) -> None:
    """RISK (real station behaviour, fact sheet §4.1): a station without sig-0.key runs any update
    a CUPS server sends without a signature."""

    async def main(world: World):
        station = world.station(STATION, sig_keys=())
        await _set_unsigned_update(world, "update_v1.sh")
        await station.start()
        await world.until(lambda: world.reported(STATION) == "v1")
        return station, world.server.cups.decisions, world.lns_url

    station, decisions, lns_url = run_world(tmp_path, main)
    assert station.last("update-accepted").detail == UpdateOutcome.RUN_UNSIGNED.value
    size = len(fixture_path("update_v1.sh").read_bytes())
    assert decisions[0] == (
        STATION, f"tcUri {lns_url}; update to 'v1' ({size} bytes) UNSIGNED: the twin has no key/signature")
    assert decisions[-1] == (STATION, "no update: station runs the desired package 'v1'")


def test_update_that_is_not_a_program_fails_visibly(tmp_path: Path) -> None:
    async def main(world: World):
        station = world.station(STATION)
        await _set_unsigned_update(world, "update_not_executable.bin")
        await station.start()
        await world.until(lambda: station.count("update-failed") == 1)
        await world.until(lambda: station.tc_connected)
        return station, world.reported(STATION)

    station, reported = run_world(tmp_path, main)
    assert "Exec format error" in station.last("update-failed").detail
    assert station.home.version() == "v0" and reported == "v0"


def test_stale_update_file_runs_again_after_a_power_cut(tmp_path: Path) -> None:
    async def main(world: World):
        station = world.station(STATION)
        await _set_unsigned_update(world, "update_v1_no_cleanup.sh")
        await station.start()
        await world.until(lambda: station.count("update-run") == 1)
        await station.power_cut()
        await world.until(lambda: station.count("update-run") == 2 and station.tc_connected)
        await station.power_cut()
        await world.until(lambda: station.count("update-run") == 3 and station.tc_connected)
        return station, world.reported(STATION)

    station, reported = run_world(tmp_path, main)
    runs_log = (station.home.path / "update-runs.log").read_text().split()
    assert runs_log == ["run", "run", "run"]
    assert station.count("update-rerun") == 2 and station.count("update-accepted") == 1
    assert (station.home.path / "update.bin").exists() and reported == "v1"


def test_an_update_that_hangs_is_killed_and_virtual_time_stands_still(tmp_path: Path) -> None:
    async def main(world: World):
        station = world.station(STATION, update_time_limit=0.5)
        await _set_unsigned_update(world, content=b"#!/bin/sh\nsleep 30\n")
        await station.start()
        await world.until(lambda: station.count("update-run") == 1)
        return station

    station = run_world(tmp_path, main)
    failed, ran = station.last("update-failed"), station.last("update-run")
    assert failed.detail == "killed after 0.5 s" and ran.detail == "exit -9"
    # The half second of real time did not move the loop clock.
    accepted = station.last("update-accepted")
    assert ran.at == accepted.at


def test_upgrade_firmware_removes_the_upload_when_the_station_is_unknown(tmp_path: Path) -> None:
    keys, firmware = tmp_path / "keys", fixture_path("update_v1.sh")
    prepare(keys, firmware)

    async def main(world: World):
        with pytest.raises(ProvisioningError, match="unknown station.*the uploaded firmware was removed"):
            await upgrade_firmware(world.cups_url, "AA-BB-CC-DD-EE-FF-00-11", "v1", firmware,
                                   keys / "fw.digest", keys / "sig-0.crc", token=world.server.admin_token)
        assert world.server.store.read("AABBCCDDEEFF0011-v1") is None
        # A missing input file fails before anything is uploaded.
        with pytest.raises(ProvisioningError, match="file not found"):
            await upgrade_firmware(world.cups_url, "::1", "v1", firmware, keys / "missing.digest",
                                   keys / "sig-0.crc", token=world.server.admin_token)
        # The same package twice: the store never overwrites.
        world.register(STATION)
        await upgrade_firmware(world.cups_url, f"{STATION:016X}", "v1", firmware, keys / "fw.digest",
                               keys / "sig-0.crc", token=world.server.admin_token)
        args = upgrade_arguments(world, keys, firmware)
        return await basics_station_upgrade_firmware.run(args)

    assert run_world(tmp_path, main) == 1


def test_digest_verifies_with_the_prepared_key(tmp_path: Path) -> None:
    from otaharness.protocols.basics_station import verifying_key_index

    prepared = prepare_signature_key(tmp_path)
    firmware = fixture_path("update_v1.sh")
    digest = write_firmware_digest(firmware, prepared.private_key_file, tmp_path / "d")
    signature = base64.b64decode(digest)
    assert verifying_key_index(firmware.read_bytes(), signature, [prepared.key_file.read_bytes()]) == 0
    assert verifying_key_index(firmware.read_bytes() + b"x", signature, [prepared.key_file.read_bytes()]) is None


async def _set_unsigned_update(world: World, fixture: str | None = None, *, content: bytes | None = None) -> None:
    """Desired package v1 without key checksum or signature, through the admin API."""

    body = content if content is not None else fixture_path(fixture).read_bytes()
    async with world.admin_session() as http:
        async with http.put(f"{world.cups_url}/admin/firmware/{STATION:016X}-v1", data=body) as response:
            assert response.status == 201
            fw_url = (await response.json())["fwUrl"]
        desired = {"package": "v1", "fwUrl": fw_url, "fwKeyChecksum": None, "fwSignature": None}
        async with http.put(f"{world.cups_url}/admin/stations/{STATION:016X}/cups", data=json.dumps(desired)) as response:
            assert response.status == 200, await response.text()

