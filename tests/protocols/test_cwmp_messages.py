"""CWMP codec: every message either side emits round-trips and validates against the BBF schemas."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from otaharness.protocols.cwmp import (
    CWMP_1_0,
    CWMP_1_1,
    CWMP_1_2,
    CWMP_1_3,
    DOWNLOAD_FILE_TYPES,
    FAULT_CODES,
    FIRMWARE_UPGRADE_IMAGE,
    RPCS,
    TRANSFER_COMPLETE_FAULT_CODES,
    UNKNOWN_TIME,
    WINDOW_AT_ANY_TIME,
    WINDOW_WHEN_IDLE,
    AutonomousTransferComplete,
    AutonomousTransferCompleteResponse,
    DeviceIdStruct,
    Download,
    DownloadResponse,
    Envelope,
    EventStruct,
    Fault,
    GetParameterValues,
    GetParameterValuesResponse,
    GetRPCMethods,
    GetRPCMethodsResponse,
    Header,
    Inform,
    InformResponse,
    InvalidArguments,
    ParameterValueStruct,
    Reboot,
    RebootResponse,
    ScheduleDownload,
    ScheduleDownloadResponse,
    SetParameterValues,
    SetParameterValuesFault,
    SetParameterValuesResponse,
    TimeWindowStruct,
    TransferComplete,
    TransferCompleteFaultStruct,
    TransferCompleteResponse,
    build_envelope,
    fault_meaning,
    format_datetime,
    is_transfer_complete_fault_code,
    parse_datetime,
    parse_envelope,
    vendor_file_type,
)
from otaharness.protocols.cwmp.schemas import SchemasUnavailable, load_schemas, validation_errors

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT.parent / "shared" / "schemas" / "cwmp"

T0 = datetime(2026, 11, 22, 14, 12, 17, 565000, tzinfo=timezone.utc)
T1 = T0 + timedelta(seconds=2, milliseconds=13)
DEVICE = DeviceIdStruct(
    manufacturer="Huawei Technologies Co., Ltd.",
    oui="202BC1",
    product_class="BM632w",
    serial_number="000000",
)
SOFTWARE_VERSION = "InternetGatewayDevice.DeviceInfo.SoftwareVersion"


def messages_for(namespace: str) -> list[Envelope]:
    """Every message an ACS or a CPE emulator sends, in the namespace's schema."""
    ack = Header(id="4dwk1snb")
    bodies = [
        Inform(
            device_id=DEVICE,
            event=(
                EventStruct(event_code="1 BOOT"),
                EventStruct(event_code="7 TRANSFER COMPLETE"),
                EventStruct(event_code="M Download", command_key="fwbatch-1"),
                EventStruct(event_code="4 VALUE CHANGE"),
            ),
            current_time=T0,
            parameter_list=(
                ParameterValueStruct(name=SOFTWARE_VERSION, value="V100R001IRQC56B017"),
                ParameterValueStruct(
                    name="InternetGatewayDevice.ManagementServer.PeriodicInformInterval",
                    value="300",
                    value_type="xsd:unsignedInt",
                ),
                ParameterValueStruct(
                    name="InternetGatewayDevice.ManagementServer.PeriodicInformEnable",
                    value="true",
                    value_type="xsd:boolean",
                ),
                ParameterValueStruct(
                    name="InternetGatewayDevice.DeviceInfo.FirstUseDate",
                    value="0001-01-01T00:00:00Z",
                    value_type="xsd:dateTime",
                ),
            ),
        ),
        InformResponse(),
        TransferComplete(command_key="fwbatch-1", start_time=T0, complete_time=T1),
        TransferComplete(
            command_key="fwbatch-2",
            fault_struct=TransferCompleteFaultStruct(
                fault_code=9010 if namespace == CWMP_1_0 else 9016,  # 9016 arrived with cwmp-1-1
                fault_string="Unexpected response 404",
            ),
            start_time=UNKNOWN_TIME,
            complete_time=UNKNOWN_TIME,
        ),
        TransferCompleteResponse(),
        GetRPCMethods(),
        GetRPCMethodsResponse(method_list=("Inform", "TransferComplete", "GetRPCMethods")),
        Download(
            command_key="fwbatch-1",
            file_type=FIRMWARE_UPGRADE_IMAGE,
            url="http://127.0.0.1:17567/fw.bin",
            username="u",
            password="p",
            file_size=200000,
            target_file_name="fw.bin",
        ),
        Download(
            command_key="cfg-1",
            file_type="3 Vendor Configuration File",
            url="https://acs.invalid/x.alter",
            delay_seconds=30,
            success_url="https://acs.invalid/ok",
            failure_url="https://acs.invalid/fail",
        ),
        DownloadResponse(status=1),
        DownloadResponse(status=0, start_time=T0, complete_time=T1),
        Reboot(command_key="reboot-1"),
        RebootResponse(),
        GetParameterValues(parameter_names=(SOFTWARE_VERSION, "InternetGatewayDevice.DeviceInfo.")),
        GetParameterValuesResponse(
            parameter_list=(ParameterValueStruct(name=SOFTWARE_VERSION, value="7.12.1"),)
        ),
        SetParameterValues(
            parameter_list=(
                ParameterValueStruct(
                    name="Device.ManagementServer.PeriodicInformInterval",
                    value="60",
                    value_type="xsd:unsignedInt",
                ),
            ),
            parameter_key="spv-1",
        ),
        SetParameterValuesResponse(status=0),
        Fault(fault_code=9000, fault_string="Method not supported"),
        Fault(
            fault_code=9003,
            fault_string="Invalid arguments",
            set_parameter_values_fault=(
                SetParameterValuesFault(
                    parameter_name="Device.DeviceInfo.SoftwareVersion",
                    fault_code=9008,
                    fault_string="Attempt to set a non-writable parameter",
                ),
            ),
        ),
        Fault(fault_code=8005, fault_string="Retry request"),
    ]
    if namespace != CWMP_1_0:
        bodies += [
            AutonomousTransferComplete(
                transfer_url="http://127.0.0.1:17567/fw.bin",
                is_download=True,
                file_type=FIRMWARE_UPGRADE_IMAGE,
                file_size=200000,
                start_time=T0,
                complete_time=T1,
            ),
            AutonomousTransferCompleteResponse(),
        ]
    if namespace == CWMP_1_2:
        bodies += [
            ScheduleDownload(
                command_key="sched-1",
                file_type=FIRMWARE_UPGRADE_IMAGE,
                url="http://127.0.0.1:17567/fw.bin",
                time_window_list=(
                    TimeWindowStruct(window_start=0, window_end=3600, window_mode=WINDOW_AT_ANY_TIME),
                    TimeWindowStruct(
                        window_start=7200,
                        window_end=10800,
                        window_mode=WINDOW_WHEN_IDLE,
                        user_message="Upgrade tonight",
                        max_retries=-1,
                    ),
                ),
            ),
            ScheduleDownloadResponse(),
        ]
    return [Envelope(body=body, header=ack, namespace=namespace) for body in bodies]


NAMESPACES = (CWMP_1_0, CWMP_1_1, CWMP_1_2)
ALL_MESSAGES = [envelope for namespace in NAMESPACES for envelope in messages_for(namespace)]


def _message_id(envelope: Envelope) -> str:
    return f"{envelope.namespace[-3:]}-{envelope.body.TYPE_NAME}"


# --- BBF schema validation ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def schemas() -> dict[str, etree.XMLSchema]:
    """One validator per schema file (otaharness.protocols.cwmp.schemas)."""
    try:
        return load_schemas(SCHEMA_DIR)
    except SchemasUnavailable as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}; CI must provide it")
        pytest.skip(str(missing))


@pytest.mark.parametrize("envelope", ALL_MESSAGES, ids=_message_id)
def test_emitted_message_is_valid_against_bbf_schema(schemas, envelope: Envelope) -> None:
    problems = validation_errors(schemas, etree.fromstring(build_envelope(envelope)))
    assert not problems, problems


def test_schema_check_catches_the_simulators_element_order(schemas) -> None:
    """Guard that validation bites: genieacs-sim's TransferComplete (times first) is invalid."""
    quirky = _envelope(
        "<cwmp:TransferComplete><CommandKey>fwbatch-1</CommandKey>"
        "<StartTime>2026-11-22T14:12:17.565Z</StartTime><CompleteTime>2026-11-22T14:12:19.578Z</CompleteTime>"
        "<FaultStruct><FaultCode>0</FaultCode><FaultString/></FaultStruct></cwmp:TransferComplete>"
    )
    assert not schemas["1-0"].validate(etree.fromstring(quirky))
    # ... while the same content as we emit it is valid.
    ours = build_envelope(parse_envelope(quirky))
    assert schemas["1-0"].validate(etree.fromstring(ours)), schemas["1-0"].error_log


def test_session_timeout_and_version_headers_valid_for_cwmp_1_4(schemas) -> None:
    envelope = Envelope(
        body=InformResponse(),
        header=Header(id="1", hold_requests=False, session_timeout=60,
                      supported_cwmp_versions="1.0,1.1,1.2,1.3,1.4", use_cwmp_version="1.4"),
        namespace=CWMP_1_2,
    )
    assert schemas["1-4"].validate(etree.fromstring(build_envelope(envelope))), schemas["1-4"].error_log


def test_fault_code_table_matches_schema_annotations(schemas) -> None:
    xsd = etree.parse(str(SCHEMA_DIR / "cwmp-1-2.xsd"))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    documented = "".join(
        xsd.xpath("//xs:simpleType[@name='CPEFaultCodeType']//xs:documentation/text()", namespaces=ns)
    )
    listed = {int(line.split("-")[0].strip(" *")) for line in documented.splitlines() if line.strip().startswith("* 9")}
    assert listed == {code for code in FAULT_CODES if code >= 9000}
    enumerated = xsd.xpath(
        "//xs:simpleType[@name='TransferCompleteCPEFaultCodeType']//xs:enumeration/@value", namespaces=ns
    )
    assert {int(value) for value in enumerated} == TRANSFER_COMPLETE_FAULT_CODES


# --- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("envelope", ALL_MESSAGES, ids=_message_id)
def test_round_trip(envelope: Envelope) -> None:
    assert parse_envelope(build_envelope(envelope), strict=True) == envelope


def test_every_rpc_is_in_the_catalogue_and_dispatch_table() -> None:
    emitted = {envelope.body.TYPE_NAME for envelope in ALL_MESSAGES}
    assert emitted == set(RPCS) | {"Fault"}


def test_reply_echoes_id_and_namespace_of_stray_cwmp_1_3() -> None:
    request = Envelope(body=InformResponse(), header=Header(id="x-7"), namespace=CWMP_1_3)
    answer = parse_envelope(build_envelope(request)).reply(TransferCompleteResponse())
    assert (answer.header.id, answer.namespace) == ("x-7", CWMP_1_3)
    assert b'xmlns:cwmp="urn:dslforum-org:cwmp-1-3"' in build_envelope(answer)


@pytest.mark.parametrize(
    "file_type", [*DOWNLOAD_FILE_TYPES, vendor_file_type("00D09E", "Modem Image"), "X MIKROTIK Factory Configuration File"]
)
def test_download_accepts_every_file_type(file_type: str) -> None:
    download = Download(command_key="k", file_type=file_type, url="http://h/f")
    assert parse_envelope(build_envelope(Envelope(body=download))).body == download


def test_header_entries_round_trip() -> None:
    header = Header(id="abc", hold_requests=True, no_more_requests=True, session_timeout=30,
                    supported_cwmp_versions="1.0,1.4", use_cwmp_version="1.4")
    data = build_envelope(Envelope(body=GetRPCMethods(), header=header, namespace=CWMP_1_2))
    assert parse_envelope(data).header == header
    root = etree.fromstring(data)
    must = "{http://schemas.xmlsoap.org/soap/envelope/}mustUnderstand"
    flags = {etree.QName(node).localname: node.get(must) for node in root[0]}
    assert flags == {"ID": "1", "HoldRequests": "1", "NoMoreRequests": "0", "SessionTimeout": "0",
                     "SupportedCWMPVersions": "0", "UseCWMPVersion": "1"}


XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\r\n<>&'\""), max_size=40)


@given(command_key=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=32),
       url=XML_TEXT, username=XML_TEXT, password=XML_TEXT, file_size=st.integers(0, 2**32 - 1))
def test_download_round_trips_any_text(command_key: str, url: str, username: str, password: str,
                                       file_size: int) -> None:
    download = Download(command_key=command_key, file_type=FIRMWARE_UPGRADE_IMAGE, url=url,
                        username=username, password=password, file_size=file_size)
    assert parse_envelope(build_envelope(Envelope(body=download))).body == download


@given(value=XML_TEXT, name=XML_TEXT)
def test_parameter_values_round_trip_any_text(value: str, name: str) -> None:
    response = GetParameterValuesResponse(parameter_list=(ParameterValueStruct(name=name, value=value),))
    assert parse_envelope(build_envelope(Envelope(body=response, namespace=CWMP_1_1))).body == response


def test_control_characters_are_refused_as_invalid_arguments() -> None:
    with pytest.raises(InvalidArguments, match="XML 1.0 cannot carry"):
        build_envelope(Envelope(body=Reboot(command_key="a\x01")))


# --- strict validation of what we send ----------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (TransferComplete(command_key="k", fault_struct=TransferCompleteFaultStruct(fault_code=9013),
                          start_time=T0, complete_time=T1), "9013"),
        (Reboot(command_key="k" * 33), "CommandKey: longer than 32"),
        (Download(command_key="k", file_type="Firmware", url="u"), "FileType"),
        (Download(command_key="k", file_type=FIRMWARE_UPGRADE_IMAGE, url="u", file_size=-1), "FileSize"),
        (Download(command_key="k", file_type=FIRMWARE_UPGRADE_IMAGE, url="u" * 257), "URL"),
        (Inform(device_id=replace(DEVICE, oui="202bc1"), event=(), current_time=T0), "OUI"),
        (Inform(device_id=DEVICE, event=(EventStruct(event_code="BOOT"),), current_time=T0), "EventCode"),
        (Inform(device_id=DEVICE, event=tuple(EventStruct(event_code="2 PERIODIC") for _ in range(65)),
                current_time=T0), "at most 64"),
        (SetParameterValues(parameter_list=(ParameterValueStruct(name="A.B", value="x", value_type="xsd:unsignedInt"),)),
         "xsd:unsignedInt"),
        (GetParameterValues(parameter_names=()), "at least 1"),
        (DownloadResponse(status=2), "Status"),
        (Fault(fault_code=7000), "not a CWMP fault code"),
        (ScheduleDownload(command_key="k", file_type=FIRMWARE_UPGRADE_IMAGE, url="u", time_window_list=(
            TimeWindowStruct(window_start=0, window_end=100, window_mode=WINDOW_AT_ANY_TIME),
            TimeWindowStruct(window_start=50, window_end=200, window_mode=WINDOW_AT_ANY_TIME))), "overlaps"),
        (ScheduleDownload(command_key="k", file_type=FIRMWARE_UPGRADE_IMAGE, url="u", time_window_list=(
            TimeWindowStruct(window_start=10, window_end=5, window_mode=WINDOW_AT_ANY_TIME),)), "before"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_build_refuses_schema_violations(body, complaint: str) -> None:
    with pytest.raises(InvalidArguments, match=complaint):
        build_envelope(Envelope(body=body, namespace=CWMP_1_2))


def test_build_refuses_transfer_fault_codes_unknown_to_cwmp_1_0() -> None:
    body = TransferComplete(command_key="k", fault_struct=TransferCompleteFaultStruct(fault_code=9016),
                            start_time=T0, complete_time=T1)
    with pytest.raises(InvalidArguments, match="9016 is not defined in urn:dslforum-org:cwmp-1-0"):
        build_envelope(Envelope(body=body, namespace=CWMP_1_0))
    assert parse_envelope(build_envelope(Envelope(body=body, namespace=CWMP_1_1))).body == body


def test_build_refuses_rpc_newer_than_namespace() -> None:
    body = ScheduleDownloadResponse()
    with pytest.raises(InvalidArguments, match="needs namespace urn:dslforum-org:cwmp-1-2"):
        build_envelope(Envelope(body=body, namespace=CWMP_1_1))


# --- times ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("0001-01-01T00:00:00Z", UNKNOWN_TIME, "0001-01-01T00:00:00Z"),
        ("2026-11-22T14:12:17.565Z", T0, "2026-11-22T14:12:17.565Z"),
        ("2026-11-22T14:12:17Z", T0.replace(microsecond=0), "2026-11-22T14:12:17Z"),
        ("2026-11-22T14:12:17", datetime(2026, 11, 22, 14, 12, 17), "2026-11-22T14:12:17"),
        ("2026-11-22T16:12:17+02:00", T0.replace(microsecond=0), "2026-11-22T16:12:17+02:00"),
        ("2026-11-22T14:12:17.1234567-05:30", None, "2026-11-22T14:12:17.123456-05:30"),
    ],
)
def test_datetime_forms(text: str, expected: datetime | None, canonical: str) -> None:
    parsed = parse_datetime(text)
    if expected is not None:
        assert parsed == expected
    assert format_datetime(parsed) == canonical


@pytest.mark.parametrize("text", ["", "2026-11-22", "2026-11-22 14:12:17Z", "2026-13-01T00:00:00Z", "yesterday"])
def test_bad_datetime_is_invalid_arguments(text: str) -> None:
    with pytest.raises(InvalidArguments, match="xs:dateTime"):
        parse_datetime(text)


# --- code tables ------------------------------------------------------------------------------
def test_fault_code_table_covers_acs_and_cpe_codes() -> None:
    assert set(FAULT_CODES) == set(range(8000, 8007)) | set(range(9000, 9033))
    assert FAULT_CODES[9010] == "File transfer failure"
    assert FAULT_CODES[8005] == "Retry request"
    assert fault_meaning(9808) == "CPE vendor-specific fault"
    assert fault_meaning(8850) == "ACS vendor-specific fault"
    with pytest.raises(KeyError):
        fault_meaning(7000)


@pytest.mark.parametrize(("code", "allowed"), [(0, True), (9010, True), (9013, False), (9000, False),
                                               (9021, False), (9033, True), (9808, True), (9900, False)])
def test_transfer_complete_fault_codes(code: int, allowed: bool) -> None:
    assert is_transfer_complete_fault_code(code) is allowed


def test_vendor_file_type_needs_a_real_oui() -> None:
    assert vendor_file_type("00D09E", "Modem Image") == "X 00D09E Modem Image"
    with pytest.raises(ValueError, match="OUI"):
        vendor_file_type("00d09e", "Modem Image")


def _envelope(body: str, namespace: str = CWMP_1_0) -> bytes:
    return (
        '<soap-env:Envelope xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/" '
        'xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:cwmp="{namespace}"><soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">1</cwmp:ID>'
        f"</soap-env:Header><soap-env:Body>{body}</soap-env:Body></soap-env:Envelope>"
    ).encode()
