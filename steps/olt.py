"""OLT firmware management steps (seed 001, "Deploying Binaries to Devices"): device types with
slots, firmware hosted in the platform, installations into a device's slot through its gateway.

The steps speak as an IoT platform team using the firmware REST API (`docs/olt-api.md`) over
HTTPS (trusting the scenario's server CA) with the `default` tenant's token and credentials from
the runtime (`runtime.token_for("olt")`, what `serve olt` prints), or another tenant's (`I act as
tenant "rival"`: created through the API with the operator's token). Gateways are the
`emulators/olt_gateway` emulator with field devices behind it; each gateway is a device of the
runtime (`runtime.devices[name]`) reaching the API and the broker through the runtime's links, so
link faults (`the link between "gw1" and the OLT endpoint is cut after 4 KiB`) and device faults
apply to it. The last answer of the API is `${response}` (`status`, `body`), the last
installation `${installation}`.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from behave import given, then, when

from otaharness.emulators.olt_gateway import FieldDevice, OltApiClient, OltApiError, OltGateway
from otaharness.fixtures import fixture_path
from otaharness.bdd.support import json_argument, mismatches, ota
from otaharness.runtime.mqtt import MqttClient
from otaharness.servers.http_service import new_token
from otaharness.servers.olt.http_api import TOKEN_PATH
from otaharness.units import parse_size

FIELD_CHUNK = 1024  # bytes per field-procedure chunk the gateways send


def _names(text: str) -> list[str]:
    """'firmware, bootloader and configuration' → the three names."""
    return [name.strip() for name in re.split(r",|\band\b", text) if name.strip()]


def _fixture(name: str) -> dict[str, Any]:
    return json.loads(fixture_path("olt", name).read_text())


@dataclass
class Platform:
    """The platform team's side of a scenario: the API session, tokens per tenant, and the names
    the feature gives to firmware, device types, devices and gateways."""

    runtime: Any
    service: Any
    session: aiohttp.ClientSession
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)  # tenant → client
    tokens: dict[str, str] = field(default_factory=dict)
    tenant: str = "default"
    ids: dict[str, str] = field(default_factory=dict)  # feature name → resource id
    images: dict[str, bytes] = field(default_factory=dict)  # firmware name → its bytes
    versions: dict[str, str] = field(default_factory=dict)  # firmware name → version
    gateways: dict[str, OltGateway] = field(default_factory=dict)
    field_devices: dict[str, FieldDevice] = field(default_factory=dict)

    async def request(self, method: str, path: str, body: Any = None, *,
                      raw: bytes | None = None) -> tuple[int, Any]:
        """One call as the current tenant; the answer is also kept as `${response}`. A token
        that expired while scenario hours passed is renewed once, as a client does."""
        options: dict[str, Any] = {"data": raw} if raw is not None else (
            {"json": body} if body is not None else {})
        for renew in (False, True):
            if renew:
                self.tokens.pop(self.tenant, None)
            headers = {"Authorization": f"Bearer {await self.token()}"}
            async with self.session.request(method, self.service.endpoints()["olt"] + path,
                                            headers=headers, **options) as response:
                content = await response.read()
                status = response.status
                json_body = response.content_type == "application/json"
            if status != 401:
                break
        answer = json.loads(content) if json_body else content
        self.runtime.values["response"] = {"status": status, "body": answer}
        return status, answer

    async def ok(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        """A call that must succeed; its `data`."""
        status, answer = await self.request(method, path, body, **options)
        assert 200 <= status < 300, f"{method} {path} answered {status}: {answer}"
        return answer["data"] if isinstance(answer, dict) else answer

    async def token(self) -> str:
        if self.tenant not in self.tokens:
            client_id, secret = self.credentials[self.tenant]
            form = {"grant_type": "client_credentials", "client_id": client_id,
                    "client_secret": secret}
            async with self.session.post(self.service.endpoints()["olt"] + TOKEN_PATH,
                                         data=form) as response:
                assert response.status == 200, await response.text()
                self.tokens[self.tenant] = (await response.json())["access_token"]
        return self.tokens[self.tenant]

    def id_of(self, name: str) -> str:
        if name not in self.ids:
            raise KeyError(f"nothing called {name!r} (known: {', '.join(sorted(self.ids)) or 'none'})")
        return self.ids[name]

    def name_of(self, resource_id: str) -> str:
        """The feature's name for a resource id."""
        return next(name for name, known in self.ids.items() if known == resource_id)

    def gateway(self, name: str) -> OltGateway:
        if name not in self.gateways:
            raise KeyError(f"no gateway {name!r}: connect it first")
        return self.gateways[name]

    def field_device(self, name: str) -> FieldDevice:
        if name not in self.field_devices:
            raise KeyError(f"no field device {name!r}: connect it to a gateway first")
        return self.field_devices[name]

    def installation_path(self) -> str:
        installation = self.runtime.values.get("installation")
        assert installation is not None, "no installation has been created"
        return (f"/v1/devices/{installation['deviceId']}/firmware-installations/"
                f"{installation['id']}")


def _platform(context) -> Platform:
    platform = getattr(context, "olt_platform", None)
    if platform is None:
        runtime = ota(context)

        async def open_platform() -> Platform:
            service = await runtime.service("olt")
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                ssl=_trust(runtime, service) or True))
            runtime.add_cleanup(session.close)
            tokens = runtime.running_tokens()
            return Platform(runtime, service, session,
                            credentials={"default": (tokens["olt-client-id"], tokens["olt-client-secret"])},
                            tokens={"default": tokens["olt"]})

        platform = context.olt_platform = runtime.run(open_platform())
    return platform


def _trust(runtime: Any, service: Any) -> ssl.SSLContext | None:
    """The TLS context of a client of the API over HTTPS: trusting the scenario's server CA."""
    if service.endpoints()["olt"].startswith("https:"):
        return runtime.pki().client_context()
    return None


def _run(context, coro) -> Any:
    return ota(context).run(coro)


# -- tenants ------------------------------------------------------------------------------------


@given('I act as tenant "{tenant}"')
@when('I act as tenant "{tenant}"')
def act_as_tenant(context, tenant):
    """Further calls use this tenant's credentials (`default` is the platform team's own). A new
    tenant is created by the platform's operator: `POST /v1/tenants` with the operator's token."""
    platform = _platform(context)
    if tenant not in platform.credentials:
        operator = {"Authorization": f"Bearer {platform.runtime.token_for('olt-operator')}"}

        async def create() -> dict[str, Any]:
            async with platform.session.post(platform.service.endpoints()["olt"] + "/v1/tenants",
                                             json={"name": tenant}, headers=operator) as response:
                assert response.status == 201, f"POST /v1/tenants answered {response.status}"
                return (await response.json())["data"]

        created = _run(context, create())
        platform.credentials[tenant] = (created["clientId"], created["clientSecret"])
    platform.tenant = tenant


# -- device types and devices ---------------------------------------------------------------------


@given('the device type "{type_name}" declares the {slots} slots')
@given('the device type "{type_name}" declares the {slots} slot')
def device_type_with_slots(context, type_name, slots):
    """Create the seed's OSRAM light switch type (its configuration, attributes, events and
    actions) declaring the named slot kinds: firmware, bootloader and/or configuration."""
    platform = _platform(context)
    document = _fixture("osram_switch_all_slots_type.json")
    wanted = _names(slots)
    unknown = set(wanted) - set(document["slots"])
    assert not unknown, f"no slot kind {', '.join(sorted(unknown))} (firmware, bootloader, configuration)"
    document["slots"] = {kind: document["slots"][kind] for kind in wanted}
    document["name"] = type_name
    platform.ids[type_name] = _run(context, platform.ok("POST", "/v1/device-types", document))["id"]


@when('I create the device type "{type_name}" from the seed\'s OSRAM document')
def create_seed_type(context, type_name):
    """POST the seed's "Extended OSR Light switch" document verbatim; the answer is
    `${response}`."""
    platform = _platform(context)
    status, answer = _run(context, platform.request("POST", "/v1/device-types",
                                                    _fixture("osram_switch_type.json")))
    if status == 201:
        platform.ids[type_name] = answer["data"]["id"]


@then('the device type "{type_name}" reads back as the seed\'s document')
def seed_type_reads_back(context, type_name):
    """GET the type: every field of the seed's document comes back unchanged (plus id and
    createdAt), including its one firmware slot."""
    platform = _platform(context)
    stored = _run(context, platform.ok("GET", f"/v1/device-types/{platform.id_of(type_name)}"))
    extra = {key: stored.pop(key) for key in ("id", "createdAt")}
    assert extra["id"] == platform.id_of(type_name)
    assert stored == _fixture("osram_switch_type.json"), f"stored differently: {stored}"


@when("I try to create a device type with")
def try_create_type(context):
    """POST the doc string as a device type; the answer is `${response}`."""
    platform = _platform(context)
    _run(context, platform.request("POST", "/v1/device-types", json_argument(context)))


@given('a device "{device}" of type "{type_name}"')
def device_of_type(context, device, type_name):
    """Create a device of the current tenant with no gateway (it is only addressed over REST)."""
    platform = _platform(context)
    created = _run(context, platform.ok("POST", "/v1/devices", {
        "info": {"name": device, "deviceTypeId": platform.id_of(type_name)}}))
    platform.ids[device] = created["id"]


@given('gateway "{gateway}" connects device "{device}" of type "{type_name}"')
def gateway_connects_device(context, gateway, device, type_name):
    """Register the device behind the gateway (`info.connectedBy`). The gateway is created and
    switched on the first time: a device of the platform with its own device-scoped credentials,
    running the gateway emulator over the runtime's links from its own address; it listens on
    MQTT for its devices' instructions and pushes images into them by their field procedure."""
    platform = _platform(context)
    runtime = platform.runtime

    async def connect() -> None:
        if gateway not in platform.gateways:
            await _switch_on_gateway(platform, gateway)
        created = await platform.ok("POST", "/v1/devices", {
            "info": {"name": device, "deviceTypeId": platform.id_of(type_name),
                     "connectedBy": platform.id_of(gateway)},
            "attributes": {"temperature": 21.5}})
        platform.ids[device] = created["id"]
        platform.field_devices[device] = FieldDevice(created["id"],
                                                     attributes={"temperature": 21.5})
        await platform.gateways[gateway].add_device(platform.field_devices[device])

    runtime.run(connect())


async def _switch_on_gateway(platform: Platform, name: str) -> None:
    runtime = platform.runtime
    if "gateway type" not in platform.ids:
        created = await platform.ok("POST", "/v1/device-types", _fixture("gateway_type.json"))
        platform.ids["gateway type"] = created["id"]
    device = await platform.ok("POST", "/v1/devices", {
        "info": {"name": name, "deviceTypeId": platform.ids["gateway type"]}})
    platform.ids[name] = device["id"]
    credentials = await platform.ok("POST", f"/v1/devices/{device['id']}/credentials")
    endpoints = platform.service.endpoints()
    api_host, api_port = await runtime.link(endpoints["olt"])
    mqtt_host, mqtt_port = await runtime.link(endpoints["mqtt"])
    address = runtime.address_of(name)
    emulator = OltGateway(
        device["id"],
        OltApiClient(f"{urlsplit(endpoints['olt']).scheme}://{api_host}:{api_port}",
                     credentials["clientId"], credentials["clientSecret"], bind_address=address,
                     ssl_context=_trust(runtime, platform.service)),
        MqttClient(f"olt-gateway-{name}", mqtt_host, mqtt_port, bind_address=address),
        runtime.clock, chunk_size=FIELD_CHUNK)
    runtime.add_cleanup(emulator.stop)
    await emulator.start()
    platform.gateways[name] = runtime.devices[name] = emulator


# -- firmware -----------------------------------------------------------------------------------


def _create_firmware(context, name: str, version: str, slot: str | None) -> None:
    platform = _platform(context)
    body = {"name": name, "version": version, "description": f"{name} {version}"}
    if slot is not None:
        body["kind"] = slot
    platform.ids[name] = _run(context, platform.ok("POST", "/v1/firmwares", body))["id"]
    platform.versions[name] = version


def _image(context, name: str, size: int) -> bytes:
    """Bytes of a test image, from the scenario's seed."""
    return ota(context).rng(f"olt image {name} {size}").randbytes(size)


def _on_firmware(context, method: str, name: str, below: str = "", *, raw: bytes | None = None,
                 must_succeed: bool = False) -> Any:
    """A call on the named firmware (or `below` it, e.g. `/blob`): (status, answer), or only the
    data of an answer that `must_succeed`."""
    platform = _platform(context)
    call = platform.ok if must_succeed else platform.request
    return _run(context, call(method, f"/v1/firmwares/{platform.id_of(name)}{below}", raw=raw))


def _attach(context, name: str, data: bytes) -> tuple[int, Any]:
    return _on_firmware(context, "PUT", name, "/blob", raw=data)


@given('firmware "{name}" version "{version}" for the {slot} slot')
def firmware_for_slot(context, name, version, slot):
    """Create the firmware's metadata (step 1 of the seed's hosting procedure), of the kind that
    goes into this slot; no blob yet."""
    _create_firmware(context, name, version, slot)


@given('firmware "{name}" version "{version}" with a {size} image')
def firmware_with_image(context, name, version, size):
    """Create the firmware's metadata and attach a blob of this size (both hosting steps)."""
    _create_firmware(context, name, version, None)
    attach_image(context, size, name)


@when('I attach a {size} image to firmware "{name}"')
def attach_image(context, size, name):
    """Upload the blob (step 2 of the seed's hosting procedure); it must be accepted."""
    data = _image(context, name, parse_size(size))
    status, answer = _attach(context, name, data)
    assert status == 200, f"attaching the blob answered {status}: {answer}"
    _platform(context).images[name] = data


@when('I try to attach another {size} image to firmware "{name}"')
def attach_another_image(context, size, name):
    """Upload other bytes to a firmware that has its blob; the answer is `${response}`."""
    _attach(context, name, _image(context, f"{name} again", parse_size(size)))


@then('firmware "{name}" offers its image for download with its size and hashes')
def firmware_offers_image(context, name):
    """The firmware resource gained a download link, the blob's size and its sha256, sha1 and md5
    hashes; the link serves exactly the attached bytes."""
    platform = _platform(context)
    data = platform.images[name]
    firmware = _run(context, platform.ok("GET", f"/v1/firmwares/{platform.id_of(name)}"))
    assert firmware["blob"]["size"] == len(data), firmware
    assert firmware["blob"]["hashes"] == {algorithm: hashlib.new(algorithm, data).hexdigest()
                                          for algorithm in ("sha256", "sha1", "md5")}, firmware
    link = firmware["links"]["download"]
    assert link.endswith(f"/v1/firmwares/{firmware['id']}/blob"), link
    downloaded = _run(context, platform.ok("GET", link.removeprefix(platform.service.endpoints()["olt"])))
    assert downloaded == data, "the download link serves other bytes"


@then('firmware "{name}" still serves its first image')
def firmware_serves_first_image(context, name):
    """The blob download gives the bytes attached first."""
    downloaded = _on_firmware(context, "GET", name, "/blob", must_succeed=True)
    assert downloaded == _platform(context).images[name], "the firmware serves other bytes than attached"


@given('the stored image of firmware "{name}" is corrupted at byte {offset:d}')
def corrupt_stored_image(context, name, offset):
    """Flip one byte of the blob in the platform's storage, behind the API's back (server-side
    control): the hashes in the firmware's metadata no longer match what is served."""
    store = _platform(context).service.server.store
    firmware_id = _platform(context).id_of(name)
    rowid = store.db.execute("SELECT rowid FROM blobs WHERE firmware_id = ?",
                             (firmware_id,)).fetchone()[0]
    with store.db, store.db.blobopen("blobs", "data", rowid) as blob:
        blob.seek(offset)
        byte = blob.read(1)
        blob.seek(offset)
        blob.write(bytes([byte[0] ^ 0xFF]))


@when('I delete firmware "{name}"')
def delete_firmware(context, name):
    """DELETE the firmware; it must be accepted (204)."""
    _on_firmware(context, "DELETE", name, must_succeed=True)


@when('I try to delete firmware "{name}"')
def try_delete_firmware(context, name):
    """DELETE the firmware; the answer is `${response}`."""
    _on_firmware(context, "DELETE", name)


@then('firmware "{name}" is gone')
def firmware_is_gone(context, name):
    """Neither the firmware nor its blob can be read any more (404)."""
    platform = _platform(context)
    for path in (f"/v1/firmwares/{platform.id_of(name)}", f"/v1/firmwares/{platform.id_of(name)}/blob"):
        status, answer = _run(context, platform.request("GET", path))
        assert status == 404, f"GET {path} answered {status}: {answer}"


@when('I try to read firmware "{name}"')
def try_read_firmware(context, name):
    """GET the firmware's details; the answer is `${response}`."""
    _on_firmware(context, "GET", name)


@when('I try to download firmware "{name}"')
def try_download_firmware(context, name):
    """GET the firmware's blob; the answer is `${response}`."""
    _on_firmware(context, "GET", name, "/blob")


async def _call_as(platform: Platform, method: str, path: str, body: Any,
                   authorization: str | None) -> None:
    """One call with exactly this Authorization header (None: none), kept as `${response}`."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with platform.session.request(method, platform.service.endpoints()["olt"] + path,
                                        data=body if isinstance(body, bytes) else None,
                                        json=None if isinstance(body, bytes) else body,
                                        headers=headers) as response:
        content = await response.read()
        answer = json.loads(content) if response.content_type == "application/json" else content
        platform.runtime.values["response"] = {"status": response.status, "body": answer}


@when('firmware "{name}" version "{version}" is sent without a token')
def firmware_sent_without_token(context, name, version):
    """POST /v1/firmwares with no Authorization header."""
    platform = _platform(context)
    _run(context, _call_as(platform, "POST", "/v1/firmwares", {"name": name, "version": version}, None))


@when('firmware "{name}" version "{version}" is sent with a forged token')
def firmware_sent_with_forged_token(context, name, version):
    """POST /v1/firmwares with a token made like a real one (CSPRNG) but never issued."""
    platform = _platform(context)
    _run(context, _call_as(platform, "POST", "/v1/firmwares", {"name": name, "version": version},
                           f"Bearer {new_token()}"))


@when('firmware "{name}" version "{version}" is sent with the operator\'s token')
def firmware_sent_with_operator_token(context, name, version):
    """POST /v1/firmwares with the operator's token, which manages tenants and nothing else."""
    platform = _platform(context)
    token = platform.runtime.token_for("olt-operator")
    _run(context, _call_as(platform, "POST", "/v1/firmwares", {"name": name, "version": version},
                           f"Bearer {token}"))


@when('a malformed body of {size} is sent to the firmware API without a token')
def malformed_firmware_without_token(context, size):
    """POST /v1/firmwares with this many bytes that are no JSON at all, and no token."""
    platform = _platform(context)
    _run(context, _call_as(platform, "POST", "/v1/firmwares", b"\xff" * parse_size(size), None))


@when('a tenant\'s token asks the operator\'s endpoint for a tenant "{tenant}"')
def tenant_token_creates_tenant(context, tenant):
    """POST /v1/tenants with the current tenant's token (only the operator's may)."""
    platform = _platform(context)

    async def call() -> None:
        await _call_as(platform, "POST", "/v1/tenants", {"name": tenant}, f"Bearer {await platform.token()}")
    _run(context, call())


def _tenants_named(context, tenant: str) -> int:
    """Tenants of this name in the back end's store (server-side: `@embedded:olt`)."""
    return _platform(context).service.backend.db.execute(
        "SELECT COUNT(*) FROM tenants WHERE name = ?", (tenant,)).fetchone()[0]


@then('the platform has no tenant "{tenant}"')
def platform_has_no_tenant(context, tenant):
    """No tenant of this name was created."""
    assert _tenants_named(context, tenant) == 0, f"a tenant {tenant!r} exists"


@then('the platform has a tenant "{tenant}"')
def platform_has_tenant(context, tenant):
    """Exactly one tenant of this name exists."""
    assert _tenants_named(context, tenant) == 1, f"{_tenants_named(context, tenant)} tenants {tenant!r}"


@then("my firmware list is empty")
def firmware_list_empty(context):
    """GET /firmwares lists nothing for the current tenant."""
    answer = _run(context, _platform(context).request("GET", "/v1/firmwares"))[1]
    assert answer["data"] == [] and answer["meta"]["itemsTotal"] == 0, answer


@then('my firmware list holds "{name}"')
def firmware_list_holds(context, name):
    """GET /firmwares lists this firmware for the current tenant."""
    platform = _platform(context)
    answer = _run(context, platform.request("GET", "/v1/firmwares?pageSize=100"))[1]
    assert platform.id_of(name) in [item["id"] for item in answer["data"]], answer


# -- installations ---------------------------------------------------------------------------------


def _install(context, name: str, slot: str, device: str, **options: Any) -> tuple[int, Any]:
    platform = _platform(context)
    body = {"firmwareId": platform.id_of(name), "slot": slot, **options}
    status, answer = _run(context, platform.request(
        "POST", f"/v1/devices/{platform.id_of(device)}/firmware-installations", body))
    if status == 201:
        ota(context).values["installation"] = answer["data"]
    return status, answer


@when('I install firmware "{name}" into the {slot} slot of device "{device}"')
def install(context, name, slot, device):
    """POST an installation of the firmware into the device's slot; it must be created (201).
    The platform sends the instruction over MQTT at once; the installation is `${installation}`."""
    status, answer = _install(context, name, slot, device)
    assert status == 201, f"the installation answered {status}: {answer}"


@when('I try to install firmware "{name}" into the {slot} slot of device "{device}"')
def try_install(context, name, slot, device):
    """POST an installation; the answer is `${response}`."""
    _install(context, name, slot, device)


@when('I install firmware "{name}" into the {slot} slot of device "{device}" at {start} '
      'within the maintenance window {opens} to {closes} UTC')
def install_scheduled(context, name, slot, device, start, opens, closes):
    """POST an installation that starts at a time (RFC 3339) and may write into the device only
    in a daily UTC window ("02:00" to "04:00"): the platform sends the instruction at the start
    time, the gateway downloads at once and waits for the window to push the image."""
    status, answer = _install(context, name, slot, device, schedule={"startAt": start},
                              maintenanceWindow={"start": opens, "end": closes})
    assert status == 201, f"the installation answered {status}: {answer}"


@then("the platform created the installation as {status}")
def created_as(context, status):
    """The POST's answer shows the installation in this status."""
    created = ota(context).values["installation"]
    assert created["status"] == status, f"created as {created['status']}: {created}"


def _current_installation(context) -> dict[str, Any]:
    platform = _platform(context)
    installation = _run(context, platform.ok("GET", platform.installation_path()))
    ota(context).values["installation"] = installation
    return installation


@then("the installation is {status}")
def installation_is(context, status):
    """GET the installation: it is in this status now (scheduled, downloading, downloaded,
    installing, succeeded, failed, canceled). With `soon` in front, retried until it holds."""
    installation = _current_installation(context)
    assert installation["status"] == status, (
        f"the installation is {installation['status']} ({installation['details']}), not {status}")


@then("the installation went through {statuses}")
def installation_history(context, statuses):
    """The installation's history, in order: e.g. `scheduled, downloading, downloaded,
    installing and succeeded`."""
    history = [entry["status"] for entry in _current_installation(context)["history"]]
    assert history == _names(statuses), f"the installation went through {', '.join(history)}"


@then('the installation\'s details say "{text}"')
def installation_details(context, text):
    """One of the installation's details (why it failed, what it holds) contains this text."""
    details = _current_installation(context)["details"]
    assert any(text in detail for detail in details), f"the details say {details}"


@then("the installation became {status} at {timestamp}")
def installation_became(context, status, timestamp):
    """The history shows the change into this status at this UTC time (to the second)."""
    history = _current_installation(context)["history"]
    times = [entry["at"][:19] for entry in history if entry["status"] == status]
    expected = timestamp.strip().removesuffix("Z")[:19]
    assert times == [expected], f"became {status} at {times or 'never'}: {history}"


@then('the installation still names firmware "{name}"')
def installation_names_firmware(context, name):
    """The installation's record keeps the id of the firmware it installed."""
    installation = _current_installation(context)
    assert installation["firmwareId"] == _platform(context).id_of(name), installation


@when("I cancel the installation")
def cancel_installation(context):
    """POST …/cancel; it must be accepted (200)."""
    platform = _platform(context)
    _run(context, platform.ok("POST", platform.installation_path() + "/cancel"))


@when("I try to cancel the installation")
def try_cancel_installation(context):
    """POST …/cancel; the answer is `${response}`."""
    platform = _platform(context)
    _run(context, platform.request("POST", platform.installation_path() + "/cancel"))


# -- answers ---------------------------------------------------------------------------------------


@then("the platform answers {status:d}")
@then("the platform answers {status:d} {reason}")
def platform_answers(context, status, reason=None):
    """The last API answer had this HTTP status (and, if given, this reason, e.g. `423 Locked`,
    which is also the title of the error)."""
    response = ota(context).values.get("response")
    assert response is not None, "no API call has been made"
    assert response["status"] == status, f"the platform answered {response['status']}: {response['body']}"
    if reason is not None:
        title = response["body"]["errors"][0]["title"]
        assert title == reason, f"the error is {title!r}, not {reason!r}"


@then('the answer says "{text}"')
def answer_says(context, text):
    """The last error answer's detail contains this text."""
    body = ota(context).values["response"]["body"]
    details = [error["detail"] for error in body.get("errors", [])] if isinstance(body, dict) else []
    assert any(text in detail for detail in details), f"the answer says {details or body!r}"


@then('the answer points at "{pointer}"')
def answer_points_at(context, pointer):
    """The last error answer names the JSON pointer of what is wrong in the request."""
    body = ota(context).values["response"]["body"]
    pointers = [error.get("pointer") for error in body.get("errors", [])]
    assert pointer in pointers, f"the answer points at {pointers}: {body}"


# -- gateways and field devices --------------------------------------------------------------------


@then('gateway "{gateway}" received the installation instruction over MQTT')
def gateway_got_instruction(context, gateway):
    """The gateway got the install instruction for `${installation}` on its device's topic, naming
    the slot, the firmware's version, size, hashes and download link."""
    installation = ota(context).values["installation"]
    platform = _platform(context)
    received = [message for message in platform.gateway(gateway).instructions
                if message.get("installationId") == installation["id"]
                and message.get("operation") == "install"]
    assert received, f"gateway {gateway} got no instruction for {installation['id']}"
    firmware = received[0]["firmware"]
    name = platform.name_of(installation["firmwareId"])
    data = platform.images[name]
    assert received[0]["slot"] == installation["slot"], received[0]
    assert firmware["version"] == platform.versions[name], firmware
    assert firmware["size"] == len(data), firmware
    assert firmware["hashes"]["sha256"] == hashlib.sha256(data).hexdigest(), firmware
    assert firmware["download"].endswith(f"/v1/firmwares/{firmware['id']}/blob"), firmware


@then('gateway "{gateway}" has received no installation instruction')
def gateway_got_nothing(context, gateway):
    """No install instruction has reached the gateway yet."""
    instructions = _platform(context).gateway(gateway).instructions
    assert not instructions, f"gateway {gateway} received {instructions}"


@then('gateway "{gateway}" dropped the installation')
def gateway_dropped(context, gateway):
    """The gateway stopped its job for `${installation}` (cancel instruction or 410) and kept
    no partial image of it in its flash."""
    emulator = _platform(context).gateway(gateway)
    installation_id = ota(context).values["installation"]["id"]
    assert emulator.results.get(installation_id) == "canceled", (
        f"gateway {gateway}: {emulator.results.get(installation_id, 'still working')}")
    assert installation_id not in emulator.flash, "the partial image is still in the gateway's flash"


@then('gateway "{gateway}" resumed the cut download where it stopped')
def gateway_resumed_cut(context, gateway):
    """The link cut the blob download once; the gateway asked again for the rest only
    (`Range: bytes=<what it had>-` with `If-Range` on the blob's sha256)."""
    platform = _platform(context)
    cuts = ota(context).proxy_for(platform.service.endpoints()["olt"]).counters(gateway).cuts
    assert cuts == 1, f"the link was cut {cuts} times"
    _assert_resumed_once(context, gateway)


@then('gateway "{gateway}" resumed the download from its flash')
def gateway_resumed_from_flash(context, gateway):
    """After coming back, the gateway kept the bytes it had in flash and asked for the rest only
    (`Range: bytes=<what it had>-` with `If-Range` on the blob's sha256)."""
    _assert_resumed_once(context, gateway)


def _assert_resumed_once(context, gateway: str) -> None:
    platform = _platform(context)
    requests = platform.gateway(gateway).download_requests
    assert len(requests) == 2 and requests[0] == {}, f"blob requests: {requests}"
    resumed_at = int(requests[1]["Range"].removeprefix("bytes=").rstrip("-"))
    installation = ota(context).values["installation"]
    name = platform.name_of(installation["firmwareId"])
    sha256 = hashlib.sha256(platform.images[name]).hexdigest()
    assert 0 < resumed_at < len(platform.images[name]), requests
    assert requests[1]["If-Range"] == f'"{sha256}"', requests


@when('gateway "{gateway}" still reports the installation as {status}')
def late_report(context, gateway, status):
    """The gateway PATCHes a status for `${installation}` with its own credentials; the answer is
    `${response}`."""
    runtime = ota(context)
    emulator = _platform(context).gateway(gateway)
    path = _platform(context).installation_path()
    try:
        data = runtime.run(emulator.api.call("PATCH", path, {"status": status}))
        runtime.values["response"] = {"status": 200, "body": {"data": data}}
    except OltApiError as error:
        text = str(error).split(": ", 1)[1]
        runtime.values["response"] = {"status": error.status, "body": json.loads(text)}


@given('device "{device}" refuses the field procedure at {step} with "{reason}"')
def device_refuses(context, device, step, reason):
    """The device answers this step of the field procedure (begin, chunk or commit) with a
    refusal, e.g. a battery too low to write flash."""
    assert step in ("begin", "chunk", "commit"), f"no field procedure step {step!r}"
    _platform(context).field_device(device).refuse[step] = reason


@given('device "{device}" takes {seconds:g} seconds to write each chunk')
def device_write_time(context, device, seconds):
    """Each field-procedure request takes the device this long (scenario time)."""
    _platform(context).field_device(device).write_delay = seconds


@then('device "{device}" reports version "{version}" in its {slot} slot')
def device_reports_version(context, device, version, slot):
    """The device's slot holds the image of this version (its non-volatile memory, written by the
    field procedure and checked by its sha256 at commit), and the platform's device resource
    shows the version in `slots.<slot>` as the gateway reported it."""
    platform = _platform(context)
    held = platform.field_device(device).slots.get(slot)
    assert held is not None, f"device {device}'s {slot} slot is empty"
    assert held.version == version, f"device {device}'s {slot} slot holds {held.version}"
    names = [name for name, known in platform.versions.items() if known == version]
    assert any(held.data == platform.images.get(name) for name in names), (
        f"device {device}'s {slot} slot holds other bytes than firmware version {version}")
    shown = _run(context, platform.ok("GET", f"/v1/devices/{platform.id_of(device)}"))["slots"]
    assert shown.get(slot, {}).get("version") == version, f"the platform shows slots {shown}"


@then('device "{device}" has no image in its {slot} slot')
def device_slot_empty(context, device, slot):
    """Nothing was written into the slot: the device holds no image there and the platform shows
    none."""
    platform = _platform(context)
    held = platform.field_device(device).slots.get(slot)
    assert held is None, f"device {device}'s {slot} slot holds version {held.version}"
    shown = _run(context, platform.ok("GET", f"/v1/devices/{platform.id_of(device)}"))["slots"]
    assert slot not in shown, f"the platform shows slots {shown}"


# -- device reports ---------------------------------------------------------------------------------


@when('gateway "{gateway}" reports for device "{device}" the {kind}')
def gateway_reports(context, gateway, device, kind):
    """The gateway publishes the doc string's values on `data-ingest` for the device
    (`{"deviceId", "type": kind, "value"}`); kind is attributes or configuration."""
    platform = _platform(context)
    _run(context, platform.gateway(gateway).report(platform.id_of(device), kind,
                                                   json_argument(context)))


@then('the platform rejected the {kind} report of device "{device}" because "{text}"')
def report_rejected(context, kind, device, text):
    """The device resource records the rejected report (`lastRejectedReport`) with this reason,
    and the gateway was told on the device's errors topic."""
    platform = _platform(context)
    stored = _run(context, platform.ok("GET", f"/v1/devices/{platform.id_of(device)}"))
    rejected = stored.get("lastRejectedReport")
    assert rejected is not None, f"no rejected report on device {device}"
    assert rejected["type"] == kind and text in rejected["detail"], rejected
    told = [error for gateway in platform.gateways.values() for error in gateway.errors
            if error.get("type") == kind and text in error.get("detail", "")]
    assert told, "no gateway was told of the rejection"


@then('the platform shows device "{device}" with the {kind}')
def device_shows(context, device, kind):
    """The device resource's attributes or configuration contain the doc string's values (and
    only fields the doc string names are compared)."""
    platform = _platform(context)
    stored = _run(context, platform.ok("GET", f"/v1/devices/{platform.id_of(device)}"))
    problems = mismatches(json_argument(context), stored[kind])
    assert not problems, f"device {device}'s {kind}: " + "; ".join(problems)


@then('the platform shows device "{device}" without the {kind} field "{name}"')
def device_lacks(context, device, kind, name):
    """The field is not among the device's stored values (a rejected report stored nothing)."""
    platform = _platform(context)
    stored = _run(context, platform.ok("GET", f"/v1/devices/{platform.id_of(device)}"))
    assert name not in stored[kind], f"device {device}'s {kind}: {stored[kind]}"
