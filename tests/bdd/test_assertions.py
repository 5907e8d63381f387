"""steps/assertions.py end to end: features in a user's repository (the README recipe) run on
the real back ends and emulators; each check passes where the devices did what it says and
fails, saying what they did, where they did not."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from otaharness.runtime.broker import find_mosquitto

FEATURE = textwrap.dedent("""\
    Feature: checks judged on the devices, the radio and the file server

      @embedded:aws-iot
      Scenario: a tracker goes on with a cut download
        Given a FOTA bucket in `fotaBucketName`
        And the firmware `1.0.1` is in the FOTA bucket `${fotaBucketName}` as `fw-1.0.1.hex`
        And the `t1` tracker runs its firmware version `1.0.0`
        And the link between "t1" and the AWS endpoint is cut after 4 KiB
        When I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
        Then soon the job `jobId` of the `t1` tracker is SUCCEEDED
        And device "t1" resumed the download 1 time
        And device "t1" did not resume a download

      @embedded:aws-iot
      Scenario: a tracker asked for its version before its first upgrade
        Given a tracker "t1" running version 1.0.0
        Then t1 reports version 1.0.0

      @embedded:olt
      Scenario: a gateway resumes from its flash
        Given the device type "switch" declares the firmware, bootloader and configuration slots
        And gateway "gw1" connects device "lamp1" of type "switch"
        And firmware "lamp app" version "2.1.0" with a 64 KiB image
        And the link between "gw1" and the OLT endpoint is cut after 32 KiB
        When I install firmware "lamp app" into the firmware slot of device "lamp1"
        Then soon the installation is succeeded
        And device "gw1" resumed the download 1 time
        And device "gw1" resumed the download from byte 1

      @embedded:tr069
      Scenario: an uploaded file of a chosen size
        Given the operator's file "big.bin" is 300 KiB of random bytes
        And the operator uploads these files
          | file    | type | OUI    | product class | version |
          | big.bin | 2    | E48D8C | CHR           | 1       |
        And the MikroTik CHR router "cpe1" is switched on
        Then the ACS file server holds "big.bin" of 300 KiB
        And the ACS file server holds "big.bin" of 307200 bytes
        And the ACS file server holds "big.bin" of 307201 bytes

      @embedded:tr069
      Scenario: a router fetches files whole
        Given the MikroTik CHR router "cpe1" is switched on
        Then device "cpe1" resumed the download 1 time

      @embedded:fuota
      Scenario: fragments each device heard over the air
        Given a LoRaWAN gateway "gw1" at 0 m, 0 m
        And a firmware image of 3 KiB for version 1.1.0
        And a FUOTA device "a" at 800 m, 0 m
        And a FUOTA device "b" at 600 m, 0 m
        And "b" loses 100% of the fragments in round 1
        When a FUOTA campaign starts for "a" and "b" with
          | setting           | value |
          | fec               | false |
          | success_threshold | 1.0   |
          | max_rounds        | 2     |
        Then the FUOTA campaign ends finished
        And the devices heard these numbers of fragments on the radio
          | device | fragments   |
          | a      | 15          |
          | b      | at least 15 |
        And device "a" heard at most 15 fragments on the radio
        And the devices heard these numbers of fragments on the radio
          | device | fragments |
          | a      | no        |
          | b      | 16        |
    """)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{scenario name: [(step text, status, error message)]} of one behave run."""
    root = tmp_path_factory.mktemp("user")
    features = root / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text("from otaharness.bdd.environment import *  # noqa\n")
    (features / "steps" / "ota.py").write_text(
        "from otaharness.bdd import load_step_library\nload_step_library()\n")
    (features / "checks.feature").write_text(FEATURE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "otaharness.cli", "run", "-f", "json", "-o",
                    "result.json", "--no-snippets", "features"], cwd=root, env=env,
                   capture_output=True, text=True)
    report = json.loads((root / "result.json").read_text())
    found = {}
    for element in report[0]["elements"]:
        found[element["name"]] = [
            (step["name"], step.get("result", {}).get("status"), _message(step))
            for step in element["steps"]]
    return found


def _message(step) -> str:
    message = step.get("result", {}).get("error_message") or ""
    return message if isinstance(message, str) else "\n".join(message)


def _step(results, scenario, text):
    matches = [step for step in results[scenario] if step[0] == text]
    assert matches, f"no step {text!r} in {results[scenario]}"
    return matches[0]


pytestmark = pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                                reason="Debian mosquitto is not installed (CI installs it)")


def test_resumption_is_judged_from_the_downloading_device(results):
    tracker = "a tracker goes on with a cut download"
    assert _step(results, tracker, 'device "t1" resumed the download 1 time')[1] == "passed", \
        results[tracker]
    _, status, message = _step(results, tracker, 'device "t1" did not resume a download')
    assert status == "failed" and "t1: expected no resumption, seen t1 resumed at bytes [" in message
    gateway = "a gateway resumes from its flash"
    assert _step(results, gateway, 'device "gw1" resumed the download 1 time')[1] == "passed", \
        results[gateway]
    _, status, message = _step(results, gateway, 'device "gw1" resumed the download from byte 1')
    offset = int(message.rsplit("[", 1)[1].rstrip("]"))
    assert status == "failed" and 0 < offset < 64 * 1024  # inside the image: it kept its flash
    _, status, message = _step(results, "a router fetches files whole",
                               'device "cpe1" resumed the download 1 time')
    assert status == "failed" and "cpe1 (Cpe) never resumes a download" in message


def test_the_size_of_an_uploaded_file_is_set_and_seen(results):
    scenario = "an uploaded file of a chosen size"
    assert _step(results, scenario, 'the ACS file server holds "big.bin" of 300 KiB')[1] == "passed"
    assert _step(results, scenario,
                 'the ACS file server holds "big.bin" of 307200 bytes')[1] == "passed"
    _, status, message = _step(results, scenario, 'the ACS file server holds "big.bin" of 307201 bytes')
    assert status == "failed" and "big.bin: expected 307201 bytes, seen recorded 307200 bytes, stored 307200" in message


def test_fragments_heard_per_device_on_the_radio(results):
    """3 KiB in fragments: 15 uncoded ones per round. "a" hears round 1's; "b" loses every frame
    of round 1 on the radio and hears round 2's; "a" has left the session by then."""
    scenario = "fragments each device heard over the air"
    steps = results[scenario]
    table_checks = [step for step in steps
                    if step[0] == "the devices heard these numbers of fragments on the radio"]
    assert table_checks[0][1] == "passed", steps
    assert _step(results, scenario, 'device "a" heard at most 15 fragments on the radio')[1] == "passed"
    status, message = table_checks[1][1:]
    assert status == "failed"
    assert "a: expected no fragments heard, seen a heard 15 fragments on the radio" in message
    assert "b: expected 16 fragments heard, seen b heard 15" in message  # every row reported


def test_a_tracker_without_a_shadow_fails_the_version_check_in_its_terms(results):
    """AWS answers ResourceNotFound for a shadow never written; the check says the tracker has
    reported nothing yet and what it runs, not the SDK's error."""
    _, status, message = _step(results, "a tracker asked for its version before its first upgrade",
                               "t1 reports version 1.0.0")
    assert status == "failed" and "the `t1` tracker has reported no version" in message, message
    assert "runs 1.0.0" in message and "ResourceNotFoundException" not in message, message
