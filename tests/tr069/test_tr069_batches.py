"""Upgrade batches of seed 002 end to end: ACS + file server + emulated CPEs on virtual time."""

from __future__ import annotations

import asyncio
import datetime as dt

from tr069_world import (
    CHECK_DELAY, DAY, FIXTURES, HOUR, MONDAY, World, assert_schema_valid, booted, device_id,
    events_of, mikrotik_batch, run_to, starts_by_day)

from otaharness.emulators.cpe.firmware import build_dummy_npk
from otaharness.emulators.cpe.quirks import Quirks


def test_seed_flow_upgrades_on_boot_inside_the_window_then_ready(run_world, cwmp_schemas):
    async def main(world: World) -> None:
        await world.start()
        first, second = await world.add_cpe("CHR0001"), await world.add_cpe("CHR0002")
        gateway = await world.add_cpe("GW0001", profile="generic")
        await booted(world, first, second, gateway)
        await world.upload("generic-firmware-1.1.0.bin",
                           (FIXTURES / "generic-firmware-1.1.0.bin").read_bytes(),
                           oui="00D09E", product_class="EX-1000", version="1.1.0")
        batch = await mikrotik_batch(world, days=["Tue"], hours=["2-3"], event="Boot",
                                     max_attempts=2, max_devices_per_day=0)
        # The batch lists the group's devices at the original version; file lists by group.
        assert await world.batch_states(batch) == {device_id(first): "queued",
                                                   device_id(second): "queued"}
        status, files = await world.admin("GET", "/files?group=mikrotik-chr")
        assert status == 200
        assert sorted(f["name"] for f in files) == [
            "routeros-x86-6.48.4.npk", "tr069-client-6.48.4.npk", "upgrade_6.48.4.xml"]

        # Monday 10:00: a reboot on demand is a Boot outside the window: nothing happens.
        await run_to(world, MONDAY + dt.timedelta(hours=10))
        status, answer = await world.admin("POST", f"/devices/{device_id(first)}/reboot")
        assert (status, answer) == (200, {"connection_request": True})
        assert await world.run_until(lambda: ("1 BOOT", "M Reboot") in first.informs, 600)
        assert first.software_version == "6.48" and world.batch_state(batch, first) == "queued"
        assert not events_of(world, first, "Download-sent")

        # Tuesday 02:30 (inside): the reboot's Boot Inform gets the Download.
        await run_to(world, MONDAY + dt.timedelta(days=1, hours=2, minutes=30))
        await world.admin("POST", f"/devices/{device_id(first)}/reboot")
        assert await world.run_until(lambda: first.software_version == "6.48.4", 3600)
        command_key = events_of(world, first, "Download-sent")[0]["detail"]["command_key"]
        assert first.informs[-1] == ("1 BOOT", "4 VALUE CHANGE", "7 TRANSFER COMPLETE",
                                     "M Download")
        boot_inform = events_of(world, first, "inform")[-1]["detail"]
        assert ["M Download", command_key] in boot_inform["events"]
        assert first.nv.packages == {"routeros-x86": "6.48.4", "tr069-client": "6.48.4"}
        # The XML, then each linked package, fetched from the device's own address.
        fetched = [(name, peer) for name, peer, _ in world.acs.files.downloads]
        assert fetched == [(name, first.bind_address) for name in (
            "upgrade_6.48.4.xml", "routeros-x86-6.48.4.npk", "tr069-client-6.48.4.npk")]

        # Ready only after the 30-minute check; the other device never booted in the window.
        assert world.batch_state(batch, first) == "installed"
        await world.clock.run_for(CHECK_DELAY - 60)
        assert world.batch_state(batch, first) == "installed"
        await world.clock.run_for(120)
        assert await world.batch_states(batch) == {device_id(first): "ready",
                                                   device_id(second): "queued"}
        assert second.software_version == "6.48" and gateway.software_version == "1.0.0"
        assert assert_schema_valid(cwmp_schemas, world.messages) > 20

    run_world(main)


def test_inform_event_batch_uses_the_first_inform_inside_its_time_zone_window(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001", periodic_interval=HOUR)
        await booted(world, cpe)
        # 11:00-11:59 in Tokyo (UTC+9) on Monday = 02:00-02:59 UTC.
        batch = await mikrotik_batch(world, days=["Mon"], hours=[11], event="Inform",
                                     timezone="Asia/Tokyo")
        await run_to(world, MONDAY + dt.timedelta(hours=1, minutes=59))
        assert world.batch_state(batch, cpe) == "queued"  # the 01:00 UTC Inform was outside
        assert await world.run_until(lambda: cpe.software_version == "6.48.4", 2 * HOUR)
        (started,) = world.acs.store.db.execute("SELECT started FROM batch_starts").fetchone()
        assert started == (MONDAY + dt.timedelta(hours=2)).timestamp()

    run_world(main)


def test_unchanged_version_is_an_error_after_the_check(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001", quirks=Quirks(keep_version=True))
        await booted(world, cpe)
        batch = await mikrotik_batch(world, event="Inform", max_attempts=1)
        await world.admin("POST", f"/devices/{device_id(cpe)}/connection-request")
        assert await world.run_until(lambda: "7 TRANSFER COMPLETE" in cpe.informs[-1], HOUR)
        assert world.batch_state(batch, cpe) == "installed"
        await world.clock.run_for(CHECK_DELAY + 1)
        entry = world.acs.store.batch_device(batch, device_id(cpe))
        assert entry["state"] == "error"
        assert entry["last_fault"] == {"reason": "version is '6.48', not '6.48.4'"}
        await world.clock.run_for(DAY)  # attempts used up: no second Download
        assert len(events_of(world, cpe, "Download-sent")) == 1

    run_world(main)


def test_error_is_retried_until_attempts_are_exhausted(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001", quirks=Quirks(keep_version=True),
                                  periodic_interval=HOUR)
        await booted(world, cpe)
        batch = await mikrotik_batch(world, event="Inform", max_attempts=3)
        await world.clock.run_for(2 * DAY)
        entry = world.acs.store.batch_device(batch, device_id(cpe))
        assert (entry["state"], entry["attempts"]) == ("error", 3)
        sent = events_of(world, cpe, "Download-sent")
        assert len(sent) == 3
        # Each retry waited for the previous attempt's check (30 min after its Download).
        gaps = [b["time"] - a["time"] for a, b in zip(sent, sent[1:])]
        assert all(gap >= CHECK_DELAY for gap in gaps), gaps

    run_world(main)


def test_max_devices_per_day_counts_devices_started_each_day(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpes = [await world.add_cpe(f"CHR{n:04d}", periodic_interval=4 * HOUR) for n in range(10)]
        await booted(world, *cpes)
        batch = await mikrotik_batch(world, event="Inform", max_devices_per_day=3)
        await world.clock.run_for(4 * DAY)
        assert starts_by_day(world, batch) == [3, 3, 3, 1]
        assert set((await world.batch_states(batch)).values()) == {"ready"}

    run_world(main)


def test_force_upgrade_ignores_window_and_uses_a_connection_request(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        batch = await mikrotik_batch(world, days=["Sat"], event="Boot")
        status, answer = await world.admin("POST", f"/batches/{batch}/devices/{device_id(cpe)}/force")
        assert (status, answer) == (200, {"connection_request": True})
        assert await world.run_until(lambda: cpe.software_version == "6.48.4", HOUR)
        assert ("6 CONNECTION REQUEST",) in cpe.informs
        await world.clock.run_for(CHECK_DELAY + 1)
        assert world.batch_state(batch, cpe) == "ready"

    run_world(main)


def test_discarded_device_is_not_upgraded(run_world):
    async def main(world: World) -> None:
        await world.start()
        keep, drop = (await world.add_cpe("CHR0001", periodic_interval=HOUR),
                      await world.add_cpe("CHR0002", periodic_interval=HOUR))
        await booted(world, keep, drop)
        batch = await mikrotik_batch(world, event="Inform")
        status, _ = await world.admin("POST", f"/batches/{batch}/devices/{device_id(drop)}/discard")
        assert status == 200
        await world.clock.run_for(DAY)
        assert (keep.software_version, drop.software_version) == ("6.48.4", "6.48")
        assert await world.batch_states(batch) == {device_id(keep): "ready",
                                                   device_id(drop): "discarded"}

    run_world(main)


def test_find_new_devices_adds_matching_devices_that_appeared_later(run_world):
    async def main(world: World) -> None:
        await world.start()
        early = await world.add_cpe("CHR0001", periodic_interval=HOUR)
        await booted(world, early)
        batch = await mikrotik_batch(world, event="Inform")
        late = await world.add_cpe("CHR0002", periodic_interval=HOUR)
        await world.clock.run_for(2 * HOUR)
        assert late.software_version == "6.48" and world.batch_state(batch, late) is None
        status, answer = await world.admin("POST", f"/batches/{batch}/find-new-devices")
        assert (status, answer) == (200, {"added": [device_id(late)]})
        await world.clock.run_for(2 * HOUR)
        assert late.software_version == "6.48.4"
        status, again = await world.admin("POST", f"/batches/{batch}/find-new-devices")
        assert again == {"added": []}

    run_world(main)


def test_corrupted_file_fails_with_9018_then_the_retry_succeeds(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001", periodic_interval=HOUR)
        await booted(world, cpe)
        batch = await mikrotik_batch(world, event="Inform", max_attempts=2)
        good = (FIXTURES / "routeros-x86-6.48.4.npk").read_bytes()
        corrupted = bytearray(good)
        corrupted[100] ^= 0xFF
        await world.upload("routeros-x86-6.48.4.npk", bytes(corrupted))
        await world.clock.run_for(HOUR + 600)  # the first periodic Inform, not the second
        entry = world.acs.store.batch_device(batch, device_id(cpe))
        assert entry["state"] == "error" and entry["last_fault"]["code"] == 9018
        assert "checksum" in entry["last_fault"]["string"]
        assert cpe.software_version == "6.48"
        await world.upload("routeros-x86-6.48.4.npk", good)
        await world.clock.run_for(HOUR)
        assert cpe.software_version == "6.48.4"
        await world.clock.run_for(CHECK_DELAY)
        entry = world.acs.store.batch_device(batch, device_id(cpe))
        assert (entry["state"], entry["attempts"]) == ("ready", 2)

    run_world(main)


def test_missing_package_is_a_download_failure(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        batch = await mikrotik_batch(world, event="Inform")
        status, _ = await world.admin("DELETE", "/files/tr069-client-6.48.4.npk")
        assert status == 200
        await world.admin("POST", f"/batches/{batch}/devices/{device_id(cpe)}/force")
        assert await world.run_until(lambda: world.batch_state(batch, cpe) == "error", HOUR)
        fault = world.acs.store.batch_device(batch, device_id(cpe))["last_fault"]
        assert fault == {"code": 9016, "string": "file server answered HTTP 404"}
        assert cpe.software_version == "6.48" and cpe.nv.packages["routeros-x86"] == "6.48"

    run_world(main)


def test_wrong_file_server_credentials_fail_with_9012(run_world):
    from otaharness.servers.tr069 import AcsConfig

    async def main(world: World) -> None:
        config = AcsConfig(file_auth_mode="digest", file_users={"cpe-files": "right"},
                           download_username="cpe-files", download_password="wrong")
        await world.start(config)
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        batch = await mikrotik_batch(world, event="Inform", max_attempts=2)
        await world.admin("POST", f"/batches/{batch}/devices/{device_id(cpe)}/force")
        assert await world.run_until(lambda: world.batch_state(batch, cpe) == "error", HOUR)
        assert world.acs.store.batch_device(batch, device_id(cpe))["last_fault"]["code"] == 9012
        world.acs.acs.config.download_password = "right"
        await world.admin("POST", f"/batches/{batch}/devices/{device_id(cpe)}/force")
        assert await world.run_until(lambda: cpe.software_version == "6.48.4", HOUR)

    run_world(main)


def test_cpe_offline_during_the_window_upgrades_in_the_next_window(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001", periodic_interval=HOUR)
        await booted(world, cpe)
        batch = await mikrotik_batch(world, hours=[3], event="Inform")
        await run_to(world, MONDAY + dt.timedelta(hours=2, minutes=30))
        outage = asyncio.ensure_future(cpe.power_cut(off_seconds=2 * HOUR))
        await run_to(world, MONDAY + dt.timedelta(hours=3, minutes=30))
        status, answer = await world.admin("POST", f"/devices/{device_id(cpe)}/connection-request")
        # Not reached: 202 (it comes at its next Inform), never a 5xx for the admin's request.
        assert (status, answer) == (202, {"connection_request": False})
        await world.run_until(outage.done, 2 * HOUR)
        await world.clock.run_for(HOUR)
        assert cpe.software_version == "6.48" and world.batch_state(batch, cpe) == "queued"
        assert await world.run_until(lambda: cpe.software_version == "6.48.4", DAY)
        (started,) = world.acs.store.db.execute("SELECT started FROM batch_starts").fetchone()
        assert dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%a %H") == "Tue 03"

    run_world(main)


def test_restarted_acs_keeps_its_state_and_runs_the_pending_check(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        batch = await mikrotik_batch(world, event="Inform")
        await world.admin("POST", f"/batches/{batch}/devices/{device_id(cpe)}/force")
        assert await world.run_until(lambda: world.batch_state(batch, cpe) == "installed", HOUR)
        old_acs = world.acs.acs
        await world.acs.restart()
        assert world.acs.acs is not old_acs
        status, devices = await world.admin("GET", "/devices")
        assert [d["id"] for d in devices] == [device_id(cpe)]
        assert len((await world.admin("GET", "/files"))[1]) == 3
        await world.clock.run_for(CHECK_DELAY + 1)
        assert world.batch_state(batch, cpe) == "ready"

    run_world(main)


def test_generic_tr098_gateway_takes_a_binary_image(run_world):
    async def main(world: World) -> None:
        await world.start()
        gateway = await world.add_cpe("GW0001", profile="generic")
        await booted(world, gateway)
        await world.upload("generic-firmware-1.1.0.bin",
                           (FIXTURES / "generic-firmware-1.1.0.bin").read_bytes(),
                           oui="00D09E", product_class="EX-1000", version="1.1.0")
        await world.admin("PUT", "/groups/gateways", json={"devices": [device_id(gateway)]})
        status, batch = await world.admin("POST", "/batches", json={
            "group": "gateways", "original_version": "1.0.0", "file": "generic-firmware-1.1.0.bin",
            "new_version": "1.1.0"})
        assert status == 201
        await world.admin("POST", f"/batches/{batch['id']}/devices/{device_id(gateway)}/force")
        assert await world.run_until(lambda: gateway.software_version == "1.1.0", HOUR)
        device = (await world.admin("GET", f"/devices/{device_id(gateway)}"))[1]
        assert device["software_version"] == "1.1.0" and device["groups"] == ["gateways"]
        assert "InternetGatewayDevice.DeviceSummary" in device["parameters"]

    run_world(main)


def test_power_cut_during_an_accepted_download_reports_9010_after_boot(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        xml = await world.upload_mikrotik_upgrade()
        await world.admin("POST", "/actions/upgrade",
                          json={"devices": [device_id(cpe)], "file": xml, "delay_seconds": 600})
        assert await world.run_until(lambda: bool(cpe.nv.downloads_in_progress), HOUR)
        cut = asyncio.ensure_future(cpe.power_cut(off_seconds=60))
        assert await world.run_until(cut.done, HOUR)
        assert await world.run_until(lambda: events_of(world, cpe, "transfer-complete"), HOUR)
        detail = events_of(world, cpe, "transfer-complete")[0]["detail"]
        assert (detail["code"], detail["string"]) == (9010, "download interrupted by power loss")
        assert cpe.software_version == "6.48"

    run_world(main)


def test_dummy_npk_fixture_matches_its_generator():
    assert (FIXTURES / "routeros-x86-6.48.4.npk").read_bytes() == build_dummy_npk(
        "routeros-x86", "6.48.4")
