"""The nRF Asset Tracker FOTA job document (`app_fw_update`): pure parsing, no I/O.

Layout from the asset tracker's web app and FOTA feature (shared/protocols/aws-iot-jobs.md §4.1):

    {"operation": "app_fw_update", "size": 13, "filename": "1.0.1.hex", "fwversion": "1.0.1",
     "location": {"protocol": "https", "host": "<bucket>.s3.amazonaws.com", "path": "<jobId>"}}

The nRF parser (`aws_fota_json.c`) needs only `location.host` and `location.path` for the
download; the emulator also needs `fwversion` (the version it boots into: its images are opaque
bytes) and checks `size` when the document has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

APP_FW_UPDATE = "app_fw_update"


class JobDocumentError(ValueError):
    """A job document the tracker cannot act on; the reason goes into the FAILED statusDetails."""


@dataclass(frozen=True)
class FirmwareJob:
    fwversion: str
    host: str
    path: str  # the object key, possibly with a presigned query string
    size: int | None = None
    protocol: str = "https"
    filename: str | None = None

    @classmethod
    def from_document(cls, document: Any) -> FirmwareJob:
        if not isinstance(document, dict):
            raise JobDocumentError(f"job document must be a JSON object, not {type(document).__name__}")
        operation = document.get("operation")
        if operation != APP_FW_UPDATE:
            raise JobDocumentError(f"operation must be {APP_FW_UPDATE!r}, got {operation!r}")
        location = document.get("location")
        if not isinstance(location, dict):
            raise JobDocumentError("job document has no location object")
        host, path = location.get("host"), location.get("path")
        if not isinstance(host, str) or not host:
            raise JobDocumentError("location.host must be a non-empty string")
        if not isinstance(path, str) or not path.strip("/"):
            raise JobDocumentError("location.path must be a non-empty string")
        fwversion = document.get("fwversion")
        if not isinstance(fwversion, str) or not fwversion:
            raise JobDocumentError("fwversion must be a non-empty string")
        size = document.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise JobDocumentError(f"size must be a positive integer, got {size!r}")
        protocol = location.get("protocol", "https")
        filename = document.get("filename")
        return cls(
            fwversion=fwversion,
            host=host,
            path=path,
            size=size,
            # Some scripts write "https:" with the colon (§4.1).
            protocol=str(protocol).rstrip(":") if protocol else "https",
            filename=filename if isinstance(filename, str) else None,
        )
