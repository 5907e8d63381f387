"""The admin API facing bad input (issue "No 5xx from anything a client sends"): every refusal is a
400 naming the field (or a 404 for an unknown resource), nothing of a refused request is stored,
and file names never leave the file store's folder."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from acs_live import DEVICE, FILE, GROUP, LiveAcs

from otaharness.servers.tr069 import store as store_module
from otaharness.servers.tr069.names import InvalidName
from otaharness.servers.tr069.openapi import openapi_document
from otaharness.servers.tr069.store import Store

VALID_BATCH = {"group": GROUP, "original_version": "1", "file": FILE, "new_version": "2"}


@pytest.fixture
def live(tmp_path: Path):
    server = LiveAcs(tmp_path / "acs").start_and_wait()
    yield server
    server.stop()


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# (method, path, body, status, the complaint the error names)
BAD_REQUESTS = {
    "deeply nested group": ("PUT", "/groups/g2", b'{"devices": ' + deep(5000) + b"}", 400,
                            "nested deeper"),
    "deeply nested batch": ("POST", "/batches", deep(100_000), 400, "nested deeper"),
    "27-digit batch id": ("GET", "/batches/" + "9" * 27, None, 400, "batch id"),
    "27-digit batch id, PATCH": ("PATCH", "/batches/" + "9" * 27, b"{}", 400, "batch id"),
    "27-digit batch id, force": ("POST", f"/batches/{'1' * 27}/devices/{DEVICE}/force", None,
                                 400, "batch id"),
    "negative batch id": ("DELETE", "/batches/-1", None, 400, "batch id"),
    "non-ASCII digits as batch id": ("GET", "/batches/%D9%A3", None, 400, "batch id"),
    "batch timezone 5": ("POST", "/batches", {**VALID_BATCH, "timezone": 5}, 400, "$.timezone"),
    "batch timezone path": ("POST", "/batches", {**VALID_BATCH, "timezone": "../../etc/passwd"},
                            400, "time zone"),
    "batch timezone with NUL": ("POST", "/batches", {**VALID_BATCH, "timezone": "Europe/\u0000"},
                                400, "time zone"),
    "group devices [1, 2, {}]": ("PUT", "/groups/g2", {"devices": [1, 2, {}]}, 400,
                                 "$.devices["),
    "group oui a lone surrogate": ("PUT", "/groups/g2", b'{"oui": "\\ud800"}', 400, "$.oui"),
    "group unknown field": ("PUT", "/groups/g2", {"members": []}, 400, "unknown group fields"),
    "group body not an object": ("PUT", "/groups/g2", b"[]", 400, "object"),
    "group name with NUL": ("PUT", "/groups/a%00b", {}, 400, "U+0000"),
    "batch hours 5-2": ("POST", "/batches", {**VALID_BATCH, "hours": ["5-2"]}, 400, "$.hours"),
    "batch hours [true]": ("POST", "/batches", {**VALID_BATCH, "hours": [True]}, 400,
                           "$.hours[0]"),
    "batch days Monkey": ("POST", "/batches", {**VALID_BATCH, "days": ["Monkey"]}, 400,
                          "$.days[0]"),
    "batch max_attempts 2**70": ("POST", "/batches",
                                 json.dumps(VALID_BATCH)[:-1].encode() + b', "max_attempts": '
                                 + str(2**70).encode() + b"}", 400, "out of range"),
    "batch max_attempts NaN": ("POST", "/batches",
                               json.dumps(VALID_BATCH)[:-1].encode() + b', "max_attempts": NaN}',
                               400, "NaN"),
    "batch max_attempts 2.5": ("POST", "/batches", {**VALID_BATCH, "max_attempts": 2.5}, 400,
                               "$.max_attempts"),
    "batch version not text": ("POST", "/batches", {**VALID_BATCH, "new_version": {"v": 2}}, 400,
                               "$.new_version"),
    "batch patch group null": ("PATCH", "/batches/1", {"group": None}, 400, "$.group"),
    "upgrade delay 2**32": ("POST", "/actions/upgrade",
                            {"devices": [DEVICE], "file": FILE, "delay_seconds": 2**32}, 400,
                            "$.delay_seconds"),
    "upgrade no devices": ("POST", "/actions/upgrade", {"devices": [], "file": FILE}, 400,
                           "$.devices"),
    "upgrade a device that is not a string": ("POST", "/actions/upgrade",
                                              {"devices": [DEVICE, 7], "file": FILE}, 400,
                                              "$.devices[1]"),
    "body not UTF-8": ("PUT", "/groups/g2", b'{"oui": "\xff"}', 400, "UTF-8"),
    "body over 1 MiB": ("PUT", "/groups/g2", b'{"oui": "' + b"a" * (1 << 20) + b'"}', 400,
                        "limit"),
    "file type header not a FileType": ("PUT", "/files/new.bin", b"x", 400, "header fileType"),
    "files for a group name with a control character": ("GET", "/files?group=a%07", None, 400,
                                                        "U+0007"),
    "connection request to an unknown device": ("POST", "/devices/nobody/connection-request",
                                                None, 404, "no device"),
}
HEADERS = {"file type header not a FileType": {"fileType": "firmware please"}}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(live, name):
    method, path, body, status, complaint = BAD_REQUESTS[name]
    before = live.snapshot()
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    got, answer = live.request(method, path, body, headers=HEADERS.get(name))
    assert (got, complaint in answer["error"]) == (status, True), answer
    assert live.snapshot() == before
    assert live.request("GET", f"/batches/{live.batch_id}")[0] == 200  # still serving


BAD_FILE_NAMES = {
    "dot": "%2E", "dot dot": "%2E%2E", "dot, lower case escape": "%2e", "raw dot": ".",
    "raw dot dot": "..", "slash": "a%2Fb", "dot dot slash": "%2E%2E%2Fescaped",
    "backslash": "..%5Cescaped", "NUL": "a%00b", "newline": "a%0Ab", "DEL": "a%7F",
    "C1 control": "a%C2%85",
    "double-encoded dot dot": "%252E%252E", "double-encoded slash": "a%252Fb",
    "300 characters": "a" * 300, "256 bytes of UTF-8": quote("é" * 128),
}


@pytest.mark.parametrize("name", BAD_FILE_NAMES)
def test_bad_file_names_are_a_400_and_leave_no_file_behind(live, name):
    path = BAD_FILE_NAMES[name]
    before = live.snapshot()
    for method in ("PUT", "GET", "DELETE"):
        status, answer = live.request(method, f"/files/{path}", b"content" if method == "PUT" else None,
                                      headers={"fileType": "1 Firmware Upgrade Image"})
        assert status == 400 and "file name" in answer["error"], (method, answer)
    status, text = live.request("GET", f"/{path}", endpoint="files")
    assert status == 400, text
    assert live.snapshot() == before
    state_dir = live.state_dir
    assert sorted(p.name for p in state_dir.iterdir() if not p.name.startswith("acs.sqlite3")) == ["files"]
    assert sorted(p.name for p in (state_dir / "files").iterdir()) == [FILE + ".file"]


def download(live: LiveAcs, name: str, **headers: str) -> requests.Response:
    return requests.get(f"{live.url('files')}/{quote(name, safe='')}", headers=headers, timeout=10)


@pytest.mark.parametrize("name", ["прошивка-1.0.bin", "100%.bin", "a b+c(1).bin", "...bin", ".hidden",
                                  "%2E%2Ex", "%u.tmp", "x" * 10])
def test_unusual_but_valid_file_names_are_stored_and_served(live, name):
    content = f"content of {name}".encode()
    status, record = live.request("PUT", f"/files/{quote(name, safe='')}", content)
    assert (status, record["name"], record["size"]) == (201, name, len(content))
    response = download(live, name)
    assert (response.status_code, response.content) == (200, content)
    assert live.request("GET", f"/files/{quote(name, safe='')}")[1]["name"] == name
    assert live.request("DELETE", f"/files/{quote(name, safe='')}")[0] == 200
    assert download(live, name).status_code == 404
    assert sorted(p.name for p in (live.state_dir / "files").iterdir()) == [FILE + ".file"]


def test_the_longest_name_a_download_url_can_carry(live):
    room = 256 - len(live.url("files")) - 1
    assert live.request("PUT", f"/files/{'n' * room}", b"x")[0] == 201
    status, answer = live.request("PUT", f"/files/{'n' * (room + 1)}", b"x")
    assert status == 400 and "256" in answer["error"]
    assert download(live, "n" * room).content == b"x"


def test_a_file_and_its_part_or_gz_namesake_stay_apart(live):
    """A stored file's name plus ``.part`` was its temporary file (uploading ``a`` removed
    ``a.part``), and aiohttp's file response serves ``x.gz`` for ``x`` to gzip clients."""
    for name, content in (("a.part", b"the .part file"), ("a", b"the file a"),
                          ("fw.bin.gz", b"\x1f\x8b not fw.bin"), ("fw.bin", b"fw.bin itself")):
        assert live.request("PUT", f"/files/{quote(name)}", content)[0] == 201
    assert download(live, "a.part").content == b"the .part file"
    assert download(live, "a").content == b"the file a"
    response = download(live, "fw.bin", **{"Accept-Encoding": "gzip, br"})
    assert (response.status_code, response.raw.data if False else response.content) == (200, b"fw.bin itself")
    assert "Content-Encoding" not in response.headers


def test_file_metadata_headers_are_checked(live):
    for headers, complaint in (({"oui": "x" * 65}, "header oui"),
                               ({"productClass": "y" * 65}, "header productClass"),
                               ({"version": "v" * 257}, "header version"),
                               ({"fileType": "X MIKROTIK"}, "header fileType")):
        status, answer = live.request("PUT", "/files/new.bin", b"x", headers=headers)
        assert status == 400 and complaint in answer["error"], answer
    status, record = live.request("PUT", "/files/new.bin", b"x", headers={
        "fileType": "X MIKROTIK Factory Configuration File", "oui": "E48D8C", "version": "7"})
    assert (status, record["file_type"]) == (201, "X MIKROTIK Factory Configuration File")


def test_header_bytes_that_are_not_utf8_and_empty_uploads_are_refused(live):
    """aiohttp hands non-UTF-8 header bytes on as surrogate escapes, which SQLite cannot store."""
    before = live.snapshot()
    for header in (b"version: \xff\xfe", b"oui: E4\xc3", b"fileType: 1 Firmware \xe9"):
        answer = live.raw(b"PUT /files/new.bin HTTP/1.1\r\nHost: acs\r\nConnection: close\r\n"
                          + header + b"\r\nContent-Length: 1\r\n\r\nx")
        assert answer.startswith(b"HTTP/1.1 400 ") and b"not UTF-8" in answer, answer[:200]
    status, answer = live.request("PUT", "/files/new.bin", b"")
    assert status == 400 and "empty" in answer["error"]
    assert live.snapshot() == before


def test_the_longest_device_id_fits_in_the_request_line(live):
    longest = quote("é" * 4096, safe="")  # 24576 bytes, beyond aiohttp's default 8190
    assert live.request("GET", f"/devices/{longest}") == (404, {"error": "no device"})
    status, answer = live.request("GET", f"/devices/{longest}e")
    assert status == 400 and "at most 4096" in answer["error"]


def test_large_json_body_sent_in_many_chunks_is_read_whole(live):
    devices = [f"E48D8C-CHR-{n:06d}" for n in range(10_000)]
    body = json.dumps({"devices": devices}).encode()

    def chunks():
        for start in range(0, len(body), 997):
            yield body[start:start + 997]

    response = requests.put(f"{live.url('admin')}/groups/big", data=chunks(), timeout=20,
                            headers={"Authorization": f"Bearer {live.token}"})
    assert response.status_code == 200, response.text
    assert len(response.json()["devices"]) == 10_000


def test_empty_patch_changes_nothing_and_a_valid_patch_is_stored(live):
    before = live.request("GET", f"/batches/{live.batch_id}")[1]
    status, after = live.request("PATCH", f"/batches/{live.batch_id}", b"{}")
    assert (status, after) == (200, before)
    status, after = live.request("PATCH", f"/batches/{live.batch_id}", json_body={
        "days": ["Mon", "tuesday", 7], "hours": [3, "5-6"], "event": "BOOT",
        "timezone": "Europe/Berlin", "max_attempts": 3})
    assert status == 200
    assert (after["days"], after["hours"], after["event"], after["timezone"]) == (
        ["mon", "tue", "sun"], [3, 5, 6], "Boot", "Europe/Berlin")
    status, after = live.request("PATCH", f"/batches/{live.batch_id}", json_body={"timezone": None})
    assert (status, after["timezone"]) == (200, "UTC")


def test_unknown_resources_are_404_and_out_of_range_ids_400(live):
    assert live.request("GET", "/batches/0")[0] == 404
    assert live.request("GET", f"/batches/{2**63 - 1}")[0] == 404
    assert live.request("GET", f"/batches/{2**63}")[0] == 400
    assert live.request("POST", f"/batches/{live.batch_id}/devices/nobody/force")[0] == 404
    assert live.request("POST", "/batches", json_body={**VALID_BATCH, "group": "none"})[0] == 404
    assert live.request("GET", "/files?group=none")[0] == 404


def test_a_device_named_twice_in_an_upgrade_gets_one_download(live):
    status, answer = live.request("POST", "/actions/upgrade",
                                  json_body={"devices": [DEVICE, DEVICE], "file": FILE})
    assert (status, answer) == (202, {"connection_request": {DEVICE: False}})
    tasks = live.request("GET", f"/devices/{DEVICE}/tasks")[1]
    assert [t["kind"] for t in tasks] == ["download"]


def test_connection_request_to_a_device_that_cannot_be_reached_is_202_not_5xx(live):
    status, answer = live.request("POST", f"/devices/{DEVICE}/connection-request")
    assert (status, answer) == (202, {"connection_request": False})


def test_openapi_document_is_served_and_names_every_route(live):
    status, document = live.request("GET", "/openapi.json")
    assert (status, document) == (200, openapi_document())
    from openapi_spec_validator import validate

    validate(document)
    app = live.server.admin.application()
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert routes == documented


# -- the store on its own ---------------------------------------------------------------------
def test_store_refuses_names_outside_its_folder_before_writing(tmp_path):
    store = Store(tmp_path / "state")
    for name in (".", "..", "../x", "a/b", "a\\b", "", "a\x00", "é" * 128, "%2e%2e"):
        with pytest.raises(InvalidName):
            store.save_file(name, b"x")
    assert store.delete_file("..") is False
    assert list((tmp_path / "state" / "files").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [
        "acs.sqlite3", "acs.sqlite3-shm", "acs.sqlite3-wal", "files"]
    store.close()


def test_a_write_that_fails_leaves_no_temporary_file(tmp_path, monkeypatch):
    store = Store(tmp_path / "state")
    store.save_file("kept.bin", b"old")

    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.os, "replace", disk_full)
    with pytest.raises(OSError):
        store.save_file("kept.bin", b"new")
    monkeypatch.undo()
    assert [p.name for p in store.files_dir.iterdir()] == ["kept.bin.file"]
    assert store.file_path("kept.bin").read_bytes() == b"old"
    store.close()


def test_files_of_the_old_layout_are_moved_and_leftovers_removed(tmp_path):
    """Older versions stored ``files/<percent-encoded name>``; a restarted ACS moves them, longest
    first, so that ``a.file`` (a file of its own) is not overwritten by ``a``'s move."""
    state = tmp_path / "state"
    Store(state).close()
    db = sqlite3.connect(state / "acs.sqlite3")
    db.execute("PRAGMA user_version=0")
    for name in ("a", "a.file", "é.bin"):
        db.execute("INSERT INTO files (name, size) VALUES (?, 1)", (name,))
        (state / "files" / quote(name, safe="")).write_text(f"content of {name}")
    db.commit()
    db.close()
    (state / "files" / "%upload-abc.tmp").write_text("an upload cut by a crash")
    store = Store(state)
    for name in ("a", "a.file", "é.bin"):
        assert store.file_path(name).read_text() == f"content of {name}"
    assert sorted(os.listdir(state / "files")) == ["%C3%A9.bin.file", "a.file", "a.file.file"]
    store.close()
    store = Store(state)  # once only
    assert store.file_path("a").read_text() == "content of a"
    store.close()
