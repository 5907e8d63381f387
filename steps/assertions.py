"""Checks that span flows, judged from device state, the radio medium or a back end's store:
where a download resumed, the size of a file, the fragments each LoRaWAN device heard.

A downloading emulator that can resume keeps ``resumed_at`` (the byte offsets at which a
download went on after a break): the AWS tracker (HTTP ranges after a cut connection) and the olt
gateway (``Range`` from its flash). A TR-069 CPE and a Basics Station fetch a file whole each
time, so "resumed" steps say so for them instead of passing or failing on nothing.

A failed check says ``<device>: expected <what the step says>, seen <what the device did>``.
"""

from behave import then

from otaharness.bdd.lorawan_world import lorawan_world
from otaharness.bdd.support import ota
from otaharness.protocols.fuota.fragmentation import FPORT as FRAGMENTATION_PORT
from otaharness.protocols.fuota.fragmentation import DataFragment
from otaharness.units import parse_size


def _device(context, name: str):
    devices = ota(context).devices
    if name not in devices:
        raise KeyError(f"no device {name!r} (known: {', '.join(sorted(devices)) or 'none'})")
    return devices[name]


def _size(text: str) -> int:
    """`4096`, `4096 bytes`, `4 KiB`."""
    text = text.strip()
    return int(text) if text.isdigit() else parse_size(text)


def _resumptions(context, name: str) -> list[int]:
    device = _device(context, name)
    resumed_at = getattr(device, "resumed_at", None)
    if resumed_at is None:
        raise AssertionError(f"{name} ({type(device).__name__}) never resumes a download: it "
                             "fetches each file whole, from byte 0, every time")
    return list(resumed_at)


# -- downloads -----------------------------------------------------------------------------------


@then('device "{name}" resumed the download from byte {offset}')
@then('the device "{name}" resumed the download from byte {offset}')
def resumed_from(context, name, offset):
    """The device went on with a broken download from this byte (`4096` or `4 KiB`), asking only
    for the rest: judged from the device's own record of its range requests."""
    resumed_at = _resumptions(context, name)
    assert _size(offset) in resumed_at, (
        f"{name}: expected a resumption from byte {_size(offset)}, seen "
        + (f"resumptions at bytes {resumed_at}" if resumed_at else "none (it never resumed)"))


@then('device "{name}" resumed the download {count:d} times')
@then('device "{name}" resumed the download {count:d} time')
def resumed_count(context, name, count):
    """How often the device went on with a broken download instead of starting over."""
    resumed_at = _resumptions(context, name)
    assert len(resumed_at) == count, (f"{name}: expected {count} resumptions, seen "
                                      f"{len(resumed_at)}: {name} resumed at bytes {resumed_at}")


@then('device "{name}" resumed the download at least {count:d} times')
@then('device "{name}" resumed the download at least {count:d} time')
def resumed_at_least(context, name, count):
    """The device went on with a broken download at least this often (a link cut more than once
    may break it again)."""
    resumed_at = _resumptions(context, name)
    assert len(resumed_at) >= count, f"{name} resumed {len(resumed_at)} times, at bytes {resumed_at}"


@then('device "{name}" did not resume a download')
def not_resumed(context, name):
    """The device never went on with a broken download (or none broke)."""
    resumed_at = _resumptions(context, name)
    assert not resumed_at, f"{name}: expected no resumption, seen {name} resumed at bytes {resumed_at}"


# -- files ---------------------------------------------------------------------------------------


@then('the ACS file server holds "{file}" of {size}')
def acs_file_size(context, file, size):
    """The TR-069 file server stores the uploaded file with this many bytes (`4 MiB`, `700
    bytes`): its record (the FileSize every Download of it carries) and the bytes it serves."""
    runtime = ota(context)
    store = runtime.run(runtime.service("tr069")).store
    record = store.file(file)
    assert record is not None, f"{file}: expected on the ACS file server, seen only: " \
        f"{', '.join(f['name'] for f in store.files()) or 'nothing'}"
    stored = store.file_path(file).stat().st_size
    expected = _size(size)
    assert record["size"] == stored == expected, (
        f"{file}: expected {expected} bytes, seen recorded {record['size']} bytes, stored {stored}")


# -- LoRaWAN fragments ---------------------------------------------------------------------------


def _fragments_heard(context, name: str) -> int:
    """Multicast DataFragments the radio medium delivered to the device (read with its group's
    key when they arrived), whatever the device then made of them."""
    world = lorawan_world(context)
    if name not in world.field.devices:
        raise KeyError(f"no LoRaWAN device {name!r} (known: "
                       f"{', '.join(sorted(world.field.devices)) or 'none'})")
    return sum(1 for heard in world.heard.get(name, ())
               if heard.multicast and heard.fport == FRAGMENTATION_PORT
               and heard.command == DataFragment.CID)


def _compare(name: str, actual: int, expected: str) -> None:
    """`120`, `at least 100`, `at most 3`, `no`."""
    words = expected.strip().lower()
    if words.startswith("at least "):
        ok = actual >= int(words.removeprefix("at least "))
    elif words.startswith("at most "):
        ok = actual <= int(words.removeprefix("at most "))
    else:
        ok = actual == (0 if words == "no" else int(words))
    assert ok, f"{name}: expected {expected} fragments heard, seen {name} heard {actual} fragments on the radio"


@then('device "{name}" heard {count} fragments on the radio')
@then('device "{name}" heard {count} fragment on the radio')
def heard_fragments(context, name, count):
    """How many multicast fragments (TS004 DataFragment) reached the device over the air:
    `120`, `at least 100`, `at most 3`, `no`. Counted on the radio medium, so lost ones are not
    counted, and the device's own bookkeeping is not asked."""
    _compare(name, _fragments_heard(context, name), count)


@then('device "{name}" heard {comparison} fragments on the radio than device "{other}"')
def heard_fewer_or_more(context, name, comparison, other):
    """`fewer` or `more` multicast fragments reached the one device than the other over the
    air (as counted in the single step): what a lossier link or a later start shows."""
    if comparison not in ("fewer", "more"):
        raise ValueError(f"say `fewer` or `more`, not {comparison!r}")
    mine, theirs = _fragments_heard(context, name), _fragments_heard(context, other)
    assert mine < theirs if comparison == "fewer" else mine > theirs, (
        f"{name} heard {mine} fragments on the radio, {other} {theirs}: not {comparison}")


@then('the devices heard these numbers of fragments on the radio')
def heard_fragments_table(context):
    """Per device (columns `device`, `fragments`: `120`, `at least 100`, …), as in the single
    step; every row is checked before failing."""
    problems = []
    for row in context.table:
        try:
            _compare(row["device"], _fragments_heard(context, row["device"]), row["fragments"])
        except AssertionError as problem:
            problems.append(str(problem))
    assert not problems, "\n".join(problems)
