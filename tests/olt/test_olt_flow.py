"""The seed's flow end to end: firmware hosted, installation created, instruction over MQTT to the
gateway, blob downloaded (Range, resume, hashes), pushed into the device's slot by the field
procedure, progress and result reported with PATCH."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import pytest

from otaharness.protocols import olt

from olt_world import World, eventually, image, start_server


def statuses(installation: dict) -> list[str]:
    return [entry["status"] for entry in installation["history"]]


async def test_seed_device_type_is_accepted_verbatim(world: World, seed_type: dict) -> None:
    created = await world.api.ok("POST", "/v1/device-types", seed_type)
    fetched = await world.api.ok("GET", f"/v1/device-types/{created['id']}")
    assert {k: v for k, v in fetched.items() if k not in ("id", "createdAt")} == seed_type
    assert fetched["slots"] == {"firmware": {"name": "Test name"}}


@pytest.mark.parametrize("slot, size", [("firmware", 20_000), ("bootloader", 9_000),
                                        ("configuration", 700)])
async def test_install_into_each_slot_kind(world: World, slot: str, size: int) -> None:
    data = image(size, slot)
    firmware = await world.firmware(data, version=f"2.{size}", kind=slot)
    assert firmware["blob"]["size"] == size
    assert firmware["blob"]["hashes"] == {"sha256": hashlib.sha256(data).hexdigest(),
                                          "sha1": hashlib.sha1(data).hexdigest(),
                                          "md5": hashlib.md5(data).hexdigest()}
    assert firmware["links"]["download"] == f"{world.server.url}/v1/firmwares/{firmware['id']}/blob"

    installation = await world.install(firmware["id"], slot)
    assert installation["status"] == "scheduled" and "instructedAt" in installation
    done = await world.settled(installation["id"])

    assert done["status"] == "succeeded", done
    assert statuses(done) == ["scheduled", "downloading", "downloaded", "installing", "succeeded"]
    assert done["details"] == [f"{slot} slot now holds 2.{size}"]
    assert world.field_device.slots[slot].data == data
    assert world.field_device.slots[slot].version == f"2.{size}"
    device = await world.api.ok("GET", f"/v1/devices/{world.device['id']}")
    assert device["slots"][slot] == {"firmwareId": firmware["id"], "version": f"2.{size}",
                                     "installationId": installation["id"],
                                     "installedAt": done["updatedAt"]}
    # The field procedure: one Begin, ceil(size/2048) chunks in order, one Commit.
    chunks = [request for request in world.field_device.log if type(request).__name__ == "Chunk"]
    assert [c.offset for c in chunks] == list(range(0, size, 2048))


async def test_second_attach_is_locked_and_replacing_means_a_new_firmware(world: World) -> None:
    first = await world.firmware(image(4000, "v1"), version="1.0.0")
    for method in ("PUT", "POST"):
        status, body = await world.api.request(method, f"/v1/firmwares/{first['id']}/blob",
                                               raw=image(4000, "v2"))
        assert status == 423, body
        assert "create a new firmware" in body["errors"][0]["detail"]
    blob = await world.api.ok("GET", f"/v1/firmwares/{first['id']}/blob")
    assert blob == image(4000, "v1")

    # The documented way: a new firmware resource, installed; the old one deleted afterwards.
    second = await world.firmware(image(4000, "v2"), version="1.0.1")
    done = await world.settled((await world.install(second["id"]))["id"])
    assert done["status"] == "succeeded"
    await world.api.ok("DELETE", f"/v1/firmwares/{first['id']}")
    assert (await world.api.request("GET", f"/v1/firmwares/{first['id']}"))[0] == 404
    assert world.field_device.slots["firmware"].data == image(4000, "v2")


async def test_interrupted_upload_leaves_the_firmware_attachable(world: World) -> None:
    created = await world.api.ok("POST", "/v1/firmwares", {"name": "fw", "version": "1"})
    host, port = world.server.host, world.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"PUT /v1/firmwares/{created['id']}/blob HTTP/1.1\r\nHost: {host}\r\n"
                  f"Authorization: Bearer {world.api.token}\r\nContent-Length: 10000\r\n\r\n").encode()
                 + b"x" * 4000)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()  # the upload breaks off after 4000 of 10000 bytes
    await asyncio.sleep(0.1)
    firmware = await world.api.ok("GET", f"/v1/firmwares/{created['id']}")
    assert "blob" not in firmware and "links" not in firmware
    attached = await world.api.ok("PUT", f"/v1/firmwares/{created['id']}/blob", raw=b"y" * 10000)
    assert attached["blob"]["size"] == 10000


async def test_hash_mismatch_fails_the_installation_and_leaves_the_slot(world: World) -> None:
    world.link.flip_at = 1234  # corruption on the gateway's link
    firmware = await world.firmware(image(6000, "corrupt"))
    done = await world.settled((await world.install(firmware["id"]))["id"])
    assert done["status"] == "failed"
    assert statuses(done) == ["scheduled", "downloading", "failed"]
    assert done["details"][0].startswith(f"sha256 mismatch: expected {firmware['blob']['hashes']['sha256']}")
    assert "firmware" not in world.field_device.slots
    assert world.gateway.flash == {}  # the bad image is not kept


@pytest.mark.parametrize("step", ["begin", "chunk", "commit"])
async def test_device_refusal_fails_the_installation(world: World, step: str) -> None:
    world.field_device.refuse[step] = "battery low"
    firmware = await world.firmware(image(5000, "refused"))
    done = await world.settled((await world.install(firmware["id"]))["id"])
    assert done["status"] == "failed"
    assert statuses(done)[-2:] == ["installing", "failed"]
    assert done["details"] == [f"device refused at {step}: battery low"]
    assert "firmware" not in world.field_device.slots


async def test_device_refuses_an_image_larger_than_its_slot(world: World) -> None:
    world.field_device.slot_sizes["configuration"] = 100
    firmware = await world.firmware(image(500, "big config"))
    done = await world.settled((await world.install(firmware["id"], "configuration"))["id"])
    assert done["details"] == ["device refused at begin: configuration slot holds 100 bytes, not 500"]


async def test_download_cut_is_resumed_with_a_range_request(world: World) -> None:
    data = image(50_000, "resume")
    world.link.cut_after = 3000
    firmware = await world.firmware(data)
    done = await world.settled((await world.install(firmware["id"]))["id"])
    assert done["status"] == "succeeded", done
    first, second = world.link.blob_requests
    assert first == {}
    assert second["If-Range"] == f'"{hashlib.sha256(data).hexdigest()}"'
    resumed_at = int(second["Range"].removeprefix("bytes=").rstrip("-"))
    assert 3000 <= resumed_at < 50_000  # at least the bytes that got through are kept
    assert world.field_device.slots["firmware"].data == data


async def test_cancel_during_download(world: World) -> None:
    world.link.hold_after = 1000
    firmware = await world.firmware(image(30_000, "cancel"))
    installation = await world.install(firmware["id"])
    await asyncio.wait_for(world.link.holding.wait(), 5)
    assert (await world.installation(installation["id"]))["status"] == "downloading"

    canceled = await world.api.ok(
        "POST", f"/v1/devices/{world.device['id']}/firmware-installations/{installation['id']}/cancel",
        status=200)
    assert canceled["status"] == "canceled" and canceled["details"] == ["canceled by the tenant"]
    await eventually(lambda: world.gateway.results.get(installation["id"]) == "canceled")
    world.link.release.set()
    await world.gateway.wait_idle()
    assert "firmware" not in world.field_device.slots
    assert world.gateway.flash == {}
    # A late report from anyone is answered 410 Gone.
    gateway_api = await world.device_api()
    status, body = await gateway_api.request(
        "PATCH", f"/v1/devices/{world.device['id']}/firmware-installations/{installation['id']}",
        {"status": "downloaded"})
    assert status == 410 and body["errors"][0]["currentStatus"] == "canceled"
    assert statuses(await world.installation(installation["id"])) == ["scheduled", "downloading", "canceled"]


async def test_deleting_a_firmware_cancels_installations_not_yet_writing(world: World) -> None:
    world.link.hold_after = 500
    firmware = await world.firmware(image(20_000, "deleted"))
    installation = await world.install(firmware["id"])
    await asyncio.wait_for(world.link.holding.wait(), 5)
    await world.api.ok("DELETE", f"/v1/firmwares/{firmware['id']}")
    after = await world.installation(installation["id"])
    assert after["status"] == "canceled" and after["details"] == ["firmware deleted"]
    assert after["firmwareId"] == firmware["id"]  # the record keeps naming what it was
    await eventually(lambda: installation["id"] in world.gateway.results)
    world.link.release.set()
    await world.gateway.wait_idle()
    assert "firmware" not in world.field_device.slots


async def test_deleting_a_firmware_being_written_into_a_device_is_refused(world: World) -> None:
    world.field_device.write_delay = 0.05
    firmware = await world.firmware(image(40_000, "busy"))
    installation = await world.install(firmware["id"])
    await eventually(lambda: any(type(r).__name__ == "Begin" for r in world.field_device.log))
    status, body = await world.api.request("DELETE", f"/v1/firmwares/{firmware['id']}")
    assert status == 409 and installation["id"] in body["errors"][0]["detail"]
    status, body = await world.api.request(
        "POST", f"/v1/devices/{world.device['id']}/firmware-installations/{installation['id']}/cancel")
    assert status == 409 and body["errors"][0]["currentStatus"] == "installing"
    world.field_device.write_delay = 0.0
    assert (await world.settled(installation["id"]))["status"] == "succeeded"
    await world.api.ok("DELETE", f"/v1/firmwares/{firmware['id']}")  # now it may go


async def test_progress_is_reported_while_writing_the_device(world: World) -> None:
    world.field_device.write_delay = 0.02
    firmware = await world.firmware(image(16 * 2048, "progress"))
    installation = await world.install(firmware["id"])
    seen: set[tuple[int, int]] = set()

    async def watch() -> None:
        while installation["id"] not in world.gateway.results:
            current = await world.installation(installation["id"])
            if current["status"] == "installing" and "progress" in current:
                seen.add((current["progress"]["cnt"], current["progress"]["of"]))
            await asyncio.sleep(0.01)

    await asyncio.wait_for(watch(), 10)
    assert {(4 * 2048, 32768), (8 * 2048, 32768), (12 * 2048, 32768)} & seen, seen


async def test_a_second_active_installation_into_the_same_slot_conflicts(world: World) -> None:
    world.link.hold_after = 100
    firmware = await world.firmware(image(5000, "first"))
    first = await world.install(firmware["id"])
    status, body = await world.api.request(
        "POST", f"/v1/devices/{world.device['id']}/firmware-installations",
        {"firmwareId": firmware["id"], "slot": "firmware"})
    assert status == 409 and first["id"] in body["errors"][0]["detail"]
    world.link.release.set()
    assert (await world.settled(first["id"]))["status"] == "succeeded"


async def test_schedule_delays_the_instruction(world: World) -> None:
    firmware = await world.firmware(image(3000, "scheduled"))
    start_at = dt.datetime.fromtimestamp(world.clock.epoch() + 0.4, dt.UTC).isoformat()
    installation = await world.install(firmware["id"], schedule={"startAt": start_at})
    assert installation["status"] == "scheduled" and "instructedAt" not in installation
    gateway_api = await world.device_api()
    status, _ = await gateway_api.request(
        "PATCH", f"/v1/devices/{world.device['id']}/firmware-installations/{installation['id']}",
        {"status": "downloading"})
    assert status == 409  # not instructed yet
    await asyncio.sleep(0.2)
    assert world.gateway.results == {} and world.link.blob_requests == []
    done = await world.settled(installation["id"])
    assert done["status"] == "succeeded"
    instructed = dt.datetime.fromisoformat(done["instructedAt"])
    assert instructed > dt.datetime.fromisoformat(start_at) - dt.timedelta(milliseconds=1)  # ms stamps


async def test_maintenance_window_holds_the_write_until_it_opens(world: World) -> None:
    # Put "now" 0.5 s before the last 02:00 UTC (back in time, so tokens stay valid): the gateway
    # downloads at once and writes from 02:00.
    now = world.clock.epoch()
    target = now - now % 86400 + 2 * 3600 - 0.5
    world.clock.offset = (target if target < now else target - 86400) - now
    firmware = await world.firmware(image(3000, "window"))
    installation = await world.install(firmware["id"], maintenanceWindow={"start": "02:00", "end": "04:00"})
    await eventually(lambda: world.link.blob_requests)
    await asyncio.sleep(0.2)
    assert (await world.installation(installation["id"]))["status"] == "downloaded"
    gateway_api = await world.device_api()
    status, body = await gateway_api.request(
        "PATCH", f"/v1/devices/{world.device['id']}/firmware-installations/{installation['id']}",
        {"status": "installing"})
    assert status == 409 and "maintenance window" in body["errors"][0]["detail"]
    done = await world.settled(installation["id"])
    assert done["status"] == "succeeded"
    installing_at = next(e["at"] for e in done["history"] if e["status"] == "installing")
    assert installing_at[11:16] == "02:00"


async def test_gateway_power_cut_mid_download_resumes_from_flash(world: World) -> None:
    data = image(40_000, "power cut")
    world.link.hold_after = 8000
    firmware = await world.firmware(data)
    installation = await world.install(firmware["id"])
    await asyncio.wait_for(world.link.holding.wait(), 5)
    await asyncio.sleep(0.05)  # the 8000 bytes reach the gateway's flash
    world.link.hold_after = None
    await world.gateway.power_cut()  # recovers the active installation from the API
    world.link.release.set()
    done = await world.settled(installation["id"])
    assert done["status"] == "succeeded", done
    resumed = world.link.blob_requests[-1]
    assert resumed["Range"] == "bytes=8000-"
    assert world.field_device.slots["firmware"].data == data


async def test_instruction_missed_while_the_gateway_is_off_is_picked_up_at_boot(world: World) -> None:
    await world.gateway.stop()
    firmware = await world.firmware(image(6000, "offline"))
    installation = await world.install(firmware["id"])  # published to nobody (clean session)
    await asyncio.sleep(0.1)
    assert world.link.blob_requests == []
    await world.gateway.start()
    done = await world.settled(installation["id"])
    assert done["status"] == "succeeded"


async def test_gateway_reboot_while_writing_the_device_restarts_the_transfer(world: World) -> None:
    world.field_device.write_delay = 0.02
    data = image(20 * 2048, "reboot")
    firmware = await world.firmware(data)
    installation = await world.install(firmware["id"])
    await eventually(lambda: sum(type(r).__name__ == "Chunk" for r in world.field_device.log) >= 3)
    await world.gateway.reboot()
    world.field_device.write_delay = 0.0
    done = await world.settled(installation["id"])
    assert done["status"] == "succeeded", done
    assert statuses(done) == ["scheduled", "downloading", "downloaded", "installing", "succeeded"]
    begins = [r for r in world.field_device.log if type(r).__name__ == "Begin"]
    assert len(begins) == 2  # the transfer started over after the reboot
    assert len(world.link.blob_requests) == 1  # the image itself stayed in flash
    assert world.field_device.slots["firmware"].data == data


async def test_server_restart_loses_nothing(world: World, tmp_path) -> None:
    firmware = await world.firmware(image(7000, "restart"))
    start_at = dt.datetime.fromtimestamp(world.clock.epoch() + 0.6, dt.UTC).isoformat()
    installation = await world.install(firmware["id"], schedule={"startAt": start_at})
    token = world.api.token
    await world.server.stop()
    server, mqtt = await start_server(tmp_path / "olt.sqlite3", world.clock, world.broker, "olt-backend-2")
    world.extra.append(mqtt.disconnect)
    world.server = server
    world.api.base = server.url
    world.link.target = server.url
    assert (await world.api.ok("GET", f"/v1/firmwares/{firmware['id']}"))["blob"] == firmware["blob"]
    assert await world.api.ok("GET", f"/v1/firmwares/{firmware['id']}/blob") == image(7000, "restart")
    assert world.api.token == token  # the token survived too
    # The schedule was re-armed: the instruction still goes out and the flow completes.
    done = await world.settled(installation["id"])
    assert done["status"] == "succeeded"


async def test_actions_reach_the_device_and_events_come_back(world: World) -> None:
    async def raise_temperature(device, payload):
        device.attributes["temperature"] += payload["value"]
        await world.gateway.report(device.device_id, "attributes",
                                   {"temperature": device.attributes["temperature"]})
        return ("overheated", {}) if device.attributes["temperature"] > 60 else None

    world.field_device.actions["raiseTemperature"] = raise_temperature
    device_path = f"/v1/devices/{world.device['id']}"
    sent = await world.api.ok("POST", f"{device_path}/actions",
                              {"action": "raiseTemperature", "payload": {"value": 50},
                               "description": "stress test"})
    await eventually(lambda: world.field_device.attributes["temperature"] == 71.5)

    async def answered() -> dict:
        return await world.api.ok("GET", f"{device_path}/actions/{sent['actionId']}")

    for _ in range(200):
        action = await answered()
        if action["status"] == "answered":
            break
        await asyncio.sleep(0.01)
    assert action["status"] == "answered"
    events = await world.api.ok("GET", f"{device_path}/events")
    assert [(e["event"], e["actionId"]) for e in events] == [("overheated", sent["actionId"])]
    assert action["answeredBy"] == events[0]["id"]
    device = await world.api.ok("GET", device_path)
    assert device["attributes"]["temperature"] == 71.5
    series = await world.api.ok("GET", f"{device_path}/timeseries?path=$.attributes.temperature")
    assert [point["value"] for point in series] == [71.5]


async def test_configuration_goes_to_the_device_and_comes_back_as_a_report(world: World) -> None:
    device_path = f"/v1/devices/{world.device['id']}"
    changed = await world.api.ok("PATCH", device_path, {"configuration": {"brightness": 75}})
    assert changed["desiredConfiguration"] == {"brightness": 75}
    await eventually(lambda: world.field_device.configuration == {"brightness": 75})

    async def reported() -> bool:
        return (await world.api.ok("GET", device_path))["configuration"]["brightness"] == 75

    for _ in range(200):
        if await reported():
            break
        await asyncio.sleep(0.01)
    series = await world.api.ok("GET", f"{device_path}/timeseries?path=$.configuration.brightness")
    assert [point["value"] for point in series] == [75]


@pytest.mark.parametrize("report, why", [
    ({"humidity": 140}, "140 is greater than the maximum of 100"),
    ({"temperature": "warm"}, "'warm' is not of type 'number'"),
    ({"pressure": 1013}, "Additional properties are not allowed ('pressure' was unexpected)"),
])
async def test_reports_breaking_the_type_schema_are_rejected_whole(world: World, report: dict, why: str) -> None:
    device_path = f"/v1/devices/{world.device['id']}"
    await world.gateway.report(world.device["id"], "attributes", {"temperature": 30.0, **report})
    await eventually(lambda: world.gateway.errors)
    assert world.gateway.errors[0]["type"] == "attributes" and why in world.gateway.errors[0]["detail"]
    device = await world.api.ok("GET", device_path)
    assert device["attributes"] == {}  # the valid temperature in the same report was not taken
    assert why in device["lastRejectedReport"]["detail"]
    assert await world.api.ok("GET", f"{device_path}/timeseries?path=$.attributes.temperature") == []


async def test_undeclared_events_are_rejected(world: World) -> None:
    await world.gateway.send_event(world.device["id"], "exploded", {})
    await eventually(lambda: world.gateway.errors)
    assert "declares no event 'exploded'" in world.gateway.errors[0]["detail"]
    assert await world.api.ok("GET", f"/v1/devices/{world.device['id']}/events") == []


async def test_instruction_payload_and_topic(world: World) -> None:
    """The documented MQTT layout, seen by an independent subscriber."""
    from otaharness.runtime.mqtt import MqttClient

    spy = MqttClient("spy", world.broker.host, world.broker.port)
    await spy.connect()
    received: list[tuple[str, bytes]] = []
    spy.add_handler("devices/#", lambda topic, payload: received.append((topic, payload)))
    await spy.subscribe("devices/#")
    try:
        firmware = await world.firmware(image(1000, "spy"), version="9.9")
        installation = await world.install(firmware["id"], maintenanceWindow={"start": "00:00", "end": "23:59"})
        await world.settled(installation["id"])
        await eventually(lambda: received)
    finally:
        await spy.disconnect()
    topic, payload = received[0]
    assert topic == olt.installations_topic(world.device["id"])
    assert olt.decode_json_object(payload, topic) == {
        "operation": "install", "installationId": installation["id"], "deviceId": world.device["id"],
        "slot": "firmware", "maintenanceWindow": {"start": "00:00", "end": "23:59"},
        "firmware": {"id": firmware["id"], "name": "switch firmware", "version": "9.9", "size": 1000,
                     "hashes": firmware["blob"]["hashes"], "download": firmware["links"]["download"]}}
