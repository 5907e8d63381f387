"""SOAP Fault carrying a cwmp:Fault (TR-069 Amendment 6 §A.5).

Wire form::

    <soap-env:Fault>
      <faultcode>soap-env:Client</faultcode><faultstring>CWMP fault</faultstring>
      <detail><cwmp:Fault><FaultCode>9003</FaultCode><FaultString>...</FaultString>
        <SetParameterValuesFault>...</SetParameterValuesFault>...</cwmp:Fault></detail>
    </soap-env:Fault>
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from lxml import etree

from .codes import SERVER_SIDE_FAULT_CODES, is_soap_fault_code
from .errors import CwmpError, InvalidArguments
from .namespaces import CWMP_NAMESPACES, SOAP_ENV
from .rpcs import Rpc
from .structs import _NOT_XML_CHAR, Struct, element

SOAP_FAULT_STRING = "CWMP fault"
CPE_FAULT_CODES = range(9000, 9900)
# The schemas set no limit on a Fault's FaultString; ours quote the peer's input, cut here so
# that a megabyte-long element name is not echoed back whole.
MAX_FAULT_STRING = 1024


@dataclass(frozen=True, kw_only=True)
class SetParameterValuesFault(Struct):
    """One rejected parameter of a SetParameterValues (fault 9003's detail)."""

    parameter_name: str = element("ParameterName")
    fault_code: int = element("FaultCode", allowed=CPE_FAULT_CODES)
    fault_string: str = element("FaultString", default="", optional=True)


@dataclass(frozen=True, kw_only=True)
class Fault(Rpc):
    """Either direction: the answer to a request that failed."""

    fault_code: int = element("FaultCode")
    fault_string: str = element("FaultString", default="", optional=True)
    set_parameter_values_fault: tuple[SetParameterValuesFault, ...] = element(
        "SetParameterValuesFault", default=(), repeated=True
    )
    # SOAP faultcode: "Client" (the request was at fault) or "Server"; "" derives it from the code.
    soap_fault_code: str = field(default="")

    @classmethod
    def from_error(cls, error: CwmpError, sender: Literal["ACS", "CPE"]) -> Fault:
        """The fault an ACS or a CPE answers a bad request with (HTTP 400 errors have none)."""
        code = error.acs_fault_code if sender == "ACS" else error.cpe_fault_code
        if code is None:
            raise ValueError(f"{type(error).__name__} is answered with HTTP {error.http_status}")
        # The message may quote the peer's input: keep the fault sendable whatever it holds.
        text = _NOT_XML_CHAR.sub("\ufffd", str(error))
        return cls(fault_code=code, fault_string=text[:MAX_FAULT_STRING])

    def __post_init__(self) -> None:
        if not self.soap_fault_code:
            derived = "Server" if self.fault_code in SERVER_SIDE_FAULT_CODES else "Client"
            object.__setattr__(self, "soap_fault_code", derived)  # frozen: set once, here

    def check(self) -> None:
        if not is_soap_fault_code(self.fault_code):
            raise InvalidArguments(f"{self.fault_code} is not a CWMP fault code")
        if self.soap_fault_code not in ("Client", "Server"):
            raise InvalidArguments(f"SOAP faultcode must be Client or Server, not {self.soap_fault_code!r}")

    def to_body_element(self, body: etree._Element, cwmp_namespace: str) -> None:
        soap_fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
        # faultcode is a QName: the envelope declares the soap-env prefix.
        etree.SubElement(soap_fault, "faultcode").text = f"soap-env:{self.soap_fault_code}"
        etree.SubElement(soap_fault, "faultstring").text = SOAP_FAULT_STRING
        detail = etree.SubElement(soap_fault, "detail")
        self.fill(etree.SubElement(detail, f"{{{cwmp_namespace}}}Fault"))

    @classmethod
    def from_body_element(cls, node: etree._Element) -> Fault:
        detail = cwmp_fault_of(node)
        if detail is None:
            raise InvalidArguments("SOAP Fault without a cwmp:Fault in its detail")
        plain = cls.read(detail, "Fault")
        faultcode = next((c for c in node if _local_name(c) == "faultcode"), None)
        soap_code = (faultcode.text or "").strip().rpartition(":")[2] if faultcode is not None else ""
        return replace(plain, soap_fault_code=soap_code)


def cwmp_fault_of(soap_fault: etree._Element) -> etree._Element | None:
    """The cwmp:Fault element inside a SOAP-ENV:Fault's detail, if any."""
    for detail in soap_fault:
        if _local_name(detail) == "detail":  # unqualified per SOAP 1.1; some peers qualify it
            for child in detail:
                qname = etree.QName(child)
                if qname.localname == "Fault" and qname.namespace in CWMP_NAMESPACES:
                    return child
    return None


def _local_name(node: etree._Element) -> str | None:
    return etree.QName(node).localname if isinstance(node.tag, str) else None
