"""nRF9160 asset tracker emulator for the AWS IoT Jobs FOTA flow (see tracker.py)."""

from otaharness.emulators.aws_tracker.download import DownloadFailed, RangeDownload
from otaharness.emulators.aws_tracker.job_document import FirmwareJob, JobDocumentError
from otaharness.emulators.aws_tracker.tracker import (
    Flash, JobRejected, RequestRejected, ShadowRejected, Tracker, TrackerError)

__all__ = [
    "DownloadFailed", "FirmwareJob", "Flash", "JobDocumentError", "JobRejected", "RangeDownload",
    "RequestRejected", "ShadowRejected", "Tracker", "TrackerError",
]
