"""Common steps for every flow: time, values, assertions, link and device faults."""

import datetime as dt
import json
import uuid

from behave import given, then, when

from otaharness.bdd.support import (
    json_argument, lookup, mismatches, ota, substitute)
from otaharness.runtime.faults import parse_link_fault
from otaharness.units import parse_duration

SOON_LIMIT = 3600.0  # scenario seconds a `soon` step keeps retrying

# -- time ------------------------------------------------------------------------------------


@given("the time is {timestamp}")
def set_time(context, timestamp):
    """Set the scenario's wall clock (UTC, ISO 8601), e.g. `Given the time is 2026-03-02T02:00:00Z`.
    Timers keep their deadlines; timestamps on the wire follow the new time."""
    when_ = dt.datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
    ota(context).clock.set_utc(when_)


@when("{duration} pass")
@when("{duration} passes")
def let_time_pass(context, duration):
    """Let scenario time pass, e.g. `When 30 minutes pass`, `When 2 days pass`: every timer due
    meanwhile fires, in order. On the virtual clock this costs no real waiting."""
    ota(context).run_for(parse_duration(duration))


@then("the time is {timestamp}")
def the_time_is(context, timestamp):
    """The scenario's clock shows this UTC time (to the second)."""
    expected = dt.datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
    actual = ota(context).clock.utcnow().replace(microsecond=0)
    assert actual == expected, f"the time is {actual.isoformat()}, expected {expected.isoformat()}"


@then("soon {step_text}")
@when("soon {step_text}")
def soon(context, step_text):
    """Retry another step with back-off on the scenario clock (1 s, 2 s, 4 s … then every 16 s)
    until it passes, for at most an hour of scenario time, as the nRF Asset Tracker's `Soon`
    does. The last failure is reported."""
    keyword = context.ota_step.step_type.capitalize()  # "Then soon …" retries a Then step
    step = f"{keyword} {step_text}"
    if context.text is not None:  # the doc string belongs to the retried step
        step += '\n"""\n' + context.text + '\n"""'
    runtime = ota(context)
    give_up, delay = runtime.clock.monotonic() + SOON_LIMIT, 1.0
    while True:
        try:
            context.execute_steps(step)
            return
        except AssertionError as failure:
            # behave reports a sub-step that raised (not asserted) as "ERROR SUB-STEP": a broken
            # step, not a state still to come, so it is not retried.
            if str(failure).startswith("ERROR") or runtime.clock.monotonic() >= give_up:
                raise
        runtime.run_for(delay)
        delay = min(delay * 2, 16.0)


# -- values ----------------------------------------------------------------------------------


@given("I have a random UUID in `{name}`")
def random_uuid(context, name):
    """Store a UUID (from the scenario's seed, so a replay gets the same one) as `${name}`."""
    ota(context).values[name] = str(uuid.UUID(int=ota(context).rng("uuid").getrandbits(128),
                                              version=4))


@given("I have this JSON-encoded in `{name}`")
@when("I have this JSON-encoded in `{name}`")
def json_encoded(context, name):
    """Store the doc string's JSON, encoded as one string, as `${name}`."""
    ota(context).values[name] = json.dumps(json_argument(context), separators=(",", ":"))


@given("`{name}` is `{value}`")
def set_value(context, name, value):
    """Store a value as `${name}`."""
    ota(context).values[name] = substitute(value, ota(context).values)


@then("`{path}` should match")
def should_match(context, path):
    """The stored value contains the doc string's JSON (objects compare on its keys only)."""
    problems = mismatches(json_argument(context), lookup(ota(context).values, path))
    assert not problems, f"`{path}` does not match:\n  " + "\n  ".join(problems)


@then("`{path}` should equal")
def should_equal_json(context, path):
    """The stored value equals the doc string's JSON exactly."""
    expected, actual = json_argument(context), lookup(ota(context).values, path)
    assert expected == actual, f"`{path}` is {actual!r}, expected {expected!r}"


@then("`{path}` should equal `{expected}`")
def should_equal(context, path, expected):
    """The stored value, as text, equals `expected` (with `${name}` substituted)."""
    actual = lookup(ota(context).values, path)
    expected = substitute(expected, ota(context).values)
    assert str(actual) == expected, f"`{path}` is {actual!r}, expected {expected!r}"


# -- link faults -----------------------------------------------------------------------------


def _endpoint_url(context, endpoint: str) -> str:
    return ota(context).endpoint_url(endpoint)


@given('the link between "{device}" and the {endpoint} endpoint is {fault}')
@when('the link between "{device}" and the {endpoint} endpoint is {fault}')
def link_fault(context, device, endpoint, fault):
    """Fault a device's TCP link to an endpoint: `cut after 4 KiB`, `delayed by 2 seconds`,
    `throttled to 1 KiB/s`, `dropped`, `refused`, or `restored` (no fault)."""
    runtime = ota(context)
    url = _endpoint_url(context, endpoint)
    parsed = None if fault.strip() == "restored" else parse_link_fault(fault)
    runtime.run(runtime.set_link_fault(device, url, parsed))


# -- device faults ---------------------------------------------------------------------------


def _device(context, name):
    devices = ota(context).devices
    if name not in devices:
        raise KeyError(f"no device {name!r} (known: {', '.join(sorted(devices)) or 'none'})")
    return devices[name]


@when('device "{name}" reboots')
def device_reboots(context, name):
    """The device restarts in an orderly way."""
    ota(context).run(_device(context, name).reboot())


@when('device "{name}" loses power')
def device_loses_power(context, name):
    """Power cut: the device's RAM state is lost, its files and non-volatile memory are kept;
    it boots again when power returns."""
    ota(context).run(_device(context, name).power_cut())
