"""The admin API's whole input surface under random requests (hypothesis): well-formed ones, ones
that break a schema in one field, any JSON, any bytes, odd names and ids in the path. Never a
5xx; every answer is JSON; a refused request (4xx) changes nothing, neither records nor files;
the API keeps serving; and whatever was accepted leaves the store sound (every record readable,
every file where the store puts it and nothing else on disk)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from acs_live import DEVICE, FILE, GROUP, LiveAcs
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from otaharness.servers.tr069.names import file_name_problem
from otaharness.servers.tr069.schedule import known_zone, parse_days, parse_hours
from otaharness.servers.tr069.store import DISK_SUFFIX

PIECES = ["", ".", "..", "%2E", "%2e%2E", "a/b", "a%2Fb", "a%5Cb", "%00", "a%0A", "%FF", "%ED%A0%80",
          "%252E%252E", "x" * 300, quote("é" * 130), "-1", "0", "1", "9" * 27, "1e3", "0x10", "%201"]


def path_piece(real: str) -> st.SearchStrategy[str]:
    """A path segment: the seeded resource's id, a known troublemaker, or any text, escaped."""
    return st.one_of(st.just(quote(real, safe="")), st.sampled_from(PIECES),
                     st.text(max_size=40).map(lambda t: quote(t, safe="")))


REQUIRED = ("group", "original_version", "file", "new_version")
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
ANY_JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20)
DAYS = st.lists(st.one_of(st.integers(1, 7), st.sampled_from(["Mon", "tuesday", "SUN", "wed"])),
                min_size=1, max_size=4)
HOURS = st.lists(st.one_of(st.integers(0, 23), st.sampled_from(["2-5", "23", "0-23", "07"])),
                 min_size=1, max_size=4)
# field -> (valid values, values that break its rule)
BATCH_FIELDS: dict[str, tuple[st.SearchStrategy[Any], list[Any]]] = {
    "group": (st.just(GROUP), ["none", "", None]),
    "original_version": (TEXT, ["", "a\x00", 6.48]),
    "file": (st.just(FILE), ["none", "..", "a/b"]),
    "new_version": (TEXT, ["\ud800", "v" * 300]),
    "days": (DAYS, [[], [0], [8], ["Funday"], [True], "Mon"]),
    "hours": (HOURS, [[], [-1], [24], ["5-2"], ["24"], [1.5]]),
    "event": (st.sampled_from(["Boot", "inform", "BOOT"]), ["Reboot", ""]),
    "max_attempts": (st.integers(1, 2**31 - 1), [0, -1, 2**31, 1.5, "3"]),
    "max_devices_per_day": (st.integers(0, 5), [-1, 2**31, True]),
    "timezone": (st.sampled_from([None, "", "UTC", "Europe/Berlin", "Asia/Kolkata"]),
                 ["Mars/Olympus", "../../etc/passwd", "Europe/\x00", 5, "x" * 100]),
}
GROUP_FIELDS: dict[str, tuple[st.SearchStrategy[Any], list[Any]]] = {
    "oui": (st.sampled_from(["", "E48D8C"]), ["x" * 65, "\x07", 5]),
    "product_class": (st.sampled_from(["", "CHR"]), ["y" * 65, None]),
    "devices": (st.lists(st.sampled_from([DEVICE, "E48D8C-CHR-S2"]) | TEXT, max_size=4),
                [[1, 2, {}], [""], "E48D8C-CHR-S1", ["d\x00"]]),
}
UPGRADE_FIELDS: dict[str, tuple[st.SearchStrategy[Any], list[Any]]] = {
    "devices": (st.lists(st.sampled_from([DEVICE, "nobody"]), min_size=1, max_size=2, unique=True),
                [[], [None], DEVICE, [DEVICE, 7]]),
    "file": (st.sampled_from([FILE, "none"]), ["", "../f.bin", 1]),
    "delay_seconds": (st.integers(0, 2**32 - 1), [-1, 2**32, 1.5]),
}
GARBAGE = st.one_of(ANY_JSON.map(lambda value: json.dumps(value).encode()), st.binary(max_size=64),
                    st.sampled_from([b"", b"{", b"[" * 5000 + b"]" * 5000, b'{"oui": NaN}',
                                     b'{"max_attempts": 1' + b"0" * 30 + b"}", b'{"oui": "\\ud800"}',
                                     b'{"group": 1e999}', b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}"]))


@st.composite
def json_bodies(draw, fields: dict[str, tuple[st.SearchStrategy[Any], list[Any]]],
                required: tuple[str, ...] = ()) -> bytes:
    """A valid body (half the time), one with exactly one field broken, or garbage."""
    mode = draw(st.sampled_from(["valid", "valid", "one field broken", "unknown field", "garbage"]))
    if mode == "garbage":
        return draw(GARBAGE)
    names = set(draw(st.lists(st.sampled_from(sorted(fields)), unique=True))) | set(required)
    body = {name: draw(fields[name][0]) for name in sorted(names)}
    if mode == "one field broken":
        name = draw(st.sampled_from(sorted(fields)))
        body[name] = draw(st.sampled_from(fields[name][1]) | ANY_JSON)
    elif mode == "unknown field":
        body[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in fields))] = draw(ANY_JSON)
    elif required and draw(st.integers(0, 9)) == 0:
        del body[draw(st.sampled_from(required))]  # a required field missing
    return json.dumps(body).encode()


OPERATIONS = ["list files", "put file", "get file", "delete file", "put group", "delete group",
              "get device", "device events", "device tasks", "reboot", "connection request",
              "create batch", "get batch", "patch batch", "delete batch", "find new devices",
              "force", "discard", "upgrade"]


@st.composite
def requests_(draw) -> tuple[str, str, bytes | None, dict[str, str]]:
    operation = draw(st.sampled_from(OPERATIONS))
    batch = draw(st.one_of(*[st.just("{batch}")] * 6, st.sampled_from(PIECES),  # {batch}: the
                           st.integers(-(2**64), 2**64).map(str)))  # seeded batch, at run time
    device, group, name = (draw(path_piece(DEVICE)), draw(path_piece(GROUP)),
                           draw(path_piece(FILE)))
    if operation == "list files":
        return "GET", f"/files?group={group}", None, {}
    if operation == "put file":
        headers = draw(st.fixed_dictionaries({}, optional={
            "fileType": st.sampled_from(["1 Firmware Upgrade Image", "", "junk", "X MIKROTIK x" * 10]),
            "oui": st.text("ABCDEF0123456789", max_size=70), "version": st.text(
                st.characters(min_codepoint=32, max_codepoint=126), max_size=20)}))
        return "PUT", f"/files/{name}", draw(st.binary(max_size=64)), headers
    simple = {"get file": ("GET", f"/files/{name}"), "delete file": ("DELETE", f"/files/{name}"),
              "delete group": ("DELETE", f"/groups/{group}"),
              "get device": ("GET", f"/devices/{device}"),
              "device events": ("GET", f"/devices/{device}/events"),
              "device tasks": ("GET", f"/devices/{device}/tasks"),
              "reboot": ("POST", f"/devices/{device}/reboot"),
              "connection request": ("POST", f"/devices/{device}/connection-request"),
              "get batch": ("GET", f"/batches/{batch}"), "delete batch": ("DELETE", f"/batches/{batch}"),
              "find new devices": ("POST", f"/batches/{batch}/find-new-devices"),
              "force": ("POST", f"/batches/{batch}/devices/{device}/force"),
              "discard": ("POST", f"/batches/{batch}/devices/{device}/discard")}
    if operation in simple:
        return (*simple[operation], None, {})
    if operation == "put group":
        return "PUT", f"/groups/{group}", draw(json_bodies(GROUP_FIELDS)), {}
    if operation == "create batch":
        return "POST", "/batches", draw(json_bodies(BATCH_FIELDS, REQUIRED)), {}
    if operation == "patch batch":
        return "PATCH", f"/batches/{batch}", draw(json_bodies(BATCH_FIELDS)), {}
    return "POST", "/actions/upgrade", draw(json_bodies(UPGRADE_FIELDS, ("devices", "file"))), {}


@pytest.fixture(scope="module")
def live():
    with tempfile.TemporaryDirectory() as directory:
        server = LiveAcs(Path(directory) / "acs").start_and_wait()
        yield server
        server.stop()


def assert_store_sound(live: LiveAcs) -> None:
    snapshot = live.snapshot()
    files_dir = live.state_dir / "files"
    assert set(snapshot["disk"]) == {"files"} | {f"files/{p.name}" for p in files_dir.iterdir()}
    on_disk = sorted(name for name in snapshot["disk"] if name != "files")
    expected = sorted(str(live.call(live.server.store.file_path, f["name"]).relative_to(live.state_dir))
                      for f in snapshot["files"])
    assert on_disk == expected  # one file per record, nothing else (no .part, no temporary)
    for record in snapshot["files"]:
        assert file_name_problem(record["name"]) is None
        assert snapshot["disk"][str(live.call(live.server.store.file_path, record["name"])
                                    .relative_to(live.state_dir))] == record["size"]
        assert on_disk and all(name.endswith(DISK_SUFFIX) for name in on_disk)
    for batch in snapshot["batches"]:
        assert known_zone(batch["timezone"]) == batch["timezone"]
        assert parse_days(batch["days"]) == batch["days"]
        assert parse_hours(batch["hours"]) == batch["hours"]
        assert batch["event"] in ("Boot", "Inform") and batch["max_attempts"] >= 1
    for group in snapshot["groups"]:
        assert all(isinstance(device, str) for device in group["devices"])


@given(request=requests_())
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_request_gets_a_4xx_or_a_success_and_refusals_change_nothing(live, request):
    method, path, body, headers = request
    live.call(live.ensure_seeded)  # a random DELETE may have removed them
    path = path.replace("{batch}", str(live.batch_id))
    before = live.snapshot()
    status, answer = live.request(method, path, body, headers=headers)
    assert status < 500, (method, path, body and body[:200], answer)
    event(f"{method} {path.split('/')[1].split('?')[0]}: {status // 100}xx")
    assert not isinstance(answer, bytes), (status, answer[:200])  # every answer is JSON
    if status >= 400:
        assert isinstance(answer, dict) and answer.get("error"), answer
        assert live.snapshot() == before, (method, path, answer)
    for listing in ("/files", "/groups", "/devices", "/batches"):  # still serving, all readable
        assert live.request("GET", listing)[0] == 200


def test_after_the_random_requests_the_store_is_sound(live):
    """Runs after the property above (same module-scoped ACS), and on its own as a control."""
    assert_store_sound(live)
    response = requests.get(f"{live.url('admin')}/openapi.json", timeout=10,
                            headers={"Authorization": f"Bearer {live.token}"})
    assert response.status_code == 200 and response.json()["openapi"].startswith("3.")
