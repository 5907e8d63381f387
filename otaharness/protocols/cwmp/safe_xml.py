"""Hardened XML parsing for SOAP bodies received from untrusted peers.

No DTD is accepted at all: the bytes are searched for ``<!DOCTYPE`` before libxml2 sees them,
so neither billion-laughs expansion nor an external (parameter) entity is ever processed.
The input is read as UTF-8 whatever it declares (CWMP peers send UTF-8; forcing it also stops
a UTF-16 or UTF-7 document from hiding its DOCTYPE from that search). Entities are never
resolved, the network is never touched, libxml2's huge-tree mode stays off, and input size,
nesting depth and element count are capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from .errors import EmptyMessage, XmlRejected


@dataclass(frozen=True)
class XmlLimits:
    """Caps on an incoming message. CWMP nests about 8 levels deep (SetParameterAttributes)."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 32
    max_elements: int = 200_000


DEFAULT_LIMITS = XmlLimits()


def _hardened_parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers are not meant to be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
        encoding="utf-8",
    )


def parse_untrusted_xml(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse ``data`` into an element tree or raise :class:`XmlRejected`."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    if not bytes(data).strip():
        raise EmptyMessage(
            "empty body: an empty HTTP POST or 204 ends a CWMP session phase; "
            "the transport must handle it before calling the codec"
        )
    if len(data) > limits.max_bytes:
        raise XmlRejected(f"message of {len(data)} bytes exceeds the {limits.max_bytes}-byte limit")
    if b"<!DOCTYPE" in data:
        # SOAP 1.1 §3: "A SOAP message MUST NOT contain a Document Type Declaration."
        raise XmlRejected("document type declaration (DTD) present: refused")
    try:
        root = etree.fromstring(bytes(data), _hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"not well-formed XML: {exc}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        # Unreachable while the byte search above holds; kept as a second line of defence.
        raise XmlRejected("document type declaration (DTD) present: refused")
    _check_shape(root, limits)
    return root


def _check_shape(root: etree._Element, limits: XmlLimits) -> None:
    depth = 0
    elements = 0
    for event, node in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        if not isinstance(node.tag, str):  # entity references survive resolve_entities=False
            raise XmlRejected("unresolved entity reference in message: refused")
        depth += 1
        elements += 1
        if depth > limits.max_depth:
            raise XmlRejected(f"elements nested deeper than {limits.max_depth} levels")
        if elements > limits.max_elements:
            raise XmlRejected(f"more than {limits.max_elements} elements")
