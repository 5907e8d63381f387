"""Command layouts of the LoRaWAN FUOTA packages (TS003/TS004/TS005/TS006).

Byte strings come from the fact sheet (/work/shared/protocols/lorawan-fuota.md: worked
examples, the LoRaMac-node transcript) or are written out by hand from its tables.
"""

from __future__ import annotations

from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaharness.protocols.fuota import (
    CLOCK_SYNC,
    FIRMWARE_MANAGEMENT,
    FRAGMENTATION,
    MULTICAST_SETUP,
    PACKAGES_BY_FPORT,
    Command,
    FuotaCodecError,
    Package,
    PackageVersionAns,
    PackageVersionReq,
)
from otaharness.protocols.fuota import clock_sync as ts003
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005

DOWN, UP = "downlink", "uplink"

VECTORS: list[tuple[str, Package, str, Command, str]] = [
    # ---- TS005 remote multicast setup (FPort 200)
    ("ts005-version-req", MULTICAST_SETUP, DOWN, PackageVersionReq(), "00"),
    ("ts005-version-ans", MULTICAST_SETUP, UP, PackageVersionAns(package_identifier=2, package_version=1), "00 02 01"),
    ("mc-status-req", MULTICAST_SETUP, DOWN, ts005.McGroupStatusReq(req_group_mask=0b1111), "01 0f"),
    (
        "mc-status-ans",
        MULTICAST_SETUP,
        UP,
        ts005.McGroupStatusAns(
            ans_group_mask=0b0101,
            nb_total_groups=2,
            groups=(
                ts005.McGroupStatusEntry(mc_group_id=0, mc_addr=0x01020304),
                ts005.McGroupStatusEntry(mc_group_id=2, mc_addr=0x05060708),
            ),
        ),
        "01 25 00 04030201 02 08070605",
    ),
    ("mc-status-ans-empty", MULTICAST_SETUP, UP, ts005.McGroupStatusAns(ans_group_mask=0, nb_total_groups=4), "01 40"),
    (
        # fact sheet §1.1: chirpstack values, McKey_encrypted for McKey 01..10
        "mc-group-setup-req",
        MULTICAST_SETUP,
        DOWN,
        ts005.McGroupSetupReq(
            mc_group_id=0,
            mc_addr=0x01020304,
            mc_key_encrypted=bytes.fromhex("8fdb64eb7bd3bbd0e4fe56883ddbcc33"),
            min_mc_fcount=0,
            max_mc_fcount=0xFFFFFFFF,
        ),
        "02 00 04030201 8fdb64eb7bd3bbd0e4fe56883ddbcc33 00000000 ffffffff",
    ),
    ("mc-group-setup-ans-ok", MULTICAST_SETUP, UP, ts005.McGroupSetupAns(mc_group_id=1), "02 01"),
    ("mc-group-setup-ans-iderror", MULTICAST_SETUP, UP, ts005.McGroupSetupAns(mc_group_id=3, id_error=True), "02 07"),
    ("mc-group-delete-req", MULTICAST_SETUP, DOWN, ts005.McGroupDeleteReq(mc_group_id=2), "03 02"),
    (
        "mc-group-delete-ans",
        MULTICAST_SETUP,
        UP,
        ts005.McGroupDeleteAns(mc_group_id=2, mc_group_undefined=True),
        "03 06",
    ),
    (
        # 869.525 MHz → 8 695 250 × 100 Hz = 0x84ADD2 → D2 AD 84 (fact sheet §1)
        "mc-class-c-req",
        MULTICAST_SETUP,
        DOWN,
        ts005.McClassCSessionReq(mc_group_id=1, session_time=0x12345678, time_out=6, dl_frequency=8_695_250, dr=5),
        "04 01 78563412 06 d2ad84 05",
    ),
    (
        "mc-class-b-req",
        MULTICAST_SETUP,
        DOWN,
        ts005.McClassBSessionReq(
            mc_group_id=0, session_time=1, time_out=5, periodicity=3, dl_frequency=8_695_250, dr=3
        ),
        "05 00 01000000 35 d2ad84 03",
    ),
    ("mc-class-c-ans-ok", MULTICAST_SETUP, UP, ts005.McClassCSessionAns(mc_group_id=0, time_to_start=0x01020A), "04 00 0a0201"),
    (
        "mc-class-c-ans-errors",
        MULTICAST_SETUP,
        UP,
        ts005.McClassCSessionAns(mc_group_id=1, dr_error=True, freq_error=True),
        "04 0d",
    ),
    ("mc-class-c-ans-undefined", MULTICAST_SETUP, UP, ts005.McClassCSessionAns(mc_group_id=0, mc_group_undefined=True), "04 10"),
    ("mc-class-b-ans-ok", MULTICAST_SETUP, UP, ts005.McClassBSessionAns(mc_group_id=2, time_to_start=60), "05 02 3c0000"),
    # ---- TS004 fragmentation (FPort 201)
    ("ts004-version-ans", FRAGMENTATION, UP, PackageVersionAns(package_identifier=3, package_version=1), "00 03 01"),
    (
        # fact sheet §2 worked example
        "frag-setup-req",
        FRAGMENTATION,
        DOWN,
        ts004.FragSessionSetupReq(
            mc_group_bit_mask=0b0001,
            frag_index=0,
            nb_frag=20,
            frag_size=48,
            block_ack_delay=3,
            frag_algo=0,
            padding=13,
            descriptor=bytes.fromhex("01020304"),
        ),
        "02 01 1400 30 03 0d 01020304",
    ),
    (
        "frag-setup-req-bits",
        FRAGMENTATION,
        DOWN,
        ts004.FragSessionSetupReq(
            mc_group_bit_mask=0b1010,
            frag_index=3,
            nb_frag=0x0302,
            frag_size=219,
            block_ack_delay=7,
            frag_algo=1,
            padding=0,
            descriptor=b"\xff\x00\xff\x00",
        ),
        "02 3a 0203 db 0f 00 ff00ff00",
    ),
    ("frag-setup-ans-accepted", FRAGMENTATION, UP, ts004.FragSessionSetupAns(frag_index=0), "02 00"),
    (
        "frag-setup-ans-errors",
        FRAGMENTATION,
        UP,
        ts004.FragSessionSetupAns(frag_index=2, not_enough_memory=True, wrong_descriptor=True),
        "02 8a",
    ),
    ("frag-status-req", FRAGMENTATION, DOWN, ts004.FragSessionStatusReq(participants=True, frag_index=0), "01 01"),
    ("frag-status-req-index3", FRAGMENTATION, DOWN, ts004.FragSessionStatusReq(frag_index=3), "01 06"),
    (
        # LoRaMac-node transcript: last N = 25, MissingFrag 3
        "frag-status-ans",
        FRAGMENTATION,
        UP,
        ts004.FragSessionStatusAns(nb_frag_received=25, frag_index=0, missing_frag=3),
        "01 1900 03 00",
    ),
    (
        "frag-status-ans-index-memory",
        FRAGMENTATION,
        UP,
        ts004.FragSessionStatusAns(
            nb_frag_received=0x3FFF, frag_index=2, missing_frag=255, not_enough_matrix_memory=True
        ),
        "01 ffbf ff 01",
    ),
    ("frag-delete-req", FRAGMENTATION, DOWN, ts004.FragSessionDeleteReq(frag_index=1), "03 01"),
    ("frag-delete-ans-0", FRAGMENTATION, UP, ts004.FragSessionDeleteAns(frag_index=0, session_does_not_exist=True), "03 04"),
    ("frag-delete-ans-1", FRAGMENTATION, UP, ts004.FragSessionDeleteAns(frag_index=1, session_does_not_exist=True), "03 05"),
    (
        # M = 4 worked example, N = 5
        "data-fragment",
        FRAGMENTATION,
        DOWN,
        ts004.DataFragment(n=5, frag_index=0, payload=bytes.fromhex("0b090f09")),
        "08 0500 0b090f09",
    ),
    (
        "data-fragment-index-n",
        FRAGMENTATION,
        DOWN,
        ts004.DataFragment(n=0x3FFF, frag_index=3, payload=b"\x01"),
        "08 ffff 01",
    ),
    # ---- TS003 clock sync (FPort 202)
    ("ts003-version-ans", CLOCK_SYNC, UP, PackageVersionAns(package_identifier=1, package_version=1), "00 01 01"),
    (
        "app-time-req",
        CLOCK_SYNC,
        UP,
        ts003.AppTimeReq(device_time=0x4A3B2C1D, token_req=5, ans_required=True),
        "01 1d2c3b4a 15",
    ),
    ("app-time-req-plain", CLOCK_SYNC, UP, ts003.AppTimeReq(device_time=1, token_req=15), "01 01000000 0f"),
    ("app-time-ans-negative", CLOCK_SYNC, DOWN, ts003.AppTimeAns(time_correction=-2, token_ans=5), "01 feffffff 05"),
    ("app-time-ans-positive", CLOCK_SYNC, DOWN, ts003.AppTimeAns(time_correction=18, token_ans=0), "01 12000000 00"),
    ("periodicity-req", CLOCK_SYNC, DOWN, ts003.DeviceAppTimePeriodicityReq(period=10), "02 0a"),
    (
        "periodicity-ans",
        CLOCK_SYNC,
        UP,
        ts003.DeviceAppTimePeriodicityAns(not_supported=True, device_time=0x55667788),
        "02 01 88776655",
    ),
    ("force-resync", CLOCK_SYNC, DOWN, ts003.ForceDeviceResyncReq(nb_transmissions=3), "03 03"),
    # ---- TS006 firmware management (FPort 203)
    ("ts006-version-ans", FIRMWARE_MANAGEMENT, UP, PackageVersionAns(package_identifier=4, package_version=1), "00 04 01"),
    ("dev-version-req", FIRMWARE_MANAGEMENT, DOWN, ts006.DevVersionReq(), "01"),
    (
        "dev-version-ans",
        FIRMWARE_MANAGEMENT,
        UP,
        ts006.DevVersionAns(fw_version=0xCAFEBABE, hw_version=0x00123401),
        "01 bebafeca 01341200",
    ),
    ("reboot-time-req", FIRMWARE_MANAGEMENT, DOWN, ts006.DevRebootTimeReq(reboot_time=0x53724E00), "02 004e7253"),
    ("reboot-time-cancel", FIRMWARE_MANAGEMENT, DOWN, ts006.DevRebootTimeReq(reboot_time=0xFFFFFFFF), "02 ffffffff"),
    ("reboot-time-ans", FIRMWARE_MANAGEMENT, UP, ts006.DevRebootTimeAns(reboot_time=3600), "02 100e0000"),
    ("reboot-countdown-req", FIRMWARE_MANAGEMENT, DOWN, ts006.DevRebootCountdownReq(countdown=60), "03 3c0000"),
    ("reboot-countdown-cancel", FIRMWARE_MANAGEMENT, DOWN, ts006.DevRebootCountdownReq(countdown=0xFFFFFF), "03 ffffff"),
    ("reboot-countdown-ans", FIRMWARE_MANAGEMENT, UP, ts006.DevRebootCountdownAns(countdown=0xFFFFFE), "03 feffff"),
    ("upgrade-image-req", FIRMWARE_MANAGEMENT, DOWN, ts006.DevUpgradeImageReq(), "04"),
    (
        "upgrade-image-valid",
        FIRMWARE_MANAGEMENT,
        UP,
        ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.VALID, next_firmware_version=0x00040201),
        "04 03 01020400",
    ),
    ("upgrade-image-none", FIRMWARE_MANAGEMENT, UP, ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.NO_IMAGE), "04 00"),
    (
        "upgrade-image-corrupt",
        FIRMWARE_MANAGEMENT,
        UP,
        ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.CORRUPT_OR_BAD_SIGNATURE),
        "04 01",
    ),
    (
        "upgrade-image-wrong-hw",
        FIRMWARE_MANAGEMENT,
        UP,
        ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.WRONG_HARDWARE),
        "04 02",
    ),
    ("delete-image-req", FIRMWARE_MANAGEMENT, DOWN, ts006.DevDeleteImageReq(firmware_to_delete_version=0x00030201), "05 01020300"),
    # each error bit on its own (brocaar's marshal writes ErrorNoValidImage into both)
    ("delete-image-no-image", FIRMWARE_MANAGEMENT, UP, ts006.DevDeleteImageAns(error_no_valid_image=True), "05 01"),
    ("delete-image-bad-version", FIRMWARE_MANAGEMENT, UP, ts006.DevDeleteImageAns(error_invalid_version=True), "05 02"),
    ("delete-image-ok", FIRMWARE_MANAGEMENT, UP, ts006.DevDeleteImageAns(), "05 00"),
]


def _parse(package: Package, direction: str, data: bytes) -> list[Command]:
    return package.parse_downlink(data) if direction == DOWN else package.parse_uplink(data)


@pytest.mark.parametrize(("package", "direction", "command", "wire"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_command_encodes_to_the_table_layout(package: Package, direction: str, command: Command, wire: str) -> None:
    assert command.to_bytes() == bytes.fromhex(wire)


@pytest.mark.parametrize(("package", "direction", "command", "wire"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_command_parses_from_the_table_layout(package: Package, direction: str, command: Command, wire: str) -> None:
    assert _parse(package, direction, bytes.fromhex(wire)) == [command]


def test_every_command_of_every_package_has_a_vector() -> None:
    covered = {(id(v[1]), v[2], type(v[3])) for v in VECTORS}
    for package in PACKAGES_BY_FPORT.values():
        for direction, table in ((DOWN, package.downlink_commands), (UP, package.uplink_commands)):
            for command_type in table:
                if command_type is PackageVersionReq and package is not MULTICAST_SETUP:
                    continue  # the same class and octet in every package
                assert (id(package), direction, command_type) in covered, (package.name, direction, command_type)


def test_package_identity_matches_the_sheet() -> None:
    assert {p.fport: (p.identifier, p.version) for p in PACKAGES_BY_FPORT.values()} == {
        200: (2, 1),
        201: (3, 1),
        202: (1, 1),
        203: (4, 1),
    }
    assert FRAGMENTATION.version_answer().to_bytes() == bytes.fromhex("000301")


def test_concatenated_commands_are_all_parsed_in_order() -> None:
    downlink = bytes.fromhex("00" "02 01 1400 30 03 0d 01020304" "01 01")
    assert [type(c) for c in FRAGMENTATION.parse_downlink(downlink)] == [
        PackageVersionReq,
        ts004.FragSessionSetupReq,
        ts004.FragSessionStatusReq,
    ]
    # variable-length answers: 1-octet error then 4-octet success, then a 5-record status
    uplink = bytes.fromhex("04 14" "05 00 0a0000" "02 00")
    answers = MULTICAST_SETUP.parse_uplink(uplink)
    assert answers == [
        ts005.McClassCSessionAns(mc_group_id=0, dr_error=True, mc_group_undefined=True),
        ts005.McClassBSessionAns(mc_group_id=0, time_to_start=10),
        ts005.McGroupSetupAns(mc_group_id=0),
    ]
    assert Package.encode(answers) == uplink


def test_rfu_bits_are_ignored_when_parsing() -> None:
    (answer,) = FRAGMENTATION.parse_uplink(bytes.fromhex("02 30"))  # bits 5:4 RFU
    assert answer == ts004.FragSessionSetupAns(frag_index=0)
    (request,) = MULTICAST_SETUP.parse_downlink(bytes.fromhex("03 fd"))
    assert request == ts005.McGroupDeleteReq(mc_group_id=1)


def test_data_fragment_takes_the_rest_of_the_frame() -> None:
    (fragment,) = FRAGMENTATION.parse_downlink(bytes.fromhex("08 0a40") + bytes(range(48)))
    assert (fragment.n, fragment.frag_index, fragment.payload) == (10, 1, bytes(range(48)))


def test_derived_properties() -> None:
    setup = FRAGMENTATION.parse_downlink(bytes.fromhex("02 01 1400 30 03 0d 01020304"))[0]
    assert setup.data_block_size == 947  # 20 × 48 − 13, the transcript's OnDone size
    assert setup.block_ack_delay_max_seconds == 128
    session = MULTICAST_SETUP.parse_downlink(bytes.fromhex("04 01 78563412 06 d2ad84 05"))[0]
    assert (session.frequency_hz, session.session_timeout_seconds) == (869_525_000, 64)
    assert ts003.DeviceAppTimePeriodicityReq(period=0).periodicity_seconds == 128
    assert ts003.DeviceAppTimePeriodicityReq(period=3).periodicity_seconds == 1024
    assert ts006.DevRebootTimeReq(reboot_time=ts006.REBOOT_TIME_CANCEL).is_cancel
    assert not ts006.DevRebootTimeReq(reboot_time=ts006.REBOOT_TIME_NOW).is_cancel
    assert ts006.DevRebootCountdownReq(countdown=ts006.COUNTDOWN_CANCEL).is_cancel
    assert ts004.FragSessionSetupAns(frag_index=1).accepted
    assert not ts004.FragSessionSetupAns(frag_index=1, encoding_unsupported=True).accepted
    assert ts005.McClassCSessionAns(mc_group_id=0, time_to_start=0).accepted
    assert not ts005.McClassCSessionAns(mc_group_id=0, freq_error=True).accepted
    (image,) = FIRMWARE_MANAGEMENT.parse_uplink(bytes.fromhex("04 03 01020400"))
    assert image.up_image_status is ts006.UpImageStatus.VALID


def test_only_data_fragment_and_status_request_may_come_by_multicast() -> None:
    allowed = {
        command
        for package in PACKAGES_BY_FPORT.values()
        for command in package.downlink_commands + package.uplink_commands
        if command.MULTICAST_ALLOWED
    }
    assert allowed == {ts004.DataFragment, ts004.FragSessionStatusReq}


@pytest.mark.parametrize(
    ("server", "device", "correction"),
    [
        (1_400_000_010, 1_400_000_000, 10),
        (1_400_000_000, 1_400_000_010, -10),
        (5, 0xFFFFFFFB, 10),  # the device counter wrapped mod 2^32 before the server's
        (0xFFFFFFFB, 5, -10),
    ],
)
def test_time_correction_is_signed_and_wraps(server: int, device: int, correction: int) -> None:
    request = ts003.AppTimeReq(device_time=device, token_req=9)
    answer = ts003.answer_app_time(request, server)
    assert answer == ts003.AppTimeAns(time_correction=correction, token_ans=9)
    assert ts003.corrected_device_time(device, answer.time_correction) == server % (1 << 32)


# --------------------------------------------------------------------------- errors

ERRORS = [
    ("empty", FRAGMENTATION, DOWN, ""),
    ("unknown-cid-ts004-down", FRAGMENTATION, DOWN, "07 00"),
    ("data-fragment-is-downlink-only", FRAGMENTATION, UP, "08 0100 aa"),
    ("unknown-cid-ts005-up", MULTICAST_SETUP, UP, "06 00"),
    ("unknown-cid-ts003-up", CLOCK_SYNC, UP, "03 01"),  # ForceDeviceResync has no answer
    ("unknown-cid-ts006-down", FIRMWARE_MANAGEMENT, DOWN, "06"),  # Actility DevRegisterReq
    ("short-version-ans", FRAGMENTATION, UP, "00 03"),
    ("short-status-ans", FRAGMENTATION, UP, "01 1900 03"),
    ("short-setup-req", FRAGMENTATION, DOWN, "02 01 1400 30 03 0d 010203"),
    ("short-data-fragment", FRAGMENTATION, DOWN, "08 05"),
    ("short-mc-setup-req", MULTICAST_SETUP, DOWN, "02 00 04030201" + "00" * 16),
    ("class-c-ok-without-time", MULTICAST_SETUP, UP, "04 00 0a00"),
    ("status-ans-missing-record", MULTICAST_SETUP, UP, "01 23 00 04030201"),
    ("short-app-time-req", CLOCK_SYNC, UP, "01 01020304"),
    ("short-periodicity-ans", CLOCK_SYNC, UP, "02 01 01020304"[:-2]),
    ("upgrade-valid-without-version", FIRMWARE_MANAGEMENT, UP, "04 03 010204"),
    ("short-countdown", FIRMWARE_MANAGEMENT, DOWN, "03 3c00"),
    ("trailing-garbage", FIRMWARE_MANAGEMENT, UP, "05 00 ff"),
]


@pytest.mark.parametrize(("package", "direction", "wire"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_malformed_frames_raise_the_package_error(package: Package, direction: str, wire: str) -> None:
    with pytest.raises(FuotaCodecError) as raised:
        _parse(package, direction, bytes.fromhex(wire))
    assert isinstance(raised.value, ValueError)
    assert str(raised.value)


def test_error_messages_say_what_is_wrong() -> None:
    with pytest.raises(FuotaCodecError, match=r"FragSessionStatusAns .*needs 4 payload octets, got 3"):
        FRAGMENTATION.parse_uplink(bytes.fromhex("01 1900 03"))
    with pytest.raises(FuotaCodecError, match=r"unknown downlink CID 0x07 at octet 2"):
        FRAGMENTATION.parse_downlink(bytes.fromhex("03 00 07"))
    with pytest.raises(FuotaCodecError, match="must be bytes"):
        FRAGMENTATION.parse_uplink("0203")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: ts005.McGroupSetupAns(mc_group_id=4),
        lambda: ts005.McGroupSetupReq(
            mc_group_id=0, mc_addr=1, mc_key_encrypted=bytes(15), min_mc_fcount=0, max_mc_fcount=1
        ),
        lambda: ts005.McGroupSetupReq(
            mc_group_id=0, mc_addr=1 << 32, mc_key_encrypted=bytes(16), min_mc_fcount=0, max_mc_fcount=1
        ),
        lambda: ts005.McClassCSessionAns(mc_group_id=0),  # success needs TimeToStart
        lambda: ts005.McClassCSessionAns(mc_group_id=0, dr_error=True, time_to_start=3),
        lambda: ts005.McClassCSessionReq(mc_group_id=0, session_time=0, time_out=16, dl_frequency=0, dr=0),
        lambda: ts005.McGroupStatusAns(ans_group_mask=0b11, nb_total_groups=2),
        lambda: ts005.McGroupStatusAns(ans_group_mask=0, nb_total_groups=5),
        lambda: ts004.DataFragment(n=0x4000, frag_index=0, payload=b""),
        lambda: ts004.FragSessionStatusReq(participants=1, frag_index=0),  # not a bool
        lambda: ts003.AppTimeAns(time_correction=1 << 31, token_ans=0),
        lambda: ts003.AppTimeReq(device_time=-1, token_req=0),
        lambda: ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.VALID),
        lambda: ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.NO_IMAGE, next_firmware_version=1),
        lambda: ts006.DevRebootCountdownReq(countdown=1 << 24),
    ],
)
def test_out_of_range_fields_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(FuotaCodecError):
        build()


@settings(max_examples=300, deadline=None)
@given(
    package=st.sampled_from(list(PACKAGES_BY_FPORT.values())),
    direction=st.sampled_from([DOWN, UP]),
    data=st.binary(max_size=40),
)
def test_arbitrary_bytes_parse_or_raise_the_package_error(package: Package, direction: str, data: bytes) -> None:
    try:
        commands = _parse(package, direction, data)
    except FuotaCodecError:
        return
    # Whatever parses re-encodes to something that parses to the same commands (RFU bits dropped).
    assert _parse(package, direction, Package.encode(commands)) == commands
