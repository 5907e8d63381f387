"""CWMP codec against recorded peer traffic (captures from the TR-069 fact sheet) and errors."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from otaharness.protocols.cwmp import (
    CWMP_1_0,
    CWMP_1_2,
    CWMP_1_3,
    EVENT_M_DOWNLOAD,
    EVENT_TRANSFER_COMPLETE,
    UNKNOWN_TIME,
    CwmpError,
    Download,
    DownloadResponse,
    Fault,
    GetParameterValuesResponse,
    HeaderNotUnderstood,
    Inform,
    InvalidArguments,
    MethodNotSupported,
    NotSoapEnvelope,
    TransferComplete,
    UnknownNamespace,
    XmlRejected,
    parse_envelope,
)

# genieacs-sim's first Inform, verbatim (fact sheet §7). Note arrayType [16] over 7 entries.
GENIEACS_SIM_INFORM = b"""<?xml version="1.0" encoding="UTF-8"?>
<soap-env:Envelope xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">4dwk1snb</cwmp:ID></soap-env:Header><soap-env:Body><cwmp:Inform><DeviceId><Manufacturer>Huawei Technologies Co., Ltd.</Manufacturer><OUI>202BC1</OUI><ProductClass>BM632w</ProductClass><SerialNumber>000000</SerialNumber></DeviceId><Event soap-enc:arrayType="cwmp:EventStruct[1]"><EventStruct><EventCode>2 PERIODIC</EventCode><CommandKey/></EventStruct></Event><MaxEnvelopes>1</MaxEnvelopes><CurrentTime>2026-11-22T14:12:17.460Z</CurrentTime><RetryCount>0</RetryCount><ParameterList soap-enc:arrayType="cwmp:ParameterValueStruct[16]"><ParameterValueStruct><Name>InternetGatewayDevice.DeviceInfo.SpecVersion</Name><Value xsi:type="xsd:string">1</Value></ParameterValueStruct><ParameterValueStruct><Name>InternetGatewayDevice.DeviceInfo.HardwareVersion</Name><Value xsi:type="xsd:string">40501</Value></ParameterValueStruct><ParameterValueStruct><Name>InternetGatewayDevice.DeviceInfo.SoftwareVersion</Name><Value xsi:type="xsd:string">V100R001IRQC56B017</Value></ParameterValueStruct><ParameterValueStruct><Name>InternetGatewayDevice.DeviceInfo.ProvisioningCode</Name><Value xsi:type="xsd:string"/></ParameterValueStruct><ParameterValueStruct><Name>InternetGatewayDevice.ManagementServer.ParameterKey</Name><Value xsi:type="xsd:string"/></ParameterValueStruct><ParameterValueStruct><Name>InternetGatewayDevice.ManagementServer.ConnectionRequestURL</Name><Value xsi:type="xsd:string">http://127.0.0.1:52985/</Value></ParameterValueStruct><ParameterValueStruct><Name>InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.ExternalIPAddress</Name><Value xsi:type="xsd:string">172.3.89.139</Value></ParameterValueStruct></ParameterList></cwmp:Inform></soap-env:Body></soap-env:Envelope>"""

# Bodies captured from the simulators (fact sheet §4.1, §4.2, §8), envelope omitted there.
DOWNLOAD_SENT = b"<cwmp:Download><CommandKey>fwbatch-1</CommandKey><FileType>1 Firmware Upgrade Image</FileType><URL>http://127.0.0.1:17567/fw.bin</URL><Username>u</Username><Password>p</Password><FileSize>200000</FileSize><TargetFileName>fw.bin</TargetFileName><DelaySeconds>0</DelaySeconds><SuccessURL></SuccessURL><FailureURL></FailureURL></cwmp:Download>"
DOWNLOAD_RESPONSE = b"<cwmp:DownloadResponse><Status>1</Status><StartTime>0001-01-01T00:00:00Z</StartTime><CompleteTime>0001-01-01T00:00:00Z</CompleteTime></cwmp:DownloadResponse>"
GENIEACS_SIM_TRANSFER_COMPLETE = b"<cwmp:TransferComplete><CommandKey>fwbatch-1</CommandKey><StartTime>2026-11-22T14:12:17.565Z</StartTime><CompleteTime>2026-11-22T14:12:19.578Z</CompleteTime><FaultStruct><FaultCode>0</FaultCode><FaultString/></FaultStruct></cwmp:TransferComplete>"
CWMP_SIM_EVENTS = b'<Event soap-enc:arrayType="cwmp:EventStruct[2]"><EventStruct><EventCode>7 TRANSFER COMPLETE</EventCode><CommandKey/></EventStruct><EventStruct><EventCode>M Download</EventCode><CommandKey/></EventStruct></Event>'
DEVICE_ID = b"<DeviceId><Manufacturer>MikroTik</Manufacturer><OUI>E48D8C</OUI><ProductClass>CHR</ProductClass><SerialNumber>S1</SerialNumber></DeviceId>"

ENVELOPE_OPEN = (
    b'<SOAP-ENV:Envelope xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" '
    b'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
    b'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    b'xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:cwmp="%s">'
)


def envelope(body: bytes, namespace: str = CWMP_1_0, header: bytes = b"") -> bytes:
    """Wrap a captured body the way a device with upper-case SOAP-ENV prefixes would."""
    return (
        ENVELOPE_OPEN % namespace.encode()
        + (b"<SOAP-ENV:Header>" + header + b"</SOAP-ENV:Header>" if header else b"")
        + b"<SOAP-ENV:Body>" + body + b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )


# --- recorded messages ------------------------------------------------------------------------
def test_genieacs_sim_inform() -> None:
    message = parse_envelope(GENIEACS_SIM_INFORM)
    inform = message.body
    assert isinstance(inform, Inform)
    assert (message.namespace, message.header.id) == (CWMP_1_0, "4dwk1snb")
    assert (inform.device_id.oui, inform.device_id.serial_number) == ("202BC1", "000000")
    assert inform.event_codes == ("2 PERIODIC",)
    assert inform.event[0].command_key == ""
    assert inform.current_time == datetime(2026, 11, 22, 14, 12, 17, 460000, tzinfo=timezone.utc)
    assert len(inform.parameter_list) == 7  # the arrayType's [16] is not trusted
    assert inform.parameter("InternetGatewayDevice.DeviceInfo.SoftwareVersion") == "V100R001IRQC56B017"
    assert inform.parameter("InternetGatewayDevice.DeviceInfo.ProvisioningCode") == ""
    assert inform.parameter("Device.DeviceInfo.SoftwareVersion") is None


def test_genieacs_sim_inform_passes_strict_checks() -> None:
    assert parse_envelope(GENIEACS_SIM_INFORM, strict=True).body.device_id.manufacturer.startswith("Huawei")


def test_download_as_the_simulators_accept_it() -> None:
    download = parse_envelope(envelope(DOWNLOAD_SENT)).body
    assert download == Download(
        command_key="fwbatch-1",
        file_type="1 Firmware Upgrade Image",
        url="http://127.0.0.1:17567/fw.bin",
        username="u",
        password="p",
        file_size=200000,
        target_file_name="fw.bin",
    )


def test_download_response_with_unknown_times() -> None:
    assert parse_envelope(envelope(DOWNLOAD_RESPONSE)).body == DownloadResponse(
        status=1, start_time=UNKNOWN_TIME, complete_time=UNKNOWN_TIME
    )


def test_transfer_complete_with_times_before_fault_struct() -> None:
    transfer = parse_envelope(envelope(GENIEACS_SIM_TRANSFER_COMPLETE)).body
    assert isinstance(transfer, TransferComplete)
    assert transfer.command_key == "fwbatch-1"
    assert (transfer.fault_struct.fault_code, transfer.fault_struct.fault_string) == (0, "")
    assert transfer.complete_time - transfer.start_time == (
        datetime(2026, 11, 22, 14, 12, 19, 578000) - datetime(2026, 11, 22, 14, 12, 17, 565000)
    )


def test_cwmp_sim_m_download_with_empty_command_key() -> None:
    inform = parse_envelope(envelope(
        b"<cwmp:Inform>" + DEVICE_ID + CWMP_SIM_EVENTS + b"<MaxEnvelopes>1</MaxEnvelopes>"
        b"<CurrentTime>2026-11-22T14:12:30Z</CurrentTime><RetryCount>0</RetryCount>"
        b'<ParameterList soap-enc:arrayType="cwmp:ParameterValueStruct[0]"/></cwmp:Inform>'
    )).body
    assert inform.event_codes == (EVENT_TRANSFER_COMPLETE, EVENT_M_DOWNLOAD)
    assert [event.command_key for event in inform.event] == ["", ""]


def test_transfer_complete_failure_from_genieacs_sim() -> None:
    body = (b"<cwmp:TransferComplete><CommandKey>k</CommandKey><StartTime>0001-01-01T00:00:00Z</StartTime>"
            b"<CompleteTime>0001-01-01T00:00:00Z</CompleteTime><FaultStruct><FaultCode>9016</FaultCode>"
            b"<FaultString>Unexpected response 404</FaultString></FaultStruct></cwmp:TransferComplete>")
    fault = parse_envelope(envelope(body)).body.fault_struct
    assert (fault.fault_code, fault.fault_string) == (9016, "Unexpected response 404")


# --- tolerated deviations ---------------------------------------------------------------------
def test_stray_cwmp_1_3_namespace_and_lower_case_session_timeout() -> None:
    header = (b'<cwmp:ID SOAP-ENV:mustUnderstand="1">7</cwmp:ID>'
              b"<cwmp:sessionTimeout>45</cwmp:sessionTimeout><cwmp:NoMoreRequests>1</cwmp:NoMoreRequests>")
    message = parse_envelope(envelope(DOWNLOAD_RESPONSE, namespace=CWMP_1_3, header=header))
    assert message.namespace == CWMP_1_3
    assert (message.header.id, message.header.session_timeout, message.header.no_more_requests) == ("7", 45, True)


def test_qualified_children_and_other_prefix_for_xsd_types() -> None:
    body = (b'<cwmp:GetParameterValuesResponse xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            b'<cwmp:ParameterList SOAP-ENC:arrayType="cwmp:ParameterValueStruct[3]">'
            b'<ParameterValueStruct><Name>A.b</Name><Value xsi:type="xs:unsignedInt">5</Value></ParameterValueStruct>'
            b"<ParameterValueStruct><Value>plain</Value><Name>A.c</Name></ParameterValueStruct>"
            b'<ParameterValueStruct><Name>A.d</Name><Value xsi:type="SOAP-ENC:string">x</Value></ParameterValueStruct>'
            b"</cwmp:ParameterList></cwmp:GetParameterValuesResponse>")
    response = parse_envelope(envelope(body, namespace=CWMP_1_2)).body
    assert isinstance(response, GetParameterValuesResponse)
    assert [(p.name, p.value, p.value_type) for p in response.parameter_list] == [
        ("A.b", "5", "xsd:unsignedInt"), ("A.c", "plain", "xsd:string"), ("A.d", "x", "xsd:string")]


def test_body_before_header_is_fine() -> None:
    data = (ENVELOPE_OPEN % CWMP_1_0.encode() + b"<SOAP-ENV:Body>" + DOWNLOAD_RESPONSE + b"</SOAP-ENV:Body>"
            b'<SOAP-ENV:Header><cwmp:ID SOAP-ENV:mustUnderstand="1">late</cwmp:ID></SOAP-ENV:Header></SOAP-ENV:Envelope>')
    message = parse_envelope(data)
    assert (message.header.id, message.body.status) == ("late", 1)


def test_unknown_header_without_must_understand_is_ignored() -> None:
    header = b'<v:Trace xmlns:v="urn:vendor">x</v:Trace><cwmp:HoldRequests SOAP-ENV:mustUnderstand="1">true</cwmp:HoldRequests>'
    assert parse_envelope(envelope(DOWNLOAD_RESPONSE, header=header)).header.hold_requests is True


def test_cpe_fault_with_set_parameter_values_faults() -> None:
    body = (b"<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>CWMP fault</faultstring>"
            b"<detail><cwmp:Fault><FaultCode>9003</FaultCode><FaultString>Invalid arguments</FaultString>"
            b"<SetParameterValuesFault><ParameterName>Device.A</ParameterName><FaultCode>9008</FaultCode>"
            b"<FaultString>read-only</FaultString></SetParameterValuesFault>"
            b"<SetParameterValuesFault><ParameterName>Device.B</ParameterName><FaultCode>9007</FaultCode>"
            b"</SetParameterValuesFault></cwmp:Fault></detail></SOAP-ENV:Fault>")
    message = parse_envelope(envelope(body, namespace=CWMP_1_2))
    fault = message.body
    assert isinstance(fault, Fault) and message.namespace == CWMP_1_2
    assert (fault.fault_code, fault.fault_string, fault.soap_fault_code) == (9003, "Invalid arguments", "Client")
    assert [(f.parameter_name, f.fault_code, f.fault_string) for f in fault.set_parameter_values_fault] == [
        ("Device.A", 9008, "read-only"), ("Device.B", 9007, "")]


# --- errors a server turns into faults ------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (envelope(b"<cwmp:FactoryReset/>"), MethodNotSupported, "FactoryReset"),
        (envelope(b"<cwmp:Bogus><X/></cwmp:Bogus>"), MethodNotSupported, "Bogus"),
        (envelope(b'<x:Inform xmlns:x="urn:dslforum-org:cwmp-2-0"/>'), UnknownNamespace, "cwmp-2-0"),
        (envelope(b"<Inform/>"), UnknownNamespace, "None"),
        (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
         NotSoapEnvelope, "not a SOAP 1.1 Envelope"),
        (envelope(b""), NotSoapEnvelope, "holds 0 elements"),
        (envelope(DOWNLOAD_RESPONSE + DOWNLOAD_RESPONSE), NotSoapEnvelope, "holds 2 elements"),
        (envelope(DOWNLOAD_RESPONSE, header=b'<v:X xmlns:v="urn:v" SOAP-ENV:mustUnderstand="1"/>'),
         HeaderNotUnderstood, "must be understood"),
        (envelope(DOWNLOAD_RESPONSE.replace(b"<Status>1</Status>", b"")), InvalidArguments,
         "DownloadResponse/Status: missing element"),
        (envelope(DOWNLOAD_RESPONSE.replace(b"<Status>1</Status>", b"<Status>one</Status>")), InvalidArguments,
         "DownloadResponse/Status: not an integer"),
        (envelope(DOWNLOAD_RESPONSE.replace(b"0001-01-01T00:00:00Z</Start", b"yesterday</Start")), InvalidArguments,
         "DownloadResponse/StartTime: not an xs:dateTime"),
        (envelope(DOWNLOAD_SENT.replace(b"<URL>", b"<URL>a</URL><URL>")), InvalidArguments, "appears 2 times"),
        (envelope(b"<SOAP-ENV:Fault><faultcode>SOAP-ENV:Server</faultcode><faultstring>x</faultstring></SOAP-ENV:Fault>"),
         InvalidArguments, "without a cwmp:Fault"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_bad_messages_raise_the_right_error(data: bytes, error: type[CwmpError], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_envelope(data)


def test_strict_parse_reports_schema_limits_that_liberal_parse_lets_through() -> None:
    long_key = envelope(DOWNLOAD_SENT.replace(b"fwbatch-1", b"k" * 40))
    assert parse_envelope(long_key).body.command_key == "k" * 40
    with pytest.raises(InvalidArguments, match="CommandKey: longer than 32"):
        parse_envelope(long_key, strict=True)


@pytest.mark.parametrize(
    ("error", "sender", "code"),
    [(MethodNotSupported("X"), "ACS", 8000), (MethodNotSupported("X"), "CPE", 9000),
     (InvalidArguments("bad"), "ACS", 8003), (InvalidArguments("bad"), "CPE", 9003),
     (UnknownNamespace("ns"), "CPE", 9003)],
)
def test_errors_map_to_fault_codes(error: CwmpError, sender: str, code: int) -> None:
    fault = Fault.from_error(error, sender)  # type: ignore[arg-type]
    assert (fault.fault_code, fault.fault_string, fault.soap_fault_code) == (code, str(error), "Client")


def test_not_soap_is_answered_with_http_400_not_a_fault() -> None:
    for error in (XmlRejected("x"), NotSoapEnvelope("x")):
        assert isinstance(error, ValueError) and error.http_status == 400
        with pytest.raises(ValueError, match="HTTP 400"):
            Fault.from_error(error, "ACS")


def test_internal_errors_are_server_faults() -> None:
    assert Fault(fault_code=8002).soap_fault_code == "Server"
    assert Fault(fault_code=9002).soap_fault_code == "Server"
    assert Fault(fault_code=9005).soap_fault_code == "Client"
