"""SOAP 1.1 envelope of a CWMP message: header entries and the one RPC in the body
(TR-069 Amendment 6 §A.2 and §A.4.1; CWMP 1.3 SessionTimeout and 1.4 version headers from
cwmp-1-3.xsd / cwmp-1-4.xsd).

An empty HTTP body is not an envelope: the CPE's empty POST ("nothing more to send") and the
ACS's empty 200/204 ("session over") are for the transport to recognise before calling
:func:`parse_envelope`, which raises :class:`EmptyMessage` for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from lxml import etree

from .errors import (
    HeaderNotUnderstood,
    InvalidArguments,
    MethodNotSupported,
    NotSoapEnvelope,
    UnknownNamespace,
)
from .fault import Fault, cwmp_fault_of
from .namespaces import CWMP_1_0, CWMP_NAMESPACES, SOAP_ENV, nsmap
from .rpcs import RPCS, Rpc
from .safe_xml import DEFAULT_LIMITS, XmlLimits, parse_untrusted_xml
from .structs import _NOT_XML_CHAR
from .values import format_boolean, parse_boolean, parse_integer


@dataclass(frozen=True, kw_only=True)
class Header:
    """CWMP SOAP header entries; None = absent."""

    id: str | None = None  # cwmp:ID, echoed in the response to a request
    hold_requests: bool | None = None  # ACS -> CPE: true holds back the CPE's own requests
    # Original TR-069 only (in no BBF schema): accepted and parsed, never needed.
    no_more_requests: bool | None = None
    session_timeout: int | None = None  # CWMP 1.3, seconds
    supported_cwmp_versions: str | None = None  # CWMP 1.4, e.g. "1.0,1.1,1.2,1.3,1.4"
    use_cwmp_version: str | None = None  # CWMP 1.4, e.g. "1.4"


@dataclass(frozen=True)
class _HeaderEntry:
    attribute: str
    tag: str
    must_understand: str  # the value we send; the schemas fix it per entry
    encode: Callable[[Any], str]
    decode: Callable[[str], Any]


_HEADER_ENTRIES: tuple[_HeaderEntry, ...] = (
    _HeaderEntry("id", "ID", "1", str, str),
    _HeaderEntry("hold_requests", "HoldRequests", "1", format_boolean, parse_boolean),
    # NoMoreRequests: mustUnderstand 0 so that a receiver that dropped it may ignore it.
    _HeaderEntry("no_more_requests", "NoMoreRequests", "0", format_boolean, parse_boolean),
    _HeaderEntry("session_timeout", "SessionTimeout", "0", str, parse_integer),
    _HeaderEntry("supported_cwmp_versions", "SupportedCWMPVersions", "0", str, str),
    _HeaderEntry("use_cwmp_version", "UseCWMPVersion", "1", str, str),
)
# GenieACS matches "sessionTimeout" although the schema says SessionTimeout: compare lower-case.
_HEADER_BY_NAME = {entry.tag.lower(): entry for entry in _HEADER_ENTRIES}


@dataclass(frozen=True, kw_only=True)
class Envelope:
    body: Rpc
    header: Header = field(default_factory=Header)
    namespace: str = CWMP_1_0  # answer in the namespace the peer used

    def reply(self, body: Rpc) -> Envelope:
        """An envelope answering this one: same cwmp:ID, same namespace."""
        return Envelope(body=body, header=Header(id=self.header.id), namespace=self.namespace)


def build_envelope(envelope: Envelope) -> bytes:
    """Serialise ``envelope``; the body is validated strictly first (we only send valid CWMP)."""
    namespace = envelope.namespace
    if namespace not in CWMP_NAMESPACES:
        raise UnknownNamespace(f"not a CWMP namespace: {namespace!r}")
    body = envelope.body
    body.validate()
    body.check_namespace(namespace)
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap(namespace))
    entries = [(e, getattr(envelope.header, e.attribute)) for e in _HEADER_ENTRIES]
    entries = [(e, value) for e, value in entries if value is not None]
    for entry, value in entries:
        if _NOT_XML_CHAR.search(entry.encode(value)):
            raise InvalidArguments(f"Header/{entry.tag}: {value!r} holds characters XML 1.0 "
                                   "cannot carry")
    if entries:
        header = etree.SubElement(root, f"{{{SOAP_ENV}}}Header")
        for entry, value in entries:
            node = etree.SubElement(header, f"{{{namespace}}}{entry.tag}")
            node.set(f"{{{SOAP_ENV}}}mustUnderstand", entry.must_understand)
            node.text = entry.encode(value)
    body.to_body_element(etree.SubElement(root, f"{{{SOAP_ENV}}}Body"), namespace)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def parse_envelope(
    data: bytes, *, limits: XmlLimits = DEFAULT_LIMITS, strict: bool = False
) -> Envelope:
    """Decode one CWMP message from untrusted bytes.

    Children are found by namespace and local name, never by prefix or position. ``strict``
    also checks the schema's limits and patterns (as :func:`build_envelope` does); peers'
    traffic is parsed liberally by default, since real devices break the schema. ``strict``
    also refuses an RPC its namespace's schema does not define.
    """
    root = parse_untrusted_xml(data, limits)
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace != SOAP_ENV:
        raise NotSoapEnvelope(f"root element is {qname.text}, not a SOAP 1.1 Envelope")
    header_nodes = _soap_children(root, "Header")
    body_nodes = _soap_children(root, "Body")
    if len(body_nodes) != 1 or len(header_nodes) > 1:
        raise NotSoapEnvelope(
            f"envelope has {len(header_nodes)} Header and {len(body_nodes)} Body elements"
        )
    rpc_nodes = [child for child in body_nodes[0] if isinstance(child.tag, str)]
    if len(rpc_nodes) != 1:
        raise NotSoapEnvelope(f"SOAP Body holds {len(rpc_nodes)} elements, expected one RPC")
    body, namespace = _decode_body(rpc_nodes[0])
    header = _decode_header(header_nodes[0]) if header_nodes else Header()
    if strict:
        body.validate()
        body.check_namespace(namespace)
    return Envelope(body=body, header=header, namespace=namespace)


def _soap_children(node: etree._Element, localname: str) -> list[etree._Element]:
    return [child for child in node if child.tag == f"{{{SOAP_ENV}}}{localname}"]


def _decode_body(node: etree._Element) -> tuple[Rpc, str]:
    qname = etree.QName(node)
    if qname.namespace == SOAP_ENV and qname.localname == "Fault":
        fault = Fault.from_body_element(node)  # raises without a cwmp:Fault detail
        return fault, etree.QName(cwmp_fault_of(node)).namespace  # type: ignore[arg-type,return-value]
    if qname.namespace not in CWMP_NAMESPACES:
        raise UnknownNamespace(f"RPC {qname.localname!r} is in namespace {qname.namespace!r}")
    rpc = RPCS.get(qname.localname)
    if rpc is None:
        raise MethodNotSupported(qname.localname)
    return rpc.from_body_element(node), qname.namespace


def _decode_header(node: etree._Element) -> Header:
    values: dict[str, Any] = {}
    for child in node:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        entry = _HEADER_BY_NAME.get(qname.localname.lower())
        if entry is None or qname.namespace not in CWMP_NAMESPACES:
            if child.get(f"{{{SOAP_ENV}}}mustUnderstand", "0").strip() in ("1", "true"):
                raise HeaderNotUnderstood(f"header entry {qname.text} must be understood")
            continue
        if entry.attribute in values:
            raise InvalidArguments(f"header entry {entry.tag} appears more than once")
        try:
            values[entry.attribute] = entry.decode(child.text or "")
        except InvalidArguments as exc:
            raise InvalidArguments(f"Header/{entry.tag}: {exc}") from None
    return Header(**values)
