"""CWMP code tables as data: fault codes, event codes, file types, time-window modes.

Sources: TR-069 Amendment 6 Table 'Fault codes' as copied into the annotations of the BBF schemas
cwmp-1-2.xsd (CPEFaultCodeType, ACSFaultCodeType, TransferCompleteCPEFaultCodeType,
EventCodeType, DownloadFileType, TransferFileType, TimeWindowModeValueType) and cwmp-1-4.xsd
(8006, 13 WAKEUP). The regular expressions are the XSD patterns (XSD patterns are anchored, so
they are used with ``re.fullmatch``).
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Mapping

FAULT_CODES: Mapping[int, str] = MappingProxyType(
    {
        # ACS fault codes (ACS -> CPE answers to CPE requests)
        8000: "Method not supported",
        8001: "Request denied (no reason specified)",
        8002: "Internal error",
        8003: "Invalid arguments",
        8004: "Resources exceeded",
        8005: "Retry request",
        8006: "ACS version incompatible with CPE",  # CWMP 1.4
        # CPE fault codes
        9000: "Method not supported",
        9001: "Request denied (no reason specified)",
        9002: "Internal error",
        9003: "Invalid arguments",
        9004: "Resources exceeded",
        9005: "Invalid parameter name",
        9006: "Invalid parameter type",
        9007: "Invalid parameter value",
        9008: "Attempt to set a non-writable parameter",
        9009: "Notification request rejected",
        9010: "File transfer failure",
        9011: "Upload failure",
        9012: "File transfer server authentication failure",
        9013: "Unsupported protocol for file transfer",
        9014: "File transfer failure: unable to join multicast group",
        9015: "File transfer failure: unable to contact file server",
        9016: "File transfer failure: unable to access file",
        9017: "File transfer failure: unable to complete download",
        9018: "File transfer failure: file corrupted",
        9019: "File transfer failure: file authentication failure",
        9020: "File transfer failure: unable to complete download within specified time windows",
        9021: "Cancelation of file transfer not permitted in current transfer state",
        9022: "Invalid UUID Format",
        9023: "Unknown Execution Environment",
        9024: "Disabled Execution Environment",
        9025: "Deployment Unit to Execution Environment Mismatch",
        9026: "Duplicate Deployment Unit",
        9027: "System Resources Exceeded",
        9028: "Unknown Deployment Unit",
        9029: "Invalid Deployment Unit State",
        9030: "Invalid Deployment Unit Update - Downgrade not permitted",
        9031: "Invalid Deployment Unit Update - Version not specified",
        9032: "Invalid Deployment Unit Update - Version already exists",
    }
)

# (first, last, meaning) of the ranges the schemas reserve beyond the table above.
FAULT_CODE_RANGES: tuple[tuple[int, int, str], ...] = (
    (8000, 8799, "ACS fault (reserved)"),
    (8800, 8899, "ACS vendor-specific fault"),
    (9000, 9799, "CPE fault (reserved for extension)"),
    (9800, 9899, "CPE vendor-specific fault"),
)

# TransferCompleteCPEFaultCodeType; 9013 is deliberately absent: an unsupported transfer
# protocol is reported as a SOAP Fault on the Download itself.
TRANSFER_COMPLETE_FAULT_CODES: frozenset[int] = frozenset(
    {9001, 9002, 9010, 9011, 9012, 9014, 9015, 9016, 9017, 9018, 9019, 9020}
)
# cwmp-1-0.xsd FaultStruct knows only these; 9014-9019 arrived with cwmp-1-1 (Amendment 2).
CWMP_1_0_TRANSFER_COMPLETE_FAULT_CODES: frozenset[int] = frozenset({0, 9001, 9002, 9010, 9011, 9012})
CPE_EXTENSION_FAULT_CODES = range(9033, 9800)
CPE_VENDOR_FAULT_CODES = range(9800, 9900)


def fault_meaning(code: int) -> str:
    """The table meaning of a fault code, or the name of the range it falls in."""
    if code in FAULT_CODES:
        return FAULT_CODES[code]
    for first, last, meaning in FAULT_CODE_RANGES:
        if first <= code <= last:
            return meaning
    raise KeyError(f"{code} is not a CWMP fault code")


def is_soap_fault_code(code: int) -> bool:
    """FaultCode values allowed in cwmp:Fault (CPE, CPE vendor, ACS, ACS vendor ranges)."""
    return 8000 <= code <= 8899 or 9000 <= code <= 9899


def is_transfer_complete_fault_code(code: int) -> bool:
    """FaultCode values allowed in TransferComplete's FaultStruct (0 means success)."""
    return (
        code == 0
        or code in TRANSFER_COMPLETE_FAULT_CODES
        or code in CPE_EXTENSION_FAULT_CODES
        or code in CPE_VENDOR_FAULT_CODES
    )


# Server-side faults use SOAP faultcode "Server"; everything caused by the request is "Client".
SERVER_SIDE_FAULT_CODES: frozenset[int] = frozenset({8002, 8004, 8005, 9002, 9004})


# --- Inform event codes (EventCodeType) -------------------------------------------------------
EVENT_BOOTSTRAP = "0 BOOTSTRAP"
EVENT_BOOT = "1 BOOT"
EVENT_PERIODIC = "2 PERIODIC"
EVENT_SCHEDULED = "3 SCHEDULED"
EVENT_VALUE_CHANGE = "4 VALUE CHANGE"
EVENT_KICKED = "5 KICKED"
EVENT_CONNECTION_REQUEST = "6 CONNECTION REQUEST"
EVENT_TRANSFER_COMPLETE = "7 TRANSFER COMPLETE"
EVENT_DIAGNOSTICS_COMPLETE = "8 DIAGNOSTICS COMPLETE"
EVENT_REQUEST_DOWNLOAD = "9 REQUEST DOWNLOAD"
EVENT_AUTONOMOUS_TRANSFER_COMPLETE = "10 AUTONOMOUS TRANSFER COMPLETE"
EVENT_DU_STATE_CHANGE_COMPLETE = "11 DU STATE CHANGE COMPLETE"
EVENT_AUTONOMOUS_DU_STATE_CHANGE_COMPLETE = "12 AUTONOMOUS DU STATE CHANGE COMPLETE"
EVENT_WAKEUP = "13 WAKEUP"  # CWMP 1.4
EVENT_M_REBOOT = "M Reboot"
EVENT_M_SCHEDULE_INFORM = "M ScheduleInform"
EVENT_M_DOWNLOAD = "M Download"
EVENT_M_SCHEDULE_DOWNLOAD = "M ScheduleDownload"
EVENT_M_UPLOAD = "M Upload"
EVENT_M_CHANGE_DU_STATE = "M ChangeDUState"

EVENT_CODE_PATTERN = re.compile(r"\d+( \S+)+|M \S+|M X_\S+|X [0-9A-F]{6} .+|X \S+ .+")

# --- Download file types (DownloadFileType) and transfer file types (TransferFileType) --------
FIRMWARE_UPGRADE_IMAGE = "1 Firmware Upgrade Image"
WEB_CONTENT = "2 Web Content"
VENDOR_CONFIGURATION_FILE = "3 Vendor Configuration File"
TONE_FILE = "4 Tone File"
RINGER_FILE = "5 Ringer File"
DOWNLOAD_FILE_TYPES: tuple[str, ...] = (
    FIRMWARE_UPGRADE_IMAGE,
    WEB_CONTENT,
    VENDOR_CONFIGURATION_FILE,
    TONE_FILE,
    RINGER_FILE,
)

DOWNLOAD_FILE_TYPE_PATTERN = re.compile(r"[1-9]\d*( \S+)+|X [0-9A-F]{6} .+|X \S+ .+")
TRANSFER_FILE_TYPE_PATTERN = re.compile(
    r"[1-9]\d*( \S+)+|[1-9]\d*( \S+)+ [1-9]\d*|X [0-9A-F]{6} .+|X \S+ .+"
)
OUI_PATTERN = re.compile(r"[0-9A-F]{6}")


def vendor_file_type(oui: str, name: str) -> str:
    """A vendor file type ``X <OUI> <name>``, e.g. ``X 00000C Cisco IOS Image``."""
    if not OUI_PATTERN.fullmatch(oui):
        raise ValueError(f"OUI must be six upper-case hex digits, got {oui!r}")
    if not name:
        raise ValueError("vendor file type needs a name")
    return f"X {oui} {name}"


# --- ScheduleDownload time window modes (TimeWindowModeValueType) -----------------------------
WINDOW_AT_ANY_TIME = "1 At Any Time"
WINDOW_IMMEDIATELY = "2 Immediately"
WINDOW_WHEN_IDLE = "3 When Idle"
WINDOW_CONFIRMATION_NEEDED = "4 Confirmation Needed"
TIME_WINDOW_MODE_PATTERN = DOWNLOAD_FILE_TYPE_PATTERN  # same three patterns in the XSD
