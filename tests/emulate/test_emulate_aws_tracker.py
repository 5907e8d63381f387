"""`otaharness emulate aws-tracker` against `otaharness serve aws-iot`: the S3 link of one
tracker cut mid-download, the download resuming, the summary against the job's executions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from urllib.parse import urlsplit

import boto3
import pytest
from emulate_processes import Emulation, parses_as_iso_utc, served

from otaharness.runtime.broker import find_mosquitto
from otaharness.servers.aws_iot import DATA_ENDPOINT

pytestmark = pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                                reason="Debian mosquitto is not installed (CI installs it)")

IMAGE = os.urandom(40 * 1024)


def aws(endpoints: dict, service: str):
    return boto3.client(service, endpoint_url=endpoints["aws"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        verify=endpoints["ca"])


def test_a_cut_download_resumes_and_the_summary_counts_the_jobs_executions(tmp_path, tshark):
    with served("aws-iot", cwd=tmp_path) as endpoints:
        iot, s3 = aws(endpoints, "iot"), aws(endpoints, "s3")
        arns = []
        for number in (1, 2, 3):
            arns.append(iot.create_thing(thingName=f"em-{number}")["thingArn"])
            cert = iot.create_keys_and_certificate(setAsActive=True)
            iot.attach_thing_principal(thingName=f"em-{number}", principal=cert["certificateArn"])
            (tmp_path / f"em-{number}.cert.pem").write_text(cert["certificatePem"])
            (tmp_path / f"em-{number}.private.key").write_text(cert["keyPair"]["PrivateKey"])
        s3.create_bucket(Bucket="fota-bucket")
        s3.put_object(Bucket="fota-bucket", Key="app.bin", Body=IMAGE, ACL="public-read")
        s3_address = urlsplit(endpoints["aws"])
        emulation = Emulation(
            "aws-tracker", "--mqtt", endpoints["mqtts"], "--s3-endpoint", endpoints["aws"],
            "--ca", endpoints["ca"], "--credentials-dir", str(tmp_path), "--server-name",
            DATA_ENDPOINT, "--count", "3", "--prefix", "em-", "--reboot-seconds", "0.1",
            "--fault", "cut after 16 KiB", "--fault-devices", "1",
            "--fault-endpoint", f"{s3_address.hostname}:{s3_address.port}",
            "--capture", str(tmp_path / "trackers.pcapng"), "-v", cwd=tmp_path)
        emulation.wait_for("three trackers connected", lambda _: len(emulation.devices_with("connected")) == 3)
        document = {"operation": "app_fw_update", "size": len(IMAGE), "fwversion": "1.0.1",
                    "location": {"protocol": "https", "host": "fota-bucket.s3.amazonaws.com",
                                 "path": "app.bin"}}
        iot.create_job(jobId="up", targets=arns, document=json.dumps(document))

        def statuses() -> dict[str, str]:
            found = iot.list_job_executions_for_job(jobId="up")["executionSummaries"]
            return {execution["thingArn"].rsplit("/", 1)[-1]: execution["jobExecutionSummary"]["status"]
                    for execution in found}

        emulation.wait_for("three upgrades", lambda _: len(emulation.devices_with("upgraded")) == 3
                           and set(statuses().values()) == {"SUCCEEDED"})
        assert emulation.stop(signal.SIGINT) == 128 + signal.SIGINT
        executions = statuses()

    # The cut happened on the wire, on tracker 1's S3 link only, and its download went on.
    cuts = [event for event in emulation.events if event["event"] == "link_fault"]
    assert {event["device"] for event in cuts} == {"em-1"} and cuts[0]["cuts"] == 1
    assert emulation.devices_with("download_resumed") == {"em-1"}
    resumed = next(e for e in emulation.events if e["event"] == "download_resumed")
    assert 0 < resumed["bytes"] < len(IMAGE)
    summary = emulation.summary
    assert summary["states"] == {"upgraded": list(executions.values()).count("SUCCEEDED")} == {"upgraded": 3}
    assert summary["failures"] == {}
    assert summary["faults"] == {"plan": "cut after 16384 bytes", "devices": 1, "link_cuts": 1,
                                 "refused": 0}
    assert all(parses_as_iso_utc(event["time"]) for event in [*emulation.events, summary])
    # -v: one readable line per event on stderr (stdout holds the JSON).
    assert "em-1" in emulation.stderr and "download resumed" in emulation.stderr
    # The capture decrypts: MQTT inside TLS, the range requests of the download.
    shown = subprocess.run([tshark, "-r", str(tmp_path / "trackers.pcapng"), "-Y",
                            "mqtt.msgtype == 3 || http.request", "-T", "fields", "-e", "ip.src",
                            "-e", "mqtt.topic", "-e", "http.request.uri"],
                           capture_output=True, text=True, check=True).stdout
    assert "$aws/things/em-2/jobs/up/update" in shown
    assert "/app.bin" in shown
