"""The CWMP RPCs, one dataclass per RPC named exactly like it (TR-069 Amendment 6 Annex A;
field order, limits and patterns from the BBF schemas cwmp-1-0.xsd ... cwmp-1-4.xsd).

Direction is in each class's docstring: ACS->CPE requests and CPE->ACS responses, or the
reverse. ``SINCE`` is the oldest namespace whose schema defines the RPC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import ClassVar

from lxml import etree

from .codes import (
    CWMP_1_0_TRANSFER_COMPLETE_FAULT_CODES,
    DOWNLOAD_FILE_TYPE_PATTERN,
    EVENT_CODE_PATTERN,
    OUI_PATTERN,
    TIME_WINDOW_MODE_PATTERN,
    TRANSFER_FILE_TYPE_PATTERN,
    is_transfer_complete_fault_code,
)
from .errors import InvalidArguments
from .namespaces import CWMP_1_0, CWMP_1_1, CWMP_1_2, SCHEMA_LEVEL, SOAP_ENC, XSD, XSI
from .structs import Struct, cwmp_children, element
from .values import INT_RANGE, UNKNOWN_TIME, check_typed_value

STATUS_VALUES = (0, 1)  # 0 = done/applied, 1 = not yet (committed later, or TransferComplete)


class Rpc(Struct):
    """A message that is the single child of SOAP-ENV:Body."""

    SINCE: ClassVar[str] = CWMP_1_0

    def check_namespace(self, namespace: str) -> None:
        """Rules that differ between schema versions; raises if ``namespace`` cannot carry this."""
        if SCHEMA_LEVEL[namespace] < SCHEMA_LEVEL[self.SINCE]:
            raise InvalidArguments(f"{self.TYPE_NAME} needs namespace {self.SINCE}, not {namespace}")

    def to_body_element(self, body: etree._Element, cwmp_namespace: str) -> None:
        self.fill(etree.SubElement(body, f"{{{cwmp_namespace}}}{self.TYPE_NAME}"))

    @classmethod
    def from_body_element(cls, node: etree._Element) -> Rpc:
        return cls.read(node)


# --- structs -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class DeviceIdStruct(Struct):
    manufacturer: str = element("Manufacturer", max_length=64)
    oui: str = element("OUI", pattern=OUI_PATTERN)
    product_class: str = element("ProductClass", max_length=64)
    serial_number: str = element("SerialNumber", max_length=64)


@dataclass(frozen=True, kw_only=True)
class EventStruct(Struct):
    event_code: str = element("EventCode", max_length=64, pattern=EVENT_CODE_PATTERN)
    command_key: str = element("CommandKey", default="", max_length=32)


@dataclass(frozen=True, kw_only=True)
class ParameterValueStruct(Struct):
    """Name/Value pair; ``value_type`` is the ``xsi:type`` attribute of Value."""

    name: str = element("Name", max_length=256)
    value: str = element("Value")
    value_type: str = field(default="xsd:string")

    def check(self) -> None:
        if not re.fullmatch(r"xsd:[A-Za-z]+", self.value_type):
            raise InvalidArguments(f"Value type must be an xsd: type, got {self.value_type!r}")
        check_typed_value(self.value, self.value_type)

    def fill(self, parent: etree._Element) -> None:
        super().fill(parent)
        parent.find("Value").set(f"{{{XSI}}}type", self.value_type)  # type: ignore[union-attr]

    @classmethod
    def read(cls, node: etree._Element, path: str = "") -> ParameterValueStruct:
        plain = super().read(node, path)
        value_node = cwmp_children(node, "Value")[0]
        return replace(plain, value_type=_xsi_type(value_node))


def _xsi_type(node: etree._Element) -> str:
    """Normalise ``xsi:type`` to ``xsd:<name>`` whatever prefix the peer bound to XSD."""
    declared = node.get(f"{{{XSI}}}type")
    if declared is None:
        return "xsd:string"  # untyped values are strings (GenieACS does the same)
    prefix, _, local = declared.strip().rpartition(":")
    namespace = node.nsmap.get(prefix or None)
    if namespace in (XSD, SOAP_ENC) or namespace is None:
        return f"xsd:{local}"
    return declared.strip()


@dataclass(frozen=True, kw_only=True)
class TransferCompleteFaultStruct(Struct):
    """FaultCode 0 with an empty FaultString means success."""

    fault_code: int = element("FaultCode", default=0)
    fault_string: str = element("FaultString", default="", max_length=256)

    def check(self) -> None:
        if not is_transfer_complete_fault_code(self.fault_code):
            raise InvalidArguments(
                f"fault code {self.fault_code} is not allowed in TransferComplete"
                + (" (report 9013 as a SOAP Fault on the Download)" if self.fault_code == 9013 else "")
            )


@dataclass(frozen=True, kw_only=True)
class TimeWindowStruct(Struct):
    window_start: int = element("WindowStart")  # seconds after the ScheduleDownload was received
    window_end: int = element("WindowEnd")
    window_mode: str = element("WindowMode", max_length=64, pattern=TIME_WINDOW_MODE_PATTERN)
    user_message: str = element("UserMessage", default="", max_length=256)
    max_retries: int = element("MaxRetries", default=0, allowed=INT_RANGE)  # -1: CPE decides

    def check(self) -> None:
        if self.window_end < self.window_start:
            raise InvalidArguments("WindowEnd is before WindowStart")


# --- Inform ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Inform(Rpc):
    """CPE -> ACS: opens every session."""

    device_id: DeviceIdStruct = element("DeviceId")
    event: tuple[EventStruct, ...] = element("Event", max_items=64)
    max_envelopes: int = element("MaxEnvelopes", default=1)
    current_time: datetime = element("CurrentTime")
    retry_count: int = element("RetryCount", default=0)
    parameter_list: tuple[ParameterValueStruct, ...] = element("ParameterList", default=())

    @property
    def event_codes(self) -> tuple[str, ...]:
        return tuple(item.event_code for item in self.event)

    def parameter(self, name: str) -> str | None:
        """The value of parameter ``name`` in ParameterList, if present."""
        return next((item.value for item in self.parameter_list if item.name == name), None)


@dataclass(frozen=True, kw_only=True)
class InformResponse(Rpc):
    """ACS -> CPE. GenieACS always answers MaxEnvelopes 1."""

    max_envelopes: int = element("MaxEnvelopes", default=1)


# --- transfers ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TransferComplete(Rpc):
    """CPE -> ACS: outcome of a Download/Upload, matched to it by CommandKey."""

    command_key: str = element("CommandKey", max_length=32)
    fault_struct: TransferCompleteFaultStruct = element(
        "FaultStruct", default=TransferCompleteFaultStruct()
    )
    start_time: datetime = element("StartTime")
    complete_time: datetime = element("CompleteTime")

    def check_namespace(self, namespace: str) -> None:
        super().check_namespace(namespace)
        code = self.fault_struct.fault_code
        if namespace == CWMP_1_0 and code not in CWMP_1_0_TRANSFER_COMPLETE_FAULT_CODES:
            raise InvalidArguments(
                f"TransferComplete fault code {code} is not defined in {CWMP_1_0} (use 9010 there)"
            )


@dataclass(frozen=True, kw_only=True)
class TransferCompleteResponse(Rpc):
    """ACS -> CPE: acknowledges TransferComplete (the CPE resends until it gets this)."""


@dataclass(frozen=True, kw_only=True)
class AutonomousTransferComplete(Rpc):
    """CPE -> ACS: outcome of a transfer the ACS did not request."""

    SINCE = CWMP_1_1

    announce_url: str = element("AnnounceURL", default="", max_length=1024)
    transfer_url: str = element("TransferURL", max_length=1024)
    is_download: bool = element("IsDownload")
    file_type: str = element("FileType", max_length=64, pattern=TRANSFER_FILE_TYPE_PATTERN)
    file_size: int = element("FileSize", default=0)
    target_file_name: str = element("TargetFileName", default="", max_length=256)
    fault_struct: TransferCompleteFaultStruct = element(
        "FaultStruct", default=TransferCompleteFaultStruct()
    )
    start_time: datetime = element("StartTime")
    complete_time: datetime = element("CompleteTime")


@dataclass(frozen=True, kw_only=True)
class AutonomousTransferCompleteResponse(Rpc):
    """ACS -> CPE."""

    SINCE = CWMP_1_1


@dataclass(frozen=True, kw_only=True)
class Download(Rpc):
    """ACS -> CPE. All ten elements are always sent, empty where there is no value."""

    command_key: str = element("CommandKey", max_length=32)
    file_type: str = element("FileType", max_length=64, pattern=DOWNLOAD_FILE_TYPE_PATTERN)
    url: str = element("URL", max_length=256)
    username: str = element("Username", default="", max_length=256)
    password: str = element("Password", default="", max_length=256)
    file_size: int = element("FileSize", default=0)  # 0 = unknown
    target_file_name: str = element("TargetFileName", default="", max_length=256)
    delay_seconds: int = element("DelaySeconds", default=0)
    success_url: str = element("SuccessURL", default="", max_length=256)
    failure_url: str = element("FailureURL", default="", max_length=256)


@dataclass(frozen=True, kw_only=True)
class DownloadResponse(Rpc):
    """CPE -> ACS. Status 1 (a TransferComplete follows) carries the unknown time."""

    status: int = element("Status", allowed=STATUS_VALUES)
    start_time: datetime = element("StartTime", default=UNKNOWN_TIME)
    complete_time: datetime = element("CompleteTime", default=UNKNOWN_TIME)


@dataclass(frozen=True, kw_only=True)
class ScheduleDownload(Rpc):
    """ACS -> CPE: download within one or two time windows; later event M ScheduleDownload."""

    SINCE = CWMP_1_2

    command_key: str = element("CommandKey", max_length=32)
    file_type: str = element("FileType", max_length=64, pattern=DOWNLOAD_FILE_TYPE_PATTERN)
    url: str = element("URL", max_length=256)
    username: str = element("Username", default="", max_length=256)
    password: str = element("Password", default="", max_length=256)
    file_size: int = element("FileSize", default=0)
    target_file_name: str = element("TargetFileName", default="", max_length=256)
    time_window_list: tuple[TimeWindowStruct, ...] = element(
        "TimeWindowList", min_items=1, max_items=2
    )

    def check(self) -> None:
        windows = self.time_window_list
        if len(windows) == 2 and windows[1].window_start < windows[0].window_end:
            raise InvalidArguments("the second time window overlaps the first")


@dataclass(frozen=True, kw_only=True)
class ScheduleDownloadResponse(Rpc):
    """CPE -> ACS."""

    SINCE = CWMP_1_2


# --- other RPCs --------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class GetRPCMethods(Rpc):
    """Either direction."""


@dataclass(frozen=True, kw_only=True)
class GetRPCMethodsResponse(Rpc):
    """Either direction."""

    method_list: tuple[str, ...] = element("MethodList", max_length=64)


@dataclass(frozen=True, kw_only=True)
class Reboot(Rpc):
    """ACS -> CPE; afterwards the CPE informs 1 BOOT + M Reboot with this CommandKey."""

    command_key: str = element("CommandKey", default="", max_length=32)


@dataclass(frozen=True, kw_only=True)
class RebootResponse(Rpc):
    """CPE -> ACS."""


@dataclass(frozen=True, kw_only=True)
class GetParameterValues(Rpc):
    """ACS -> CPE. A name ending in '.' asks for a whole subtree."""

    parameter_names: tuple[str, ...] = element("ParameterNames", max_length=256, min_items=1)


@dataclass(frozen=True, kw_only=True)
class GetParameterValuesResponse(Rpc):
    """CPE -> ACS."""

    parameter_list: tuple[ParameterValueStruct, ...] = element("ParameterList", default=())


@dataclass(frozen=True, kw_only=True)
class SetParameterValues(Rpc):
    """ACS -> CPE. On success the CPE sets ManagementServer.ParameterKey to ParameterKey."""

    parameter_list: tuple[ParameterValueStruct, ...] = element("ParameterList")
    parameter_key: str = element("ParameterKey", default="", max_length=32)


@dataclass(frozen=True, kw_only=True)
class SetParameterValuesResponse(Rpc):
    """CPE -> ACS. Status 1: applied but not committed until a reboot."""

    status: int = element("Status", allowed=STATUS_VALUES)


# Dispatch by element name (one class per RPC, like genieacs-sim's methods.js).
RPCS: dict[str, type[Rpc]] = {
    rpc.TYPE_NAME: rpc
    for rpc in (
        Inform,
        InformResponse,
        TransferComplete,
        TransferCompleteResponse,
        AutonomousTransferComplete,
        AutonomousTransferCompleteResponse,
        GetRPCMethods,
        GetRPCMethodsResponse,
        Download,
        DownloadResponse,
        ScheduleDownload,
        ScheduleDownloadResponse,
        Reboot,
        RebootResponse,
        GetParameterValues,
        GetParameterValuesResponse,
        SetParameterValues,
        SetParameterValuesResponse,
    )
}
