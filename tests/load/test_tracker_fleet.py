"""``otaharness load aws-tracker`` against ``otaharness serve aws-iot``: nRF9160 trackers run by a
Locust master and two workers (or one local process), each with the thing, keys and certificate
the IoT control plane issued it, on mutual TLS; the operator puts the image in S3 and makes one
FOTA job once every thing exists; judged from the job executions moto recorded and the master's
fleet report."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fleet_run import Process, Served, finish, free_port, load_command

from otaharness.load.aws_operator import (
    Image,
    IotOperator,
    JobOnceProvisioned,
    thing_names,
)
from otaharness.runtime.broker import find_mosquitto
from otaharness.servers.aws_iot import DATA_ENDPOINT
from otaharness.servers.aws_iot.moto_server import DUMMY_CREDENTIALS

pytestmark = pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                                reason="Debian mosquitto is not installed (CI installs it)")

TRACKERS_PER_WORKER = 4
FRAGMENT = 2048


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    # moto takes any credentials; the load processes inherit these, as a user's shell has its own
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS["aws_secret_access_key"])
    server = Served("aws-iot")
    try:
        yield IotOperator(server.endpoints)
    finally:
        server.stop()


def tracker_options(aws: IotOperator, tmp_path: Path, *extra: str) -> list[str]:
    """The run's fleet options; identities from the control plane unless ``extra`` names a
    --credentials-dir."""
    endpoints = aws.endpoints
    identity = [] if "--credentials-dir" in extra else ["--aws-api", endpoints["aws"]]
    return ["--until-upgraded", "--fleet-report", str(tmp_path / "fleet.json"),
            "--mqtt", endpoints["mqtts"], "--ca", endpoints["ca"], *identity,
            "--s3-endpoint", endpoints["aws"], "--server-name", DATA_ENDPOINT,
            "--fragment-size", str(FRAGMENT), "--tracker-reboot-seconds", "1", *extra]


def fragments(image: Image) -> int:
    return -(-image.size // FRAGMENT)


def run_locally(aws: IotOperator, image: Image, tmp_path: Path, users: int,
                *extra: str) -> tuple[dict[str, Any], dict[str, str]]:
    """One local Locust process; the fleet report it wrote and the executions' statuses."""
    operator = JobOnceProvisioned(aws, thing_names(1, users), "fleet", image)
    run = Process("local", load_command(
        "aws-tracker", "--headless", "-u", str(users), "-r", str(users), "--run-time", "3m",
        *tracker_options(aws, tmp_path, *extra)), tmp_path)
    operator.start()
    try:
        code = finish(run, [])
    finally:
        operator.stop()
    assert code == 0, run.text()[-4000:]
    assert operator.created and operator.errors == []
    return json.loads((tmp_path / "fleet.json").read_text()), aws.execution_statuses("fleet")


@pytest.mark.load
@pytest.mark.slow
def test_two_workers_upgrade_trackers_and_the_master_adds_up_to_the_job_executions(
        tmp_path: Path, aws: IotOperator) -> None:
    image = aws.store_image("fota-load", "app-1.1.0.bin", "1.1.0", os.urandom(20 * 1024))
    names = thing_names(2, TRACKERS_PER_WORKER)
    users = len(names)
    operator = JobOnceProvisioned(aws, names, "fleet", image)
    operator.start()
    port = free_port()
    master = Process("master", load_command(
        "aws-tracker", "--master", "--headless", "--expect-workers", "2",
        "--master-bind-port", str(port), "-u", str(users), "-r", str(users), "--run-time", "4m",
        *tracker_options(aws, tmp_path)), tmp_path)
    workers = [Process(f"worker{n}", load_command("aws-tracker", "--worker", "--master-port",
                                                  str(port)), tmp_path) for n in range(2)]
    try:
        code = finish(master, workers)
    finally:
        operator.stop()
    assert code == 0, master.text()[-4000:] + workers[0].text()[-3000:]
    assert operator.created and operator.errors == []
    report = json.loads((tmp_path / "fleet.json").read_text())

    # every thing (names from both workers' indexes) has its execution SUCCEEDED in the back end
    statuses = aws.execution_statuses("fleet")
    assert sorted(statuses) == sorted(names)
    assert set(statuses.values()) == {"SUCCEEDED"}

    # the master's totals, summed over both workers, equal what the back end recorded
    assert report["succeeded"] == list(statuses.values()).count("SUCCEEDED") == users
    assert report["started"] == users and report["failed"] == {}
    assert sorted(w["most_devices"] for w in report["workers"].values()) == [
        TRACKERS_PER_WORKER, TRACKERS_PER_WORKER]
    entries = report["requests"]
    gets = entries["aws-tracker HTTPS range GET"]
    assert (gets["requests"], gets["failures"]) == (users * fragments(image), 0)
    assert gets["bytes"] == report["bytes_downloaded"] == users * image.size
    updates = entries["aws-tracker MQTT job update"]  # IN_PROGRESS, then SUCCEEDED after the boot
    assert (updates["requests"], updates["failures"]) == (2 * users, 0)
    connects = entries["aws-tracker MQTT connect"]  # with 1.0.0, then booted into 1.1.0
    assert connects["failures"] == 0 and connects["requests"] == 2 * users
    provisioning = entries["aws-tracker HTTPS IoT API"]  # thing, keys and certificate, attach
    assert (provisioning["requests"], provisioning["failures"]) == (3 * users, 0)
    assert entries["aws-tracker upgrade"]["requests"] == users
    assert set(report["time_to_upgrade"]) == {"p50_ms", "p95_ms", "p99_ms"}
    assert report["lost_workers"] == []


@pytest.mark.load
@pytest.mark.slow
def test_trackers_provisioned_before_the_run_use_their_credentials_dir(
        tmp_path: Path, aws: IotOperator) -> None:
    users = 4
    image = aws.store_image("fota-load", "app-1.1.0.bin", "1.1.0", os.urandom(8 * 1024))
    aws.provision(thing_names(1, users), tmp_path / "credentials")
    report, statuses = run_locally(aws, image, tmp_path, users,
                                   "--credentials-dir", str(tmp_path / "credentials"))
    assert len(statuses) == users and set(statuses.values()) == {"SUCCEEDED"}
    assert report["succeeded"] == users and report["failed"] == {}
    assert "aws-tracker HTTPS IoT API" not in report["requests"]  # nothing provisioned in the run
    connects = report["requests"]["aws-tracker MQTT connect"]
    assert (connects["requests"], connects["failures"]) == (2 * users, 0)


@pytest.mark.load
@pytest.mark.slow
def test_a_power_cut_during_the_download_restarts_it_and_every_tracker_upgrades(
        tmp_path: Path, aws: IotOperator) -> None:
    users = 8
    image = aws.store_image("fota-load", "app-1.1.0.bin", "1.1.0", os.urandom(64 * 1024))
    report, statuses = run_locally(
        aws, image, tmp_path, users, "--fault", "power cut at 32 KiB for 1 s",
        "--fault-devices", "25%", "--exit-code-on-error", "0")  # the broken-off GETs fail
    assert len(statuses) == users and set(statuses.values()) == {"SUCCEEDED"}
    assert report["succeeded"] == users and report["failed"] == {}
    gets = report["requests"]["aws-tracker HTTPS range GET"]
    # a quarter of the trackers lost power mid-download: each one GET broken off, and the
    # download started again from byte 0 after the boot (the offset is RAM)
    cut = users // 4
    assert gets["failures"] == cut
    assert gets["requests"] > users * fragments(image) + cut
    assert report["bytes_downloaded"] > users * image.size
    updates = report["requests"]["aws-tracker MQTT job update"]
    # the cut trackers found the job IN_PROGRESS after booting and updated it so again
    assert (updates["requests"], updates["failures"]) == (2 * users + cut, 0)


@pytest.mark.load
@pytest.mark.slow
def test_an_image_missing_from_s3_fails_every_tracker_with_its_reason(
        tmp_path: Path, aws: IotOperator) -> None:
    users = 4
    stored = aws.store_image("fota-load", "app-1.1.0.bin", "1.1.0", os.urandom(4096))
    missing = Image(stored.bucket, "not-uploaded.bin", "1.1.0", stored.size)
    report, statuses = run_locally(aws, missing, tmp_path, users, "--exit-code-on-error", "0")
    assert len(statuses) == users and set(statuses.values()) == {"FAILED"}
    assert report["succeeded"] == 0 and report["started"] == users
    assert sum(report["failed"].values()) == users
    assert all("HTTP 404" in reason for reason in report["failed"]), report["failed"]


@pytest.mark.load
@pytest.mark.slow
def test_reboot_waves_during_throttled_downloads_still_end_in_one_upgrade_per_tracker(
        tmp_path: Path, aws: IotOperator) -> None:
    users = 4
    image = aws.store_image("fota-load", "app-1.1.0.bin", "1.1.0", os.urandom(48 * 1024))
    s3 = aws.endpoints["aws"].split("//")[1]
    # about 3 s per download; every 3 s half the fleet reboots (the other half the next wave)
    report, statuses = run_locally(
        aws, image, tmp_path, users, "--fault", "throttled to 16 KiB/s", "--fault-endpoint", s3,
        "--reboot-wave-every", "3", "--reboot-wave-share", "50",
        "--exit-code-on-error", "0")  # a wave may break off a GET or a job update, by design
    assert len(statuses) == users and set(statuses.values()) == {"SUCCEEDED"}
    # a reboot mid-download is the same job offered again: still one upgrade per tracker
    assert report["succeeded"] == users and report["started"] == users
    assert report["failed"] == {}
    assert report["reboot_waves"] >= 1
    connects = report["requests"]["aws-tracker MQTT connect"]
    # 1.0.0, 1.1.0, and once more for each of the first wave's half
    assert connects["requests"] >= 2 * users + users // 2


@pytest.mark.load
@pytest.mark.slow  # each starts Locust (seconds of imports)
@pytest.mark.parametrize("arguments, message", [
    ([], "otaharness load aws-tracker needs --mqtt and --aws-api or --credentials-dir"),
    (["--mqtt", "mqtts://127.0.0.1:9"],
     "otaharness load aws-tracker needs --aws-api or --credentials-dir"),
])
def test_a_run_without_broker_or_identity_is_refused_before_any_tracker_starts(
        arguments: list[str], message: str) -> None:
    result = subprocess.run(load_command("aws-tracker", "--headless", "-u", "1", "-t", "5s",
                                         *arguments), capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "device host pid" not in result.stderr
