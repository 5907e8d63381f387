"""Actions outside batches (mass Upgrade, every FileType, Reboot), HoldRequests, the session
retry back-off, the file server, the admin API's validation, and many CPEs per process."""

from __future__ import annotations

import asyncio
import random

import aiohttp

import pytest
from tr069_world import (
    DAY, FIXTURES, HOUR, World, booted, device_id, events_of)

from otaharness.emulators.cpe.device import retry_wait
from otaharness.emulators.cpe.profiles import MIKROTIK_FACTORY_CONFIGURATION
from otaharness.protocols.cwmp import parse_envelope
from otaharness.servers.tr069 import AcsConfig
from otaharness.protocols.http_digest import basic_authorization


def test_mass_upgrade_action_upgrades_only_the_selected_devices(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpes = [await world.add_cpe(f"CHR{n:04d}") for n in range(4)]
        await booted(world, *cpes)
        xml = await world.upload_mikrotik_upgrade()
        selected = [device_id(cpe) for cpe in cpes[:2]]
        status, answer = await world.admin("POST", "/actions/upgrade",
                                           json={"devices": selected, "file": xml})
        assert (status, answer) == (202, {"connection_request": {d: True for d in selected}})
        assert await world.run_until(
            lambda: [c.software_version for c in cpes] == ["6.48.4", "6.48.4", "6.48", "6.48"],
            HOUR)
        for cpe in cpes[:2]:
            (task,) = world.acs.store.tasks(device_id=device_id(cpe))
            assert (task["state"], task["batch_id"]) == ("done", None)

    run_world(main)


FILE_TYPES = {
    "2 Web Content": ("webui.tar", b"<html>ui</html>" * 10),
    "4 Tone File": ("tones.bin", bytes(range(200))),
    "5 Ringer File": ("ring.bin", b"\x07" * 300),
    MIKROTIK_FACTORY_CONFIGURATION: ("defconf.rsc", b"/system identity set name=factory\n"),
    "X E48D8C Custom Blob": ("blob.bin", b"vendor specific"),
}


@pytest.mark.parametrize("file_type", FILE_TYPES)
def test_every_file_type_is_downloaded_after_its_delay(run_world, file_type):
    name, content = FILE_TYPES[file_type]

    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        await world.upload(name, content, file_type)
        await world.admin("POST", "/actions/upgrade",
                          json={"devices": [device_id(cpe)], "file": name, "delay_seconds": 90})
        sent_at = world.clock.epoch()
        assert await world.run_until(lambda: bool(events_of(world, cpe, "transfer-complete")), HOUR)
        detail = events_of(world, cpe, "transfer-complete")[0]["detail"]
        assert detail["code"] == 0
        started = world.clock.utcnow().fromisoformat(detail["start_time"]).timestamp()
        assert started - sent_at >= 90  # DelaySeconds honoured
        assert cpe.nv.files[file_type] == (name, content)
        assert cpe.software_version == "6.48"  # no firmware, no reboot

    run_world(main)


def test_vendor_configuration_alter_runs_a_script_and_other_files_replace(run_world):
    async def main(world: World) -> None:
        await world.start()
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        script = (FIXTURES / "set-identity.alter").read_bytes()
        await world.upload("set-identity.alter", script, "3 Vendor Configuration File")
        await world.upload("full.rsc", b"/interface print\n", "3 Vendor Configuration File")
        await world.admin("POST", "/actions/upgrade", json={"devices": [device_id(cpe)],
                                                            "file": "set-identity.alter"})
        assert await world.run_until(lambda: bool(cpe.nv.scripts_applied), HOUR)
        assert cpe.model.get("DeviceInfo.X_MIKROTIK_SystemIdentity") == "branch-office-7"
        assert cpe.model.get("ManagementServer.PeriodicInformInterval") == "600"
        assert cpe.nv.configuration == ""  # altered, not replaced
        assert await world.run_until(lambda: "4 VALUE CHANGE" in cpe.informs[-1], HOUR)
        await world.admin("POST", "/actions/upgrade", json={"devices": [device_id(cpe)],
                                                            "file": "full.rsc"})
        assert await world.run_until(lambda: cpe.nv.configuration == "/interface print\n", HOUR)
        assert cpe.nv.scripts_applied == []
        await world.clock.run_for(60)
        codes = [e["detail"]["code"] for e in events_of(world, cpe, "transfer-complete")]
        assert codes == [0, 0]

    run_world(main)


@pytest.mark.parametrize("files_url, event, fault_code", [
    ("ftp://files.example", "rpc-fault", 9013),  # a SOAP fault on the Download itself
    ("http://127.0.0.1:9", "transfer-complete", 9015),  # nobody listens on the discard port
])
def test_unreachable_file_server_faults(run_world, files_url, event, fault_code):
    async def main(world: World) -> None:
        await world.start(AcsConfig(files_url=files_url))
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        await world.upload("webui.tar", b"x", "2 Web Content")
        await world.admin("POST", "/actions/upgrade", json={"devices": [device_id(cpe)],
                                                            "file": "webui.tar"})
        assert await world.run_until(lambda: bool(events_of(world, cpe, event)), HOUR)
        assert events_of(world, cpe, event)[0]["detail"]["code"] == fault_code
        assert world.acs.store.tasks(device_id=device_id(cpe))[0]["state"] == "failed"

    run_world(main)


def test_service_module_starts_the_three_endpoints_for_a_runtime(run_world, tmp_path):
    """By default the three endpoints speak HTTPS with the scenario PKI's certificate, and the
    admin API answers only with the token the service offers."""
    from types import SimpleNamespace

    from otaharness.runtime.pki import Pki, client_context
    from otaharness.runtime.targets import Target
    from otaharness.servers.tr069 import service

    pki = Pki(tmp_path / "pki")

    async def main(world: World) -> None:
        artifacts = tmp_path / "scenario"

        def data_dir(name):  # as Runtime.data_dir without serve --state-dir
            (artifacts / name).mkdir(parents=True, exist_ok=True)
            return artifacts / name

        runtime = SimpleNamespace(artifacts=artifacts, clock=world.clock, data_dir=data_dir,
                                  rng=lambda purpose: random.Random(purpose),
                                  target=lambda flow: Target(flow), pki=lambda: pki)
        started = await service.start(runtime)
        try:
            endpoints = started.endpoints()
            assert sorted(endpoints) == ["acs", "admin", "ca", "files"]
            assert all(endpoints[name].startswith("https://") for name in ("acs", "admin", "files"))
            token = started.tokens()["admin"]
            tls = client_context(endpoints["ca"])
            async with aiohttp.ClientSession() as http:
                async with http.get(endpoints["admin"] + "/devices", ssl=tls) as response:
                    assert response.status == 401
                async with http.get(endpoints["admin"] + "/devices", ssl=tls,
                                    headers={"Authorization": f"Bearer {token}"}) as response:
                    assert (response.status, await response.json()) == (200, [])
            assert (runtime.artifacts / "tr069-acs" / "acs.sqlite3").exists()
        finally:
            await started.stop()

    run_world(main)


def test_service_settings_keep_a_given_state_dir_and_configure_the_acs(run_world, tmp_path):
    from types import SimpleNamespace

    from otaharness.runtime.targets import Target
    from otaharness.servers.tr069 import service

    state_dir = tmp_path / "served"
    settings = {"state_dir": str(state_dir), "auth": "digest", "users": "cpe:secret,b:2",
                "cr_username": "acs", "tls": "false", "strict_nc": "true",
                "nc_reuse_devices": "serial:CWMPSIM*, oui:E48D8C", "nonce_lifetime": "60",
                "max_sessions": "10", "file_auth": "digest", "file_users": "files:s3cret",
                "download_username": "files", "download_password": "s3cret",
                "admin_token": "operator-token"}

    async def main(world: World) -> None:
        runtime = SimpleNamespace(artifacts=tmp_path / "scenario", clock=world.clock,
                                  rng=lambda purpose: random.Random(purpose),
                                  target=lambda flow: Target(flow, endpoints=settings))
        for _ in range(2):  # the second start finds the first one's upload
            started = await service.start(runtime)
            try:
                assert started.acs.config.users == {"cpe": "secret", "b": "2"}
                assert started.acs.config.auth_mode == "digest"
                assert started.acs.config.connection_request_username == "acs"
                config = started.acs.config
                assert config.nc_reuse_devices == ("serial:CWMPSIM*", "oui:E48D8C")
                assert (config.strict_nc, config.nonce_lifetime, config.max_sessions) == (
                    True, 60.0, 10)
                assert (config.file_auth_mode, config.file_users) == ("digest", {"files": "s3cret"})
                assert (config.download_username, config.download_password) == ("files", "s3cret")
                assert started.files.auth.mode == "digest"
                assert started.tokens() == {"admin": "operator-token"}
                assert started.endpoints()["acs"].startswith("http://")
                if started.store.file("kept.bin") is None:
                    started.store.save_file("kept.bin", b"x", uploaded=0.0)
                    first = True
                else:
                    first = False
            finally:
                await started.stop()
        assert not first and (state_dir / "acs.sqlite3").exists()

    run_world(main)


def test_service_settings_refuse_what_they_do_not_know():
    from otaharness.servers.tr069.service import (
        SettingsError, config_from_settings, ports_from_settings)

    refused = [({"port": "1"}, "unknown tr069 settings port"),
               ({"users": "nobody"}, "expected name:password"),
               ({"auth": "kerberos"}, "auth must be"),
               ({"file_auth": "token"}, "file_auth must be"),
               ({"strict_nc": "maybe"}, "strict_nc: expected true or false"),
               ({"nonce_lifetime": "nan"}, "nonce_lifetime: must be at least 1")]
    # Never every device at once: the allowance weakens replay protection.
    refused += [({"nc_reuse_devices": everyone}, "nc_reuse_devices")
                for everyone in ("serial:*", "oui:", "anything")]
    for settings, message in refused:
        with pytest.raises(SettingsError, match=message):
            config_from_settings(settings)
    with pytest.raises(SettingsError, match="acs_port: a port is 0..65535"):
        ports_from_settings({"acs_port": "70000"})


def test_the_harness_checks_tr069_settings_before_anything_starts(tmp_path):
    from otaharness.runtime.targets import ConfigError, load_config

    (tmp_path / "none.toml").write_text("")
    config = load_config({"target.tr069.nc_reuse_devices": "serial:CWMPSIM*",
                          "target.tr069.tls": "false"}, path=tmp_path / "none.toml")
    assert config.target("tr069").endpoints["nc_reuse_devices"] == "serial:CWMPSIM*"
    for bad in ({"target.tr069.nc_reuse_devices": "serial:*"}, {"target.tr069.strict_nc": "x"},
                {"target.tr069.file_auth": "bearer"}):
        with pytest.raises(ConfigError):
            load_config(bad, path=tmp_path / "none.toml")


def test_hold_requests_makes_the_cpe_wait_with_its_transfer_complete(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(hold_requests=True))
        cpe = await world.add_cpe("CHR0001")
        await booted(world, cpe)
        await world.upload("webui.tar", b"ui", "2 Web Content")
        await world.admin("POST", "/actions/upgrade", json={
            "devices": [device_id(cpe)], "file": "webui.tar", "delay_seconds": 60})
        (download,) = world.acs.store.tasks(device_id=device_id(cpe))
        assert await world.run_until(
            lambda: world.acs.store.task(download["id"])["state"] == "transferring", 30)
        # A reboot is waiting at the ACS when the TransferComplete session starts.
        world.acs.store.add_task(device_id(cpe), "reboot", {}, world.clock.epoch())
        assert await world.run_until(lambda: ("1 BOOT", "M Reboot") in cpe.informs, HOUR)
        bodies = [parse_envelope(data) for _, data in world.messages]
        names = [e.body.TYPE_NAME for e in bodies]
        last_inform = max(i for i, n in enumerate(names[:names.index("Reboot")]) if n == "Inform")
        assert names[last_inform:last_inform + 5] == [
            "Inform", "InformResponse", "Reboot", "RebootResponse", "TransferComplete"]
        assert bodies[last_inform + 1].header.hold_requests is True
        assert bodies[last_inform + 2].header.hold_requests is False  # released with the last RPC

    run_world(main)


def test_retry_backoff_follows_the_spec_ranges_and_retry_count_is_reported(run_world):
    async def main(world: World) -> None:
        await world.start()
        ports = dict(world.acs.ports)
        await world.acs.stop()
        cpe = await world.add_cpe("CHR0001")
        await world.clock.run_for(700)
        attempts = cpe.session_attempts
        gaps = [b - a for a, b in zip(attempts, attempts[1:])]
        assert len(gaps) >= 5
        for retry, gap in enumerate(gaps[:6], start=1):  # 5-10, 10-20, 20-40, 40-80, ...
            assert 5 * 2 ** (retry - 1) <= gap <= 5 * 2 ** retry, (retry, gap)
        failed_retries = cpe.retry_count
        await world.start(world.acs.acs.config, ports)
        await world.clock.run_for(5 * 2 ** (failed_retries + 1))
        assert cpe.sessions_completed == 1 and cpe.retry_count == 0
        (inform,) = events_of(world, cpe, "inform")
        assert inform["detail"]["retry_count"] == failed_retries
        assert inform["detail"]["events"] == [["0 BOOTSTRAP", ""], ["1 BOOT", ""]]

    run_world(main)


def test_retry_wait_range_stops_growing_at_retry_ten():
    rng = random.Random(7)
    waits = {n: [retry_wait(n, 5, 2000, rng) for _ in range(200)] for n in (1, 10, 11, 30)}
    assert 5 <= min(waits[1]) and max(waits[1]) <= 10
    for n in (10, 11, 30):
        assert 2560 <= min(waits[n]) and max(waits[n]) <= 5120
    assert max(waits[1]) - min(waits[1]) > 3  # really random, not a constant
    slow = [retry_wait(2, 30, 1500, rng) for _ in range(100)]
    assert 45 <= min(slow) and max(slow) <= 67.5


def test_file_server_ranges_credentials_and_errors(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(file_auth_mode="basic", file_users={"fs": "pw"}))
        content = (FIXTURES / "routeros-x86-6.48.4.npk").read_bytes()
        await world.upload("pkg.npk", content)
        url = world.url("files") + "/pkg.npk"
        async with world.http.get(url) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        auth = {"Authorization": basic_authorization("fs", "pw")}
        async with world.http.get(url, headers={**auth, "Range": "bytes=100-199"}) as response:
            assert response.status == 206
            assert await response.read() == content[100:200]
        async with world.http.get(url, headers={**auth, "Range": f"bytes={len(content) + 5}-"}) as response:
            assert response.status == 416
        async with world.http.head(url, headers=auth) as response:
            assert (response.status, int(response.headers["Content-Length"])) == (200, len(content))
        async with world.http.get(world.url("files") + "/nothing.bin", headers=auth) as response:
            assert response.status == 404
        async with world.http.put(url, headers=auth, data=b"x") as response:
            assert response.status == 405

    run_world(main)


@pytest.mark.parametrize("spec, status, complaint", [
    ({"group": "g", "original_version": "1", "file": "f"}, 400, "new_version"),
    ({"group": "nope", "original_version": "1", "file": "f", "new_version": "2"}, 404, "group"),
    ({"group": "g", "original_version": "1", "file": "f", "new_version": "2", "hours": ["25"]},
     400, "0-23"),
    ({"group": "g", "original_version": "1", "file": "f", "new_version": "2", "days": ["Funday"]},
     400, "day"),
    ({"group": "g", "original_version": "1", "file": "f", "new_version": "2", "event": "Reboot"},
     400, "Boot or Inform"),
    ({"group": "g", "original_version": "1", "file": "f", "new_version": "2",
      "timezone": "Mars/Olympus"}, 400, "time zone"),
    ({"group": "g", "original_version": "1", "file": "f", "new_version": "2",
      "max_attempts": 0}, 400, "max_attempts"),
    ({"group": "g", "original_version": "1", "file": "f", "new_version": "2", "colour": "red"},
     400, "unknown"),
])
def test_admin_api_refuses_bad_batches(run_world, spec, status, complaint):
    async def main(world: World) -> None:
        await world.start()
        await world.upload("f", b"x")
        await world.admin("PUT", "/groups/g", json={})
        got, body = await world.admin("POST", "/batches", json=spec)
        assert got == status and complaint in body["error"], body
        assert (await world.admin("GET", "/batches"))[1] == []

    run_world(main)


def test_admin_api_unknowns_are_404(run_world):
    async def main(world: World) -> None:
        await world.start()
        assert (await world.admin("GET", "/devices/none"))[0] == 404
        assert (await world.admin("GET", "/batches/9"))[0] == 404
        assert (await world.admin("POST", "/devices/none/reboot"))[0] == 404
        assert (await world.admin("DELETE", "/files/none"))[0] == 404
        assert (await world.admin("POST", "/actions/upgrade", json={"devices": ["x"],
                                                                    "file": "none"}))[0] == 404

    run_world(main)


def test_hundreds_of_cpes_share_one_connection_request_listener(run_world):
    count = 300  # a test-sized run: `otaharness emulate cpe --count 5000`

    async def main(world: World) -> None:
        await world.start()
        cpes = [await world.add_cpe(f"S{n:05d}", periodic_interval=DAY) for n in range(count)]
        await booted(world, *cpes)
        assert len(world.acs.store.devices()) == count
        urls = {cpe.model.get("ManagementServer.ConnectionRequestURL") for cpe in cpes}
        listeners = {url.rsplit("/", 1)[0] for url in urls}
        assert len(urls) == count and listeners == {f"http://127.0.0.1:{world.listener.port}"}
        sample = cpes[::100]
        results = await asyncio.gather(*(world.acs.acs.reboot(device_id(c)) for c in sample))
        assert results == [True] * len(sample)
        assert await world.run_until(
            lambda: all(("1 BOOT", "M Reboot") in c.informs for c in sample), HOUR)

    run_world(main)


def test_batch_can_be_edited_and_removed(run_world):
    async def main(world: World) -> None:
        await world.start()
        await world.upload("f", b"x")
        await world.admin("PUT", "/groups/g", json={})
        status, batch = await world.admin("POST", "/batches", json={
            "group": "g", "original_version": "1", "file": "f", "new_version": "2"})
        assert status == 201 and batch["hours"] == list(range(24)) and batch["event"] == "Inform"
        status, edited = await world.admin("PATCH", f"/batches/{batch['id']}", json={
            "hours": ["1-2"], "event": "boot", "max_devices_per_day": 5})
        assert status == 200
        assert (edited["hours"], edited["event"], edited["max_devices_per_day"]) == ([1, 2], "Boot", 5)
        assert edited["new_version"] == "2"  # untouched fields stay
        assert (await world.admin("PATCH", f"/batches/{batch['id']}", json={"hours": []}))[0] == 400
        assert (await world.admin("DELETE", f"/batches/{batch['id']}"))[0] == 200
        assert (await world.admin("GET", f"/batches/{batch['id']}"))[0] == 404

    run_world(main)


def test_file_server_validators_describe_the_stored_file(run_world):
    """ETag and Content-MD5 are the stored content's MD5; conditional requests and If-Range are
    judged against it, and a re-upload changes it."""
    import base64
    import hashlib

    async def main(world: World) -> None:
        await world.start()
        content = (FIXTURES / "routeros-x86-6.48.4.npk").read_bytes()
        await world.upload("pkg.npk", content)
        url = world.url("files") + "/pkg.npk"
        md5 = hashlib.md5(content)
        async with world.http.get(url) as response:
            assert response.status == 200 and await response.read() == content
            assert response.headers["ETag"] == f'"{md5.hexdigest()}"'
            assert response.headers["Content-MD5"] == base64.b64encode(md5.digest()).decode()
            etag = response.headers["ETag"]
        async with world.http.get(url, headers={"If-None-Match": etag}) as response:
            assert (response.status, response.headers["ETag"]) == (304, etag)
        async with world.http.get(url, headers={"If-Match": '"something-else"'}) as response:
            assert response.status == 412
        async with world.http.get(url, headers={"Range": "bytes=-10", "If-Range": etag}) as response:
            assert response.status == 206 and await response.read() == content[-10:]
            assert "Content-MD5" not in response.headers
            assert response.headers["Content-Range"] == f"bytes {len(content) - 10}-{len(content) - 1}/{len(content)}"
        await world.upload("pkg.npk", content + b"!")
        async with world.http.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}) as response:
            # the file changed since that ETag: the whole new file, with its own validators
            assert response.status == 200 and await response.read() == content + b"!"
            assert response.headers["ETag"] == f'"{hashlib.md5(content + b"!").hexdigest()}"'
        async with world.http.get(url, headers={"If-None-Match": etag}) as response:
            assert response.status == 200

    run_world(main)
