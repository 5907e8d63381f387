"""Pure CWMP (TR-069) codec: SOAP envelopes <-> frozen dataclasses, no I/O.

    envelope = parse_envelope(http_body)              # untrusted bytes -> Envelope
    if isinstance(envelope.body, Inform): ...
    reply = build_envelope(envelope.reply(InformResponse()))

Transport duties (not the codec's): an empty HTTP body is a session signal (the CPE's empty
POST, the ACS's 204 that ends the session) and must be recognised before parsing; HTTP
status, cookies and authentication live in the servers and emulators.

Errors are :class:`CwmpError` (a ``ValueError``); each names the fault code an ACS or a CPE
answers with, or the HTTP status for input that is not SOAP at all. ``Fault.from_error``
turns one into the SOAP Fault to send.
"""

from .codes import (
    DOWNLOAD_FILE_TYPES,
    EVENT_BOOT,
    EVENT_BOOTSTRAP,
    EVENT_CONNECTION_REQUEST,
    EVENT_M_DOWNLOAD,
    EVENT_M_REBOOT,
    EVENT_M_SCHEDULE_DOWNLOAD,
    EVENT_PERIODIC,
    EVENT_TRANSFER_COMPLETE,
    EVENT_VALUE_CHANGE,
    FAULT_CODES,
    FIRMWARE_UPGRADE_IMAGE,
    RINGER_FILE,
    TONE_FILE,
    TRANSFER_COMPLETE_FAULT_CODES,
    VENDOR_CONFIGURATION_FILE,
    WEB_CONTENT,
    WINDOW_AT_ANY_TIME,
    WINDOW_CONFIRMATION_NEEDED,
    WINDOW_IMMEDIATELY,
    WINDOW_WHEN_IDLE,
    fault_meaning,
    is_transfer_complete_fault_code,
    vendor_file_type,
)
from .envelope import RPCS, Envelope, Header, build_envelope, parse_envelope
from .errors import (
    CwmpError,
    EmptyMessage,
    HeaderNotUnderstood,
    InvalidArguments,
    MethodNotSupported,
    NotSoapEnvelope,
    UnknownNamespace,
    XmlRejected,
)
from .fault import Fault, SetParameterValuesFault
from .namespaces import CWMP_1_0, CWMP_1_1, CWMP_1_2, CWMP_1_3, CWMP_NAMESPACES
from .rpcs import (
    AutonomousTransferComplete,
    AutonomousTransferCompleteResponse,
    DeviceIdStruct,
    Download,
    DownloadResponse,
    EventStruct,
    GetParameterValues,
    GetParameterValuesResponse,
    GetRPCMethods,
    GetRPCMethodsResponse,
    Inform,
    InformResponse,
    ParameterValueStruct,
    Reboot,
    RebootResponse,
    Rpc,
    ScheduleDownload,
    ScheduleDownloadResponse,
    SetParameterValues,
    SetParameterValuesResponse,
    TimeWindowStruct,
    TransferComplete,
    TransferCompleteFaultStruct,
    TransferCompleteResponse,
)
from .safe_xml import XmlLimits
from .values import UNKNOWN_TIME, format_datetime, parse_datetime

__all__ = [name for name in dir() if not name.startswith("_")]
