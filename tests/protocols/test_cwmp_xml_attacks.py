"""The CWMP parser refuses hostile XML before it can cost memory, time or a file read."""

from __future__ import annotations


import pytest

from otaharness.protocols.cwmp import (
    CWMP_1_0,
    EmptyMessage,
    Envelope,
    Header,
    InformResponse,
    XmlLimits,
    XmlRejected,
    build_envelope,
    parse_envelope,
)

SOAP = b'xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0"'


def body(inner: bytes) -> bytes:
    return b"<soap-env:Envelope " + SOAP + b"><soap-env:Body>" + inner + b"</soap-env:Body></soap-env:Envelope>"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE soap-env:Envelope [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (level, b"".join(b"&lol%s;" % (b"" if level == 1 else str(level - 1).encode()) for _ in range(10)))
        for level in range(1, 10)
    )
    + b"]>\n"
    + body(b"<cwmp:Reboot><CommandKey>&lol9;</CommandKey></cwmp:Reboot>")
)
XXE_FILE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    + body(b"<cwmp:Reboot><CommandKey>&xxe;</CommandKey></cwmp:Reboot>")
)
XXE_PARAMETER_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY % ext SYSTEM "file:///etc/hostname"> %ext;]>\n'
    + body(b"<cwmp:RebootResponse/>")
)
EXTERNAL_DTD = b'<!DOCTYPE soap-env:Envelope SYSTEM "http://127.0.0.1:9/soap.dtd">\n' + body(b"<cwmp:RebootResponse/>")
HARMLESS_DTD = b"<!DOCTYPE soap-env:Envelope>\n" + body(b"<cwmp:RebootResponse/>")


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, XXE_FILE, XXE_PARAMETER_ENTITY, EXTERNAL_DTD, HARMLESS_DTD],
    ids=["billion-laughs", "xxe-file", "xxe-parameter-entity", "external-dtd", "dtd-present"],
)
def test_any_dtd_is_refused(data: bytes) -> None:
    with pytest.raises(XmlRejected) as caught:
        parse_envelope(data)
    assert "DTD" in str(caught.value)  # refused as a DTD, before any entity was looked at


def test_dtd_hidden_by_another_encoding_is_refused() -> None:
    """Input is read as UTF-8 whatever it declares, so a UTF-16 DOCTYPE cannot slip through."""
    utf16 = XXE_FILE.replace(b'version="1.0"?>', b'version="1.0" encoding="UTF-16"?>').decode().encode("utf-16")
    assert b"<!DOCTYPE" not in utf16
    with pytest.raises(XmlRejected, match="not well-formed"):
        parse_envelope(utf16)


def test_declared_latin1_is_read_as_utf8() -> None:
    data = build_envelope(Envelope(body=InformResponse())).replace(b"UTF-8", b"ISO-8859-1")
    assert parse_envelope(data).body == InformResponse()


def test_oversized_body_is_refused_before_parsing() -> None:
    padding = b"<CommandKey>" + b"x" * 2048 + b"</CommandKey>"
    data = body(b"<cwmp:Reboot>" + padding + b"</cwmp:Reboot>")
    assert parse_envelope(data, limits=XmlLimits(max_bytes=4096)).body.command_key == "x" * 2048
    with pytest.raises(XmlRejected, match="exceeds the 2048-byte limit"):
        parse_envelope(data, limits=XmlLimits(max_bytes=2048))


def test_default_size_cap_is_a_few_megabytes() -> None:
    with pytest.raises(XmlRejected, match="exceeds"):
        parse_envelope(body(b"<cwmp:RebootResponse/>" + b" " * (5 * 1024 * 1024)))


@pytest.mark.parametrize("depth", [40, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    nested = b"<a>" * depth + b"</a>" * depth
    with pytest.raises(XmlRejected):
        parse_envelope(body(b"<cwmp:Reboot><CommandKey>" + nested + b"</CommandKey></cwmp:Reboot>"))


def test_element_count_is_capped() -> None:
    many = b"<string>x</string>" * 50
    data = body(b'<cwmp:GetParameterValues><ParameterNames>' + many + b"</ParameterNames></cwmp:GetParameterValues>")
    assert len(parse_envelope(data).body.parameter_names) == 50
    with pytest.raises(XmlRejected, match="more than 40 elements"):
        parse_envelope(data, limits=XmlLimits(max_elements=40))


@pytest.mark.parametrize("data", [b"", b"  \r\n"])
def test_empty_body_is_the_transports_business(data: bytes) -> None:
    with pytest.raises(EmptyMessage, match="transport"):
        parse_envelope(data)


@pytest.mark.parametrize("data", [b"<soap-env:Envelope", b"not xml at all", b"<a></b>", b"\xff\xfe<\x00"])
def test_malformed_xml_is_rejected(data: bytes) -> None:
    with pytest.raises(XmlRejected, match="not well-formed"):
        parse_envelope(data)


def test_str_input_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="bytes"):
        parse_envelope(build_envelope(Envelope(body=InformResponse())).decode())  # type: ignore[arg-type]


def test_comments_and_processing_instructions_do_not_disturb_parsing() -> None:
    data = build_envelope(Envelope(body=InformResponse(max_envelopes=1), header=Header(id="c"), namespace=CWMP_1_0))
    data = data.replace(b"<MaxEnvelopes>", b"<!-- hi --><?pi x?><MaxEnvelopes>")
    assert parse_envelope(data).body == InformResponse(max_envelopes=1)
