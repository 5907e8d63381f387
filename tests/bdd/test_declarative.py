"""The declarative layer (steps/declarative.py): the variants people write reach it, it takes no
line of the detailed features, and it composes with detailed steps in one scenario."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from behave.model import Step
from behave.parser import parse_file
from behave.step_registry import registry

from otaharness.bdd import load_step_library
from otaharness.runtime.broker import find_mosquitto

REPO = Path(__file__).resolve().parents[2]


def _taken_by(step_type: str, text: str) -> str | None:
    load_step_library()
    matcher = registry.find_step_definition(Step("f", 1, step_type.capitalize(), step_type, text))
    return None if matcher is None else f"{Path(matcher.func.__code__.co_filename).stem}.{matcher.func.__name__}"


def _layer_function(name: str):
    """A helper of the layer's module (behave executes step files, so it is not importable)."""
    load_step_library()
    step = next(m.func for m in registry.steps["given"] if m.func.__name__ == "trackers_running")
    return step.__globals__[name]


@pytest.mark.parametrize("step_type, text, taken_by", [
    ("given", 'a tracker "t1" running version 1.0.0', "declarative.trackers_running"),
    ("given", 'A tracker t1 running firmware "1.0.0"', "declarative.trackers_running"),
    ("given", "the trackers t1, t2 and t3 run version 2", "declarative.trackers_running"),
    ("given", '3 asset trackers running firmware "1.0.0"', "declarative.count_trackers_running"),
    ("given", "firmware 1.0.1 is available", "declarative.firmware_available"),
    ("given", 'version "2.0.0" of the firmware is published', "declarative.firmware_available"),
    ("given", "the firmware 9.9.9 is missing", "declarative.firmware_missing"),
    ("given", "the download to tracker t2 is cut after 4 KiB", "declarative.download_cut"),
    ("given", "t2 loses power during the download", "declarative.power_lost_during_download"),
    ("when", 'I upgrade the tracker "t1" to firmware "1.0.1"', "declarative.upgrade"),
    ("when", "I upgrade every tracker to 2", "declarative.upgrade_every"),
    ("when", "I upgrade all the devices to version 2", "declarative.upgrade_every"),
    ("then", "t1 and t2 run version 1.0.1", "declarative.trackers_run"),
    ("then", "every tracker runs firmware 1.0.1", "declarative.every_tracker_runs"),
    ("then", "the upgrade of t1 ends in state timed out", "declarative.upgrade_ends"),
    ("then", "every upgrade ends succeeded", "declarative.every_upgrade_ends"),
    # the firmware REST flow (olt): a type, a gateway, a size
    ("given", 'a device "lamp1" of type "switch" running version 2.0.0', "declarative.trackers_running"),
    ("given", "devices lamp1 and lamp2 of type switch run firmware 2.0.0 behind gateway gw2",
     "declarative.trackers_running"),
    ("given", "2 devices of type switch running version 2.0.0", "declarative.count_trackers_running"),
    ("given", "firmware 2.1.0 of 64 KiB is available", "declarative.firmware_available"),
    ('given', 'firmware "2.1.0" (700 bytes) is available', "declarative.firmware_available"),
    ("given", "firmware 2.1.0 with a 64 KiB image is available", "declarative.firmware_available"),
    ("then", "the installation for lamp1 ends succeeded", "declarative.upgrade_ends"),
    ("then", "every installation ends failed", "declarative.every_upgrade_ends"),
    ("given", 'a device "lamp1" of type "switch"', "olt.device_of_type"),
    ("given", 'firmware "lamp app" version "2.1.0" with a 20 KiB image', "olt.firmware_with_image"),
    # TR-069: MikroTik routers, RouterOS versions, a batch with its options in words
    ("given", 'a MikroTik router "cpe1" running RouterOS 6.48', "declarative.trackers_running"),
    ("given", "2 routers running version 6.48", "declarative.count_trackers_running"),
    ("given", "RouterOS 6.48.4 is available", "declarative.firmware_available"),
    ("when", 'I create the upgrade batch "spring" to RouterOS 6.48.4 at any Inform',
     "declarative.create_batch"),
    ("when", "I create an upgrade batch to 6.48.4 at a Boot, with at most 2 attempts, on Tue and "
     "Wed between 2 and 3", "declarative.create_batch"),
    ("then", "soon all the routers run version 6.48.4".removeprefix("soon "),
     "declarative.every_tracker_runs"),
    ("then", 'the batch "autumn" ends Ready', "declarative.batch_ends"),
    ("given", "cpe2 loses power during the download", "declarative.power_lost_during_download"),
    ("then", 'router "cpe1" runs RouterOS 6.48.4', "tr069.router_runs"),
    ("then", 'router "cpe1" still runs RouterOS 6.48', "tr069.router_still_runs"),
    # CUPS: Basics stations and their packages
    ("given", 'a Basics station "gw1" running package v0', "declarative.trackers_running"),
    ("given", '2 stations running package "v0"', "declarative.count_trackers_running"),
    ("given", 'firmware "v1" of 64 KiB is available', "declarative.firmware_available"),
    ("when", 'I upgrade every station to package "v1"', "declarative.upgrade_every"),
    ("given", "firmware v1 signed with an unknown key is available", "declarative.firmware_available"),
    ("given", 'firmware "v1" of 8 KiB, signed with another key is available',
     "declarative.firmware_available"),
    ("then", "gw2 still runs version v0", "declarative.trackers_run"),
    ("then", 'station "gw1" runs package "v1"', "cups.runs_package"),
    ("then", 'station "gw1" still runs package "v0"', "cups.runs_package"),
    # FUOTA: devices, an image, a campaign with its settings in words, radio loss
    ("given", "3 FUOTA devices running version 1.0.0", "declarative.count_trackers_running"),
    ("given", "the devices a and b run version 1.0.0", "declarative.trackers_running"),
    ("when", "I start a campaign to version 1.1.0 without FEC, a success threshold of 100% and "
     "at most 2 rounds", "declarative.create_campaign"),
    ("when", 'I create the FUOTA campaign for "a" and "b" to 1.1.0 with FEC and redundancy 20%',
     "declarative.create_campaign"),
    ("then", "the campaign ends finished", "declarative.campaign_ends"),
    ("given", "b loses 100% of the fragments", "declarative.loses_frames"),
    ("given", 'the device "a" loses 30% of its frames', "declarative.loses_frames"),
    ("then", "the FUOTA campaign ends finished", "fuota.campaign_ends"),
    ("given", '"b" loses 100% of the fragments in round 1', "fuota.loses_fragments"),
    # faults and checks said in words (loss with a direction, power cuts, resumptions, sizes, time)
    ("given", "d1 loses 30% of its downlinks", "declarative.loses_frames"),
    ("given", 'the device "d2" loses 50% of its uplinks', "declarative.loses_frames"),
    ("given", "the radio link of \"a\" loses 30% of downlinks", "lorawan.radio_downlink_loss"),
    ("given", "d2 loses power during the campaign", "declarative.power_lost_during_download"),
    ("given", "the station gw1 loses power in the middle of the update", "declarative.power_lost_during_download"),
    ("given", 'a tracker named "field-7" running version 3.0.0', "declarative.trackers_running"),
    ("then", "gw1 lost power during the download", "declarative.lost_power_during"),
    ("then", "t2 resumed the download from byte 4 KiB", "declarative.resumed_download_from"),
    ("then", "lamp1 resumed its download twice", "declarative.resumed_times"),
    ("then", "t1 did not resume the download", "declarative.never_resumed"),
    ("then", "d1 heard at least 12 fragments", "declarative.heard_fragments_in_words"),
    ("then", "d3 heard fewer fragments than d1", "declarative.heard_fewer_fragments"),
    ("then", 'device "a" heard 12 fragments on the radio', "assertions.heard_fragments"),
    ("then", "the firmware 1.0.1 image is 64 KiB", "declarative.firmware_size"),
    ("then", "the RouterOS 6.48.4 package is 4128 bytes", "declarative.firmware_size"),
    ("then", "every tracker runs version 1.0.1 within 2 hours", "declarative.within"),
    ("then", "within 30 minutes, cpe1 runs 6.48.4", "declarative.within"),
    ("then", "both devices run 1.1.0", "declarative.every_tracker_runs"),
    ("then", "the upgrade of d2 ends failed", "declarative.upgrade_ends"),
    ("then", "the upgrade of t1 ends failed because image missing", "declarative.upgrade_failed_because"),
    ("then", "the upgrade of cpe1 ends failed with fault 9017", "declarative.upgrade_failed_because"),
    ("then", "cpe1 reports RouterOS 6.48.4 to the ACS", "declarative.reports_version"),
    ("then", "cpe1 needed 2 attempts", "declarative.download_attempts"),
    ("then", '"d2" failed the FUOTA campaign', "fuota.failed_on_device"),
    ("then", 'station "gw1" asks CUPS again within 2 minutes', "cups.asks_cups_again"),
    # a quoted name without "tracker" stays the FUOTA flow's; detailed steps keep their lines
    ("then", '"a" and "b" run firmware 1.1.0', "fuota.runs_firmware"),
    ("then", "the `t1` tracker still runs firmware version `1.0.0`", "aws_iot.tracker_version"),
    ("given", "the `t1` tracker runs its firmware version `1.0.0`", "aws_iot.run_tracker_firmware"),
])
def test_the_variants_people_write(step_type, text, taken_by):
    assert _taken_by(step_type, text) == taken_by


def test_batch_options_in_words():
    """The batch form's options said in words become its fields; words it does not know are an
    error that says what it understands."""
    options = _layer_function("_batch_options")
    assert options(" at a Boot, with at most 2 attempts, on Tuesday and Wed between 2 and 3") == {
        "event": "Boot", "attempts": 2, "days": "Tue, Wed", "hours": "2-3"}
    assert options("") == {}
    with pytest.raises(ValueError, match="not understood: 'at dawn'"):
        options(" at dawn")


def test_campaign_settings_in_words():
    options = _layer_function("_campaign_options")
    assert options(" with FEC, redundancy 20% and at most 3 rounds") == {
        "fec": "true", "redundancy": "0.2", "max_rounds": "3"}
    assert options(" without FEC and a success threshold of 90%") == {
        "fec": "false", "success_threshold": "0.9"}
    with pytest.raises(ValueError, match="not understood: 'at noon'"):
        options(" at noon")


def test_the_layer_takes_no_line_of_the_detailed_features():
    taken = []
    for path in sorted((REPO / "features").rglob("*.feature")):
        if "declarative" in path.parts:
            continue
        for scenario in parse_file(str(path)).walk_scenarios(with_outlines=True):
            for step in [*scenario.background_steps, *scenario.steps]:
                owner = _taken_by(step.step_type, step.name.removeprefix("soon "))
                if owner and owner.startswith("declarative."):
                    taken.append(f"{path.relative_to(REPO)}:{step.line} {step.name}")
    assert not taken, "\n".join(taken)


def _run_outside_the_checkout(tmp_path, feature: str) -> str:
    """Run one scenario through the README's recipe from a folder outside the checkout; its
    steps must all pass but the last, whose error message is returned."""
    steps = _scenarios_outside_the_checkout(tmp_path, feature)[0][0]["steps"]
    statuses = [(step["name"], step["result"]["status"]) for step in steps]
    assert [status for _, status in statuses] == ["passed"] * 7 + ["failed"], statuses
    return _error_of(steps[-1])


def _error_of(step: dict) -> str:
    message = step["result"]["error_message"]
    return message if isinstance(message, str) else "\n".join(message)


def _scenarios_outside_the_checkout(tmp_path, feature: str) -> tuple[list[dict], str]:
    """Run a feature through the README's recipe from a folder outside the checkout: behave's
    JSON of its scenarios, and the console's output."""
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text("from otaharness.bdd.environment import *  # noqa\n")
    (features / "steps" / "ota.py").write_text(
        "from otaharness.bdd import load_step_library\nload_step_library()\n")
    (features / "scenario.feature").write_text(feature)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-m", "otaharness.cli", "run", "-f", "json", "-o",
                          "result.json", "features"], check=False, cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    return (json.loads((tmp_path / "result.json").read_text())[0]["elements"],
            run.stdout + run.stderr)


@pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                    reason="Debian mosquitto is not installed (CI installs it)")
def test_declarative_and_detailed_steps_in_one_scenario(tmp_path):
    feature = textwrap.dedent("""\
        @embedded:aws-iot
        Feature: in a user's words, checked in detail
          Scenario: both layers
            Given a tracker "t1" running version 1.0.0
            And the download to tracker t1 is cut after 4 KiB
            When I upgrade t1 to version 1.0.1
            Then soon the job `job-t1` of the `t1` tracker is SUCCEEDED
            And the `t1` tracker reports firmware version `1.0.1` in its shadow
            And device "t1" resumed the download 1 time
            And t1 runs version 1.0.1
            And t1 runs version 9.9.9
        """)
    message = _run_outside_the_checkout(tmp_path, feature)
    assert "the `t1` tracker runs 1.0.1" in message  # the tracker's own state, not the job's


@pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                    reason="Debian mosquitto is not installed (CI installs it)")
def test_the_same_lines_in_another_flow_follow_its_tag(tmp_path):
    """Under `@embedded:olt` the lines run the firmware REST flow's steps: the cut lands on the
    device's gateway (which resumes), and what a device runs is read from its slot."""
    feature = textwrap.dedent("""\
        @embedded:olt
        Feature: in a user's words, another flow
          Scenario: both layers
            Given a device "lamp1" of type "switch" running version 2.0.0 behind gateway gw7
            And firmware 2.1.0 of 64 KiB is available
            And the download to lamp1 is cut after 32 KiB
            When I upgrade lamp1 to version 2.1.0
            Then soon the installation for lamp1 ends succeeded
            And gateway "gw7" resumed the cut download where it stopped
            And device "lamp1" reports version "2.1.0" in its firmware slot
            And lamp1 runs version 2.0.0
        """)
    message = _run_outside_the_checkout(tmp_path, feature)
    assert "device lamp1 runs 2.1.0, not 2.0.0" in message


@pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                    reason="Debian mosquitto is not installed (CI installs it)")
def test_a_tr069_version_the_flow_cannot_serve_is_said_at_its_line(tmp_path):
    """A RouterOS version without packages, or an AWS-only `is missing` line, stops at that line
    with what to write instead (it used to fail three steps down, in the upload, or make an AWS
    bucket the router never used)."""
    feature = textwrap.dedent("""\
        @embedded:tr069
        Feature: versions the TR-069 flow has no packages for
          Scenario: a version nobody has
            Given a MikroTik router "cpe1" running RouterOS 6.48
            When I upgrade cpe1 to version 6.49

          Scenario: a missing image
            Given a MikroTik router "cpe1" running RouterOS 6.48
            And firmware 9.9.9 is missing
        """)
    (unknown, missing), output = _scenarios_outside_the_checkout(tmp_path, feature)
    assert [step["result"]["status"] for step in unknown["steps"]] == ["passed", "error"]
    assert [step["result"]["status"] for step in missing["steps"]] == ["passed", "error"]
    reasons = re.findall(r"^  reason: +(.+)$", output, re.MULTILINE)  # the failure blocks
    assert len(reasons) == 2, output
    assert reasons[0].startswith("ValueError: no RouterOS 6.49 packages in fixtures/tr069 (the "
                                 "TR-069 flow has 6.48.4)"), reasons
    assert reasons[1].startswith("ValueError: `firmware 9.9.9 is missing` is the AWS IoT "
                                 "flow's"), reasons


def test_the_catalogue_shows_the_layer_in_words():
    """`otaharness steps` lists each regular-expression step by an example of its docstring that
    it matches, and keeps the expression for tools."""
    from otaharness.bdd.catalogue import catalogue

    layer = [entry for entry in catalogue() if entry.flow == "declarative"]
    assert layer and all(entry.regex and "(?" not in entry.pattern for entry in layer)
    shown = {entry.text for entry in layer}
    assert {"Given 3 trackers running version 1.0.0", "Then every upgrade ends succeeded",
            'Then the tracker "t1" runs version 1.0.1'} <= shown
