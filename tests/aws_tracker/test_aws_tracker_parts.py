"""The tracker's pure parts: the job document, Content-Range and Range headers, the IMEI."""

from __future__ import annotations

import pytest

from otaharness.emulators.aws_tracker.download import ContentRangeError, parse_content_range, range_header
from otaharness.emulators.aws_tracker.job_document import FirmwareJob, JobDocumentError
from otaharness.emulators.aws_tracker.tracker import imei_of

SEED_DOCUMENT = {  # features/FOTA.feature.md (shared/seeds/003)
    "operation": "app_fw_update", "size": 13, "filename": "1.0.1.hex",
    "location": {"protocol": "https", "host": "fota.s3.amazonaws.com", "path": "bdfe16e9"},
    "fwversion": "1.0.1",
}


def test_seed_job_document() -> None:
    job = FirmwareJob.from_document(SEED_DOCUMENT)
    assert job == FirmwareJob(fwversion="1.0.1", host="fota.s3.amazonaws.com", path="bdfe16e9", size=13,
                              protocol="https", filename="1.0.1.hex")


def test_protocol_with_a_colon_and_no_size_are_accepted() -> None:
    document = {**SEED_DOCUMENT, "location": {**SEED_DOCUMENT["location"], "protocol": "https:"}}
    del document["size"]
    job = FirmwareJob.from_document(document)
    assert (job.protocol, job.size) == ("https", None)


@pytest.mark.parametrize("change, message", [
    ({"operation": "reboot"}, "operation must be 'app_fw_update'"),
    ({"location": "s3://x"}, "no location object"),
    ({"location": {"host": "h"}}, "location.path"),
    ({"location": {"path": "p"}}, "location.host"),
    ({"fwversion": 101}, "fwversion"),
    ({"size": 0}, "size must be a positive integer"),
    ({"size": True}, "size must be a positive integer"),
])
def test_unusable_documents_say_why(change: dict, message: str) -> None:
    with pytest.raises(JobDocumentError, match=message):
        FirmwareJob.from_document({**SEED_DOCUMENT, **change})
    with pytest.raises(JobDocumentError, match="JSON object"):
        FirmwareJob.from_document("app_fw_update")


def test_content_range_vectors_from_the_fact_sheet() -> None:
    # shared/protocols/aws-iot-jobs.md §1.5: moto's answers to range GETs of a 10240-byte object.
    assert parse_content_range("bytes 100-1123/10240") == (100, 1123, 10240)
    assert parse_content_range("bytes 9216-10239/10240") == (9216, 10239, 10240)
    for bad in ("bytes 5-4/10", "bytes 0-10/10", "bytes */10240", "items 0-1/2", ""):
        with pytest.raises(ContentRangeError):
            parse_content_range(bad)


def test_range_header_is_one_fragment_clamped_to_the_known_size() -> None:
    assert range_header(0, 2048, None) == "bytes=0-2047"
    assert range_header(2048, 2048, 5120) == "bytes=2048-4095"
    assert range_header(4096, 2048, 5120) == "bytes=4096-5119"


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in reversed(number)]
    return sum(d if i % 2 == 0 else (2 * d - 9 if 2 * d > 9 else 2 * d) for i, d in enumerate(digits)) % 10 == 0


def test_imei_is_stable_per_thing_and_passes_the_luhn_check() -> None:
    # The check itself against the IMEI example of 3GPP TS 23.003 Annex B: 35 209900 176148 1.
    assert luhn_valid("352099001761481") and not luhn_valid("352099001761482")
    imei = imei_of("fota")
    assert imei == imei_of("fota") != imei_of("fota2")
    assert len(imei) == 15 and imei.isdigit() and luhn_valid(imei)
