"""The declarative layer: a flow stated in a handful of lines in its users' words, one line per
intent, built from the detailed steps (each line runs detailed steps through
``context.execute_steps``, so the two compose: a detailed step may follow a declarative one).

AWS IoT Jobs FOTA with nRF9160 trackers::

    Given 2 trackers running version 1.0.0            (or: a tracker "t1" running firmware "1.0.0")
    And firmware 1.0.1 is available                     (uploaded to the FOTA bucket as fw-1.0.1.hex)
    And the download to tracker t2 is cut after 4 KiB
    When I upgrade every tracker to version 1.0.1       (a job per tracker: `job-<tracker>`)
    Then soon every tracker runs version 1.0.1
    And every upgrade ends succeeded

Natural variants are accepted: a/an/the, quoted or bare names, `version 2` or `firmware "2.0.0"`,
one name or a list (`t1, t2 and t3`), singular or plural, "every"/"all"/"each". A quoted name
needs the word "tracker" (`the tracker "t1" runs …`): `"a" runs firmware …` is the FUOTA
flow's. Detailed steps of aws_iot, assertions and common are tried first (behave tries step
modules in file order).
"""

import re

from behave import given, then, use_step_matcher, when
from behave.matchers import get_step_matcher_factory

from otaharness.bdd.support import ota

# Regular expressions here; whatever matcher was current (behave's "parse", or a user's choice)
# is put back at the end of the module.
_FACTORY = get_step_matcher_factory()
_PREVIOUS = next((name for name, kind in _FACTORY.step_matcher_class_mapping.items()
                  if kind is _FACTORY.current_matcher), "parse")
use_step_matcher("re")

_NAME = r'"?[A-Za-z][\w.-]*"?'
_AND = r"(?:,\s*and\s+|,\s*|\s+and\s+)"
_NAMES = rf"(?P<names>{_NAME}(?:{_AND}{_NAME})*)"
_BARE_NAMES = rf"(?P<names>[A-Za-z][\w.-]*(?:{_AND}[A-Za-z][\w.-]*)*)"  # t1, t2 and t3
_VERSION = r'(?:(?:firmware|version)\s+)*"?(?P<version>[\w.+-]+)"?'
_ARTICLE = r"(?:(?:a|an|the)\s+)?"
_TRACKER = r"(?:nRF9160\s+)?(?:asset\s+)?(?:tracker|device)s?\s+"
_EVERY = r"(?:every|each|all(?:\s+the)?|all\s+of\s+the)\s+(?:trackers?|devices?)"

# AWS IoT job execution states (what "ends succeeded" and the like name)
_STATES = {"succeeded": "SUCCEEDED", "failed": "FAILED", "in progress": "IN_PROGRESS",
           "queued": "QUEUED", "canceled": "CANCELED", "cancelled": "CANCELED",
           "timed out": "TIMED_OUT", "rejected": "REJECTED", "removed": "REMOVED"}


def intent(*keywords):
    """Register a step for these keywords whose regular expressions match the whole line (behave
    anchors them), in any letter case; several expressions may share one function."""

    def register(*patterns: str):
        def decorate(func):
            for keyword in keywords:
                for pattern in patterns:
                    keyword(f"(?i:{pattern})")(func)
            return func
        return decorate

    return register


# Whom a line is about: `the tracker "t1"`, `trackers t1 and t2`, or bare names `t1, t2 and t3`.
# A quoted name without the word "tracker" is left to the other flows' steps (`"a" runs …`).
def _who(rest: str) -> tuple[str, str]:
    return (rf"{_ARTICLE}{_TRACKER}{_NAMES}{rest}", rf"{_BARE_NAMES}{rest}")


def _names(text: str) -> list[str]:
    return [name.strip('"') for name in re.split(_AND, text.strip())]


def _layer(context) -> dict:
    """What this layer remembers in the scenario (with its values, so `${declarative.trackers}`)."""
    return ota(context).values.setdefault("declarative", {"trackers": [], "missing": []})


def _trackers(context) -> list[str]:
    """The trackers this layer switched on in the scenario, in order."""
    return _layer(context)["trackers"]


def _switched_on(context, name: str, version: str) -> None:
    _run(context, f"Given the `{name}` tracker runs its firmware version `{version}`")
    if name not in _trackers(context):
        _trackers(context).append(name)


def _run(context, *lines: str) -> None:
    context.execute_steps("\n".join(lines))


def _job(name: str) -> str:
    return f"job-{name}"


def _bucket(context) -> dict:
    """The FOTA bucket (made once, as `${fotaBucketName}`); the scenario's values."""
    values = ota(context).values
    if "fotaBucketName" not in values:
        _run(context, "Given a FOTA bucket in `fotaBucketName`")
    return values


def _missing(context) -> list[str]:
    """Versions the scenario said have no image."""
    return _layer(context)["missing"]


def _firmware_available(context, version: str) -> None:
    """The image for ``version`` in the FOTA bucket as `fw-<version>.hex` (the bucket made once),
    unless the scenario said it is missing."""
    values = _bucket(context)
    if version not in values.get("firmware", {}) and version not in _missing(context):
        _run(context, f"Given the firmware `{version}` is in the FOTA bucket "
                      f"`${{fotaBucketName}}` as `fw-{version}.hex`")


# -- devices and firmware ------------------------------------------------------------------------


@intent(given)(*_who(rf"\s+(?:is\s+|are\s+)?(?:running|runs|run|on)\s+{_VERSION}"))
def trackers_running(context, names, version):
    """Trackers (the nRF9160 asset tracker firmware) switched on and connected, running this
    version: `a tracker "t1" running version 1.0.0`, `the trackers t1 and t2 run firmware "1.0.0"`."""
    for name in _names(names):
        _switched_on(context, name, version)


@intent(given)(rf"(?P<count>\d+)\s+{_TRACKER}(?:are\s+)?(?:running|on)\s+{_VERSION}")
def count_trackers_running(context, count, version):
    """N trackers, named t1 … tN, running this version: `3 trackers running version 1.0.0`."""
    for index in range(1, int(count) + 1):
        _switched_on(context, f"t{index}", version)


@intent(given, when)(
    rf"{_ARTICLE}(?:new\s+)?firmware\s+(?:version\s+)?\"?(?P<version>[\w.+-]+)\"?\s+is\s+"
    r"(?:available|published|uploaded|in\s+the\s+bucket)",
    r"version\s+\"?(?P<version>[\w.+-]+)\"?\s+of\s+the\s+firmware\s+is\s+"
    r"(?:available|published|uploaded)")
def firmware_available(context, version):
    """The firmware image of this version is in the FOTA bucket (as `fw-<version>.hex`), ready for
    jobs: `firmware 1.0.1 is available`, `version "2.0.0" of the firmware is published`."""
    _firmware_available(context, version)


@intent(given, when)(
    rf"{_ARTICLE}(?:image\s+of\s+)?(?:the\s+)?firmware\s+(?:version\s+)?\"?(?P<version>[\w.+-]+)\"?\s+is\s+"
    r"(?:missing|not\s+available|not\s+in\s+the\s+bucket)")
def firmware_missing(context, version):
    """No image of this version in the FOTA bucket: an upgrade to it names `fw-<version>.hex`,
    which S3 does not have (`firmware 9.9.9 is missing`)."""
    _bucket(context)
    _missing(context).append(version)


# -- the upgrade -----------------------------------------------------------------------------------


@intent(when, given)(*(rf"I\s+upgrade\s+{who}" for who in _who(rf"\s+to\s+{_VERSION}")))
def upgrade(context, names, version):
    """A FOTA job per tracker (`job-<tracker>`) to this version, its image from the FOTA bucket
    (uploaded first if not yet there): `I upgrade the tracker "t1" to firmware "1.0.1"`,
    `I upgrade t1 to version 1.0.1`."""
    _firmware_available(context, version)
    for name in _names(names):
        _run(context, f"When I create the job `{_job(name)}` upgrading the `{name}` tracker to "
                      f"`{version}` from `fw-{version}.hex`")


@intent(when, given)(rf"I\s+upgrade\s+{_EVERY}\s+to\s+{_VERSION}")
def upgrade_every(context, version):
    """A FOTA job for each tracker of the scenario: `I upgrade every tracker to 1.0.1`."""
    upgrade(context, ", ".join(_trackers(context)), version)


# -- faults ----------------------------------------------------------------------------------------


@intent(given, when)(*(rf"the\s+download\s+(?:of|to|for|by)\s+{who}" for who in _who(
    r"\s+is\s+cut\s+after\s+(?P<size>\d+(?:\.\d+)?\s*\w+)")))
def download_cut(context, names, size):
    """The tracker's connection to S3 breaks once this much has crossed it (`4 KiB`); the tracker
    goes on from the bytes it has: `the download to tracker t2 is cut after 4 KiB`."""
    for name in _names(names):
        _run(context, f'Given the link between "{name}" and the AWS endpoint is cut after {size}')


@intent(given, when)(*_who(r"\s+loses?\s+power\s+during\s+the\s+download"))
def power_lost_during_download(context, names):
    """As soon as a tracker's image download has begun (its first quarter in), the tracker loses
    power; it boots again at once and takes the job up anew: `t2 loses power during the
    download`, `the tracker "t1" loses power during the download`."""
    runtime = ota(context)
    for name in _names(names):
        tracker = runtime.devices[name]
        armed = [True]

        def on_event(text: str, tracker=tracker, armed=armed) -> None:
            if armed[0] and text.startswith("download 25%"):
                armed[0] = False
                runtime.loop.create_task(tracker.power_cut())

        tracker.listeners.append(on_event)


# -- outcomes --------------------------------------------------------------------------------------


@intent(then)(*_who(rf"\s+(?:now\s+|still\s+)?(?:runs|run|is\s+running|are\s+running)\s+{_VERSION}"))
def trackers_run(context, names, version):
    """The trackers run this firmware version (their own state): `the tracker "t1" runs version
    1.0.1`, `t1 runs version 1.0.1`; with
    `soon`, retried while time passes."""
    for name in _names(names):
        _run(context, f"Then the `{name}` tracker still runs firmware version `{version}`")


@intent(then)(rf"{_EVERY}\s+(?:now\s+|still\s+)?(?:runs?|is\s+running|are\s+running)\s+{_VERSION}")
def every_tracker_runs(context, version):
    """Each tracker of the scenario runs this version: `every tracker runs 1.0.1` (with `soon`
    before it, retried while time passes)."""
    trackers_run(context, ", ".join(_trackers(context)), version)


def _state(text: str) -> str:
    words = " ".join(text.lower().replace("_", " ").split())
    if words not in _STATES:
        raise ValueError(f"no job state {text!r}; states: {', '.join(_STATES)}")
    return _STATES[words]


@intent(then)(*(rf"the\s+(?:upgrade|job)\s+(?:of|for)\s+{who}" for who in _who(
    r"\s+(?:ends|ended|is|has\s+ended)\s+(?:in\s+)?(?:state\s+)?(?P<state>[A-Za-z_ ]+?)")))
def upgrade_ends(context, names, state):
    """The tracker's job is in this state (`succeeded`, `failed`, `in progress`, `timed out`, …):
    `the upgrade of the tracker "t1" ends failed`, `the upgrade of t1 ends succeeded`."""
    for name in _names(names):
        _run(context, f"Then the job `{_job(name)}` of the `{name}` tracker is {_state(state)}")


@intent(then)(r"(?:every|each|all(?:\s+the)?)\s+(?:upgrades?|jobs?)\s+(?:ends?|ended|is|are)\s+"
               r"(?:in\s+)?(?:state\s+)?(?P<state>[A-Za-z_ ]+?)")
def every_upgrade_ends(context, state):
    """Every tracker's job is in this state: `every upgrade ends succeeded`."""
    upgrade_ends(context, ", ".join(_trackers(context)), state)


use_step_matcher(_PREVIOUS)
