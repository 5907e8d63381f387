"""Recorded quirks of real CPEs (fact sheet §7, §8, §11): each still completes a Download and
its TransferComplete, correlated by CommandKey; what the ACS sends stays schema-valid."""

from __future__ import annotations

import asyncio

import pytest
from lxml import etree
from tr069_world import HOUR, World, booted, device_id, events_of

from otaharness.protocols.cwmp import CWMP_1_0
from otaharness.servers.tr069 import AcsConfig
from otaharness.emulators.cpe.quirks import Quirks

CREDENTIALS = {"username": "cpe", "password": "secret"}
QUIRKS = {
    "times before FaultStruct": (Quirks(times_before_fault=True), AcsConfig()),
    "TransferComplete without its events": (Quirks(transfer_complete_events="none"), AcsConfig()),
    "M Download with an empty CommandKey": (Quirks(transfer_complete_events="empty-key"),
                                            AcsConfig()),
    "cookies echoed with attributes": (Quirks(cookies="echo-attributes"), AcsConfig()),
    "no cookies at all": (Quirks(cookies="none"), AcsConfig()),
    "preemptive Basic auth": (Quirks(preemptive_basic=True),
                              AcsConfig(auth_mode="any", users={"cpe": "secret"})),
    # cwmp-sim: through the per-device allowance (its serial number pattern), never a global one.
    "Digest with a constant nonce count": (Quirks(fixed_nonce_count=True),
                                           AcsConfig(auth_mode="digest", users={"cpe": "secret"},
                                                     nc_reuse_devices=("serial:CHR000?",))),
    "overlapping sessions after a connection request": (Quirks(overlapping_sessions=True),
                                                        AcsConfig()),
}
# Evidence that the quirk was really exercised.
CHECKS = {
    "TransferComplete without its events": lambda cpe, world: not any(
        "7 TRANSFER COMPLETE" in inform for inform in cpe.informs),
    "M Download with an empty CommandKey": lambda cpe, world: ["M Download", ""] in [
        event for e in events_of(world, cpe, "inform") for event in e["detail"]["events"]],
    "cookies echoed with attributes": lambda cpe, world: "Path=/" in cpe.credentials.cookie_header,
    "no cookies at all": lambda cpe, world: cpe.credentials.cookie_header == "",
    "preemptive Basic auth": lambda cpe, world: not cpe.credentials.digest.has_challenge,
    "Digest with a constant nonce count": lambda cpe, world: cpe.credentials.digest.has_challenge,
    "overlapping sessions after a connection request": lambda cpe, world: (
        cpe.overlapping_sessions == 1),
}
SCHEMA_BREAKING = {"times before FaultStruct"}  # the CPE's own TransferComplete is invalid


@pytest.mark.parametrize("name", QUIRKS)
def test_quirky_cpe_completes_download_and_transfer_complete(run_world, name):
    quirks, config = QUIRKS[name]

    tasks: list[asyncio.Future[bool]] = []

    async def main(world: World) -> None:
        await world.start(config)
        cpe = await world.add_cpe("CHR0001", quirks=quirks, **(
            CREDENTIALS if config.auth_mode != "none" else {}))
        await booted(world, cpe)
        await world.upload("branding.tar", b"web content " * 100, "2 Web Content")
        status, answer = await world.admin("POST", "/actions/upgrade", json={
            "devices": [device_id(cpe)], "file": "branding.tar"})
        assert status == 202 and answer == {"connection_request": {device_id(cpe): True}}
        if quirks.overlapping_sessions:
            # A second Connection Request while the TransferComplete session runs.
            acs = world.acs.acs
            receive = acs.transfer_complete

            def and_connection_request(device, message):  # type: ignore[no-untyped-def]
                receive(device, message)
                tasks.append(asyncio.ensure_future(acs.connection_request(device)))

            acs.transfer_complete = and_connection_request  # type: ignore[method-assign]
        # (genieacs-sim sends it with its next periodic Inform, up to an hour later)
        assert await world.run_until(lambda: bool(events_of(world, cpe, "transfer-complete")),
                                     2 * HOUR)
        await world.clock.run_for(60)
        (task,) = world.acs.store.tasks(device_id=device_id(cpe))
        assert task["state"] == "done"
        assert task["result"] == {"transfer_complete": {"code": 0, "string": ""}}
        assert cpe.nv.files["2 Web Content"] == ("branding.tar", b"web content " * 100)
        assert not cpe.nv.transfers  # acknowledged
        assert await asyncio.gather(*tasks) == [True] * len(tasks)
        check = CHECKS.get(name)
        assert check is None or check(cpe, world), name
        # Every session kept to one keep-alive connection and ended with the empty 204.
        ends = [e["detail"] for e in events_of(world, cpe, "session-end")]
        assert ends and all(e["reason"] == "done" and e["connections"] == 1 for e in ends), ends
        if name in SCHEMA_BREAKING:
            world.schema_checked_sides = ("acs",)

    run_world(main)


def test_times_before_fault_struct_is_really_sent_out_of_order(run_world, cwmp_schemas):
    """The quirk test above would prove nothing if the bytes were in schema order."""

    async def main(world: World) -> list[bytes]:
        world.schema_checked_sides = ("acs",)
        await world.start()
        cpe = await world.add_cpe("CHR0001", quirks=Quirks(times_before_fault=True))
        await booted(world, cpe)
        await world.upload("tones.bin", b"\x01\x02", "4 Tone File")
        await world.admin("POST", "/actions/upgrade", json={"devices": [device_id(cpe)],
                                                            "file": "tones.bin"})
        assert await world.run_until(lambda: bool(events_of(world, cpe, "transfer-complete")), HOUR)
        return [data for side, data in world.messages
                if side == "cpe" and b"TransferComplete>" in data]

    (transfer_complete,) = run_world(main)
    node = next(n for n in etree.fromstring(transfer_complete).iter()
                if etree.QName(n).localname == "TransferComplete")
    assert [c.tag for c in node] == ["CommandKey", "StartTime", "CompleteTime", "FaultStruct"]
    assert not cwmp_schemas["1-2"].validate(etree.fromstring(transfer_complete))


def test_cwmp_1_0_cpe_reports_a_corrupt_file_as_9010(run_world):
    """cwmp-1-0.xsd allows only 9001/9002/9010-9012 in TransferComplete: 9018 becomes 9010."""

    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001", namespace=CWMP_1_0)
        await booted(world, cpe)
        xml = await world.upload_mikrotik_upgrade()
        await world.upload("routeros-x86-6.48.4.npk", b"not a package")
        await world.admin("POST", "/actions/upgrade", json={"devices": [device_id(cpe)],
                                                            "file": xml})
        assert await world.run_until(lambda: bool(events_of(world, cpe, "transfer-complete")), HOUR)
        detail = events_of(world, cpe, "transfer-complete")[0]["detail"]
        assert detail["code"] == 9010 and "File corrupted" in detail["string"]
        assert world.messages and all(CWMP_1_0.encode() in data for _, data in world.messages)

    run_world(main)
