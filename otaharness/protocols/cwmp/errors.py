"""Errors raised by the CWMP codec.

Every error is a :class:`CwmpError` (a ``ValueError``) and says how a peer should be answered:
an ACS answers a CPE's bad request with a SOAP Fault carrying ``acs_fault_code`` (8000-range),
a CPE answers an ACS with ``cpe_fault_code`` (9000-range), and input that is not a SOAP message
at all (``cpe_fault_code is None``) gets a plain HTTP ``http_status`` (400).
"""

from __future__ import annotations


class CwmpError(ValueError):
    """Base class for everything wrong with a CWMP message."""

    acs_fault_code: int | None = 8003  # Invalid arguments
    cpe_fault_code: int | None = 9003  # Invalid arguments
    http_status: int = 400


class XmlRejected(CwmpError):
    """Not well-formed XML, or XML refused for safety (DTD, size, depth, element count)."""

    acs_fault_code = None
    cpe_fault_code = None


class EmptyMessage(XmlRejected):
    """An empty HTTP body: a session signal for the transport, never a SOAP envelope."""


class NotSoapEnvelope(CwmpError):
    """Well-formed XML that is not a SOAP 1.1 envelope with exactly one body element."""

    acs_fault_code = None
    cpe_fault_code = None


class UnknownNamespace(CwmpError):
    """The RPC element is in a namespace that is not one of the CWMP namespaces we accept."""


class MethodNotSupported(CwmpError):
    """A CWMP RPC name this codec does not implement (ACS fault 8000, CPE fault 9000)."""

    acs_fault_code = 8000
    cpe_fault_code = 9000

    def __init__(self, method: str) -> None:
        super().__init__(f"method not supported: {method!r}")
        self.method = method


class HeaderNotUnderstood(CwmpError):
    """A SOAP header entry with mustUnderstand="1" that this codec does not know (SOAP 1.1 §4.2.3)."""


class InvalidArguments(CwmpError):
    """An element is missing, repeated, of the wrong type, or breaks a schema limit."""
