"""The operator's side of an aws-tracker load run: what a firmware team does on its AWS IoT account
while ``otaharness load aws-tracker`` runs the fleet, through boto3 (moto's endpoints under
``otaharness serve aws-iot``, AWS's otherwise): put the image in a bucket trackers may read, wait
for the fleet's things to exist (each tracker creates its own), then one FOTA job targeting them
all, and read the executions' statuses back. Used by tests/load; docs/load.md shows the same calls
with the AWS CLI.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otaharness.load.fleet import device_number
from otaharness.load.kinds.aws_tracker import DEFAULT_PREFIX

# The FOTA job document of the nRF asset tracker (shared/protocols/aws-iot-jobs.md §4.2).
OPERATION = "app_fw_update"


def thing_names(workers: int, trackers_per_worker: int, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The thing names ``otaharness load aws-tracker`` gives a run's trackers."""
    return [f"{prefix}{device_number(worker, n):09d}" for worker in range(workers)
            for n in range(1, trackers_per_worker + 1)]


@dataclass(frozen=True)
class Image:
    bucket: str
    key: str
    version: str
    size: int

    def job_document(self) -> dict[str, Any]:
        return {"operation": OPERATION, "fwversion": self.version, "size": self.size,
                "location": {"protocol": "https", "host": f"{self.bucket}.s3.amazonaws.com",
                             "path": self.key}}


class IotOperator:
    """boto3 clients for the account (``endpoints``: what ``serve aws-iot --json`` printed; the
    AWS credentials come from the environment, as for the AWS CLI)."""

    def __init__(self, endpoints: dict[str, Any], region: str = "us-east-1") -> None:
        import boto3

        self.endpoints = endpoints
        options = {"endpoint_url": endpoints["aws"], "region_name": region,
                   "verify": endpoints.get("ca")}
        self.iot = boto3.client("iot", **options)
        self.s3 = boto3.client("s3", **options)

    def store_image(self, bucket: str, key: str, version: str, image: bytes) -> Image:
        """The image in a bucket whose policy lets anyone read its objects (trackers download
        without signing, as in the nRF asset tracker's stack)."""
        self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
        self.s3.put_object(Bucket=bucket, Key=key, Body=image)
        return Image(bucket, key, version, len(image))

    def provision(self, names: list[str], folder: Path) -> None:
        """The factory's side of a fleet provisioned before it runs: per thing, the thing, keys
        and a certificate (ACTIVE, attached), written as ``<thing>.cert.pem`` and
        ``<thing>.private.key`` (0600), the layout ``--credentials-dir`` reads."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            self.iot.create_thing(thingName=name)
            issued = self.iot.create_keys_and_certificate(setAsActive=True)
            self.iot.attach_thing_principal(thingName=name, principal=issued["certificateArn"])
            (folder / f"{name}.cert.pem").write_text(issued["certificatePem"])
            key_file = os.open(folder / f"{name}.private.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                               0o600)
            with os.fdopen(key_file, "w") as file:
                file.write(issued["keyPair"]["PrivateKey"])

    def existing(self, names: list[str]) -> dict[str, str]:
        """name -> thing ARN of those of ``names`` that exist now."""
        found = {}
        for name in names:
            try:
                found[name] = self.iot.describe_thing(thingName=name)["thingArn"]
            except self.iot.exceptions.ResourceNotFoundException:
                pass
        return found

    def create_job(self, job_id: str, arns: list[str], image: Image) -> None:
        self.iot.create_job(jobId=job_id, targets=arns, targetSelection="SNAPSHOT",
                            document=json.dumps(image.job_document()))

    def execution_statuses(self, job_id: str) -> dict[str, str]:
        """thing name -> its execution's status, as the back end recorded it."""
        statuses, token = {}, None
        while True:
            page = self.iot.list_job_executions_for_job(
                jobId=job_id, maxResults=100, **({"nextToken": token} if token else {}))
            for summary in page["executionSummaries"]:
                thing = summary["thingArn"].rsplit("/", 1)[-1]
                statuses[thing] = summary["jobExecutionSummary"]["status"]
            token = page.get("nextToken")
            if not token:
                return statuses


class JobOnceProvisioned(threading.Thread):
    """The operator during the run: once every thing of ``names`` exists (each tracker made its
    own), one job targeting them all."""

    def __init__(self, operator: IotOperator, names: list[str], job_id: str, image: Image,
                 every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.operator, self.names, self.job_id, self.image, self.every = (
            operator, names, job_id, image, every)
        self.created = False
        self.arns: dict[str, str] = {}
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                self.arns.update(self.operator.existing(
                    [name for name in self.names if name not in self.arns]))
                if len(self.arns) == len(self.names):
                    self.operator.create_job(self.job_id, list(self.arns.values()), self.image)
                    self.created = True
                    return
            except Exception as exc:  # noqa: BLE001 (kept for the test to show)
                self.errors.append(repr(exc))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)
