"""The rules of the OLT back end: tenants and tokens, firmwares and blobs, device types, devices,
actions/events/time series, and firmware installations with their state machine and schedule.

No HTTP and no MQTT client here: the HTTP layer calls these methods with a :class:`Principal`,
and cloud-to-device messages go out through an injected :class:`Publisher`. Timers run on the
event loop and timestamps come from the injected clock (runtime contract).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import secrets
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from otaharness.protocols import olt
from otaharness.runtime import timeline
from otaharness.runtime.redaction import remember
from otaharness.servers.http_service import new_token
from otaharness.servers.olt import schemas
from otaharness.servers.olt.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidDocument,
    Locked,
    NotFound,
    Unauthorized,
)
from otaharness.servers.olt.store import Store

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 3600.0
MAX_TOKENS_PER_PRINCIPAL = 10  # bearer tokens kept per tenant or device, expired ones too (GitHub: ten)
BLOB_PATH = "/v1/firmwares/{id}/blob"

# The installation state machine (harness design, anchored on hawkBit DDI's deployment feedback:
# download → downloaded → proceeding → closed+success|failure; cancel → canceled).
ACTIVE = ("scheduled", "downloading", "downloaded", "installing")
TERMINAL = ("succeeded", "failed", "canceled")
ACTIVE_SQL = ",".join(f"'{status}'" for status in ACTIVE)  # for `status IN (...)`
TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"downloading", "downloaded", "failed"}),
    "downloading": frozenset({"downloading", "downloaded", "failed"}),
    "downloaded": frozenset({"installing", "failed"}),
    "installing": frozenset({"installing", "succeeded", "failed"}),
}
# Cancel is the tenant's request; once bytes are being written into the device it is too late.
CANCELABLE = ("scheduled", "downloading", "downloaded")
# An installing installation with no report for this long (scenario clock) fails: its device
# (or gateway) is gone, and it would otherwise hold the slot for good.
INSTALL_TIMEOUT = 3600.0


class Clock(Protocol):
    def epoch(self) -> float: ...


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes | str | dict[str, Any], qos: int = 0) -> Any: ...


class Principal(NamedTuple):
    """Who a token speaks for: a tenant, or one device (a gateway) of a tenant."""

    tenant_id: str
    device_id: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    page: int
    page_size: int
    total: int


@dataclass(frozen=True)
class TenantCredentials:
    tenant_id: str
    client_id: str
    client_secret: str


def rfc3339(epoch: float) -> str:
    """Milliseconds, truncated (so a stamp may read up to 1 ms before the moment it records)."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class OltBackend:
    def __init__(self, store: Store, clock: Clock, *, base_url: str = "",
                 publisher: Publisher | None = None,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
                 token_lifetime: float = TOKEN_LIFETIME,
                 install_timeout: float = INSTALL_TIMEOUT) -> None:
        self.store = store
        self.clock = clock
        self.base_url = base_url  # set once the HTTP server knows its port
        self.publisher = publisher
        self.new_id = new_id
        self.token_lifetime = token_lifetime
        self.install_timeout = install_timeout
        self._timers: dict[str, asyncio.TimerHandle] = {}  # installation id -> instruction timer
        self._deadlines: dict[str, asyncio.TimerHandle] = {}  # installation id -> install timeout
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def db(self) -> sqlite3.Connection:
        return self.store.db

    # -- lifecycle -------------------------------------------------------------------------------
    def resume(self) -> None:
        """After a (re)start: arm the timers of installations whose instruction is still due."""
        for installation in self.store.select("installations", "status = 'scheduled'"):
            if "instructedAt" not in installation:
                self._arm(installation)
        for installation in self.store.select("installations", "status = 'installing'"):
            self._arm_install_deadline(installation)  # a past one fires at once

    async def close(self) -> None:
        for timers in (self._timers, self._deadlines):
            for timer in timers.values():
                timer.cancel()
            timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        if self.publisher is None:
            log.info("no MQTT publisher: dropped %s %s", topic, payload)
            return
        timeline.exchange("olt", "mqtt", f"← PUBLISH {topic}", payload, json.dumps)
        await self.publisher.publish(topic, payload, qos=1)

    # -- tenants and tokens ------------------------------------------------------------------------
    def create_tenant(self, name: str) -> TenantCredentials:
        tenant_id = self.new_id()
        client_id, secret = f"tenant-{self.new_id()}", remember(secrets.token_hex(24))
        with self.db:
            self.store.add_tenant(tenant_id, name)
            self.store.add_client(client_id, _sha256(secret), tenant_id, None)
        return TenantCredentials(tenant_id, client_id, secret)

    def credentials_for(self, name: str) -> TenantCredentials:
        """Client credentials of the tenant called ``name``: a new client of the oldest such tenant
        (its secret is only stored hashed, so a kept database cannot give the old one back), or a
        new tenant. What ``serve olt`` prints, so that a restart on a kept state directory hands
        out credentials of the same tenant and its data."""
        row = self.db.execute("SELECT id FROM tenants WHERE name = ? ORDER BY rowid LIMIT 1",
                              (name,)).fetchone()
        if row is None:
            return self.create_tenant(name)
        client_id, secret = f"tenant-{self.new_id()}", remember(secrets.token_hex(24))
        with self.db:
            self.store.add_client(client_id, _sha256(secret), row[0], None)
        return TenantCredentials(row[0], client_id, secret)

    def register_tenant(self, body: Any) -> dict[str, str]:
        """``POST /v1/tenants`` (the operator's): a validated ``{"name"}`` → the tenant's id, name
        and client credentials."""
        schemas.validate(body, schemas.TENANT_CREATE, "tenant")
        created = self.create_tenant(body["name"])
        return {"id": created.tenant_id, "name": body["name"], "clientId": created.client_id,
                "clientSecret": created.client_secret}

    def issue_token(self, client_id: str, client_secret: str) -> dict[str, Any]:
        """OAuth 2.0 client credentials grant (RFC 6749 §4.4) → an access token response."""
        client = self.store.client(client_id)
        if client is None or not secrets.compare_digest(client[0], _sha256(client_secret)):
            raise Unauthorized("invalid client credentials", extra={"code": "invalid_client"})
        token = new_token()
        now = self.clock.epoch()
        with self.db:
            # Every grant is a row: without this the table kept every token ever issued. A token
            # is kept a lifetime past its expiry so that it is refused as expired, not unknown.
            self.store.forget_tokens_expired_before(now - self.token_lifetime)
            # A principal's live tokens are bounded as GitHub bounds an OAuth app's per user and
            # scope: past the bound the oldest is revoked, so a client granting in a loop holds
            # MAX_TOKENS_PER_PRINCIPAL rows, not grant rate x lifetime.
            self.store.keep_newest_tokens(client[1], client[2], MAX_TOKENS_PER_PRINCIPAL - 1)
            self.store.add_token(_sha256(token), client[1], client[2], now + self.token_lifetime)
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": int(self.token_lifetime)}

    def authenticate(self, token: str) -> Principal:
        found = self.store.token(_sha256(token))
        if found is None:
            raise Unauthorized("unknown bearer token", extra={"code": "invalid_token"})
        tenant_id, device_id, expires_at = found
        if self.clock.epoch() >= expires_at:
            raise Unauthorized("the bearer token has expired", extra={"code": "invalid_token"})
        return Principal(tenant_id, device_id)

    def create_device_credentials(self, who: Principal, device_id: str) -> dict[str, str]:
        self._tenant_only(who, "create device credentials")
        self.get_device(who, device_id)
        client_id, secret = f"device-{self.new_id()}", remember(secrets.token_hex(24))
        with self.db:
            self.store.add_client(client_id, _sha256(secret), who.tenant_id, device_id)
        return {"clientId": client_id, "clientSecret": secret, "deviceId": device_id}

    @staticmethod
    def _tenant_only(who: Principal, what: str) -> None:
        if who.device_id is not None:
            raise Forbidden(f"a device-scoped token cannot {what}",
                            extra={"code": "insufficient_scope"})

    def _devices_in_scope(self, who: Principal) -> set[str] | None:
        """The devices a device-scoped token covers (itself and those it connects), else None."""
        if who.device_id is None:
            return None
        rows = self.db.execute("SELECT id FROM devices WHERE tenant_id = ? AND gateway_id = ?",
                               (who.tenant_id, who.device_id)).fetchall()
        return {who.device_id, *(row[0] for row in rows)}

    def _insert_new(self, table: str, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """A new tenant document: the validated body plus id and createdAt."""
        document = {"id": self.new_id(), **body, "createdAt": rfc3339(self.clock.epoch())}
        with self.db:
            self.store.insert(table, document, who.tenant_id)
        return document

    def _page(self, table: str, who: Principal, page: int, page_size: int, **equal: Any) -> Page:
        items, total = self.store.page(table, who.tenant_id, page, page_size, **equal)
        return Page(items, page, page_size, total)

    # -- firmwares ---------------------------------------------------------------------------------
    def create_firmware(self, who: Principal, body: Any) -> dict[str, Any]:
        self._tenant_only(who, "create firmware")
        schemas.validate(body, schemas.FIRMWARE_CREATE, "firmware")
        return self._insert_new("firmwares", who, body)

    def list_firmwares(self, who: Principal, page: int, page_size: int) -> Page:
        self._tenant_only(who, "list firmware")
        return self._page("firmwares", who, page, page_size)

    def get_firmware(self, who: Principal, firmware_id: str) -> dict[str, Any]:
        firmware = self.store.get("firmwares", firmware_id, who.tenant_id)
        scope = self._devices_in_scope(who)
        if firmware is not None and scope is not None:
            # A gateway sees a firmware only while one of its devices is to install it.
            placeholders = ",".join("?" * len(scope))
            used = self.db.execute(
                f"SELECT 1 FROM installations WHERE firmware_id = ? AND device_id IN ({placeholders})"
                f" AND status IN ({ACTIVE_SQL})",
                (firmware_id, *scope)).fetchone()
            firmware = firmware if used else None
        if firmware is None:
            raise NotFound(f"firmware {firmware_id} not found")
        return firmware

    def check_attachable(self, who: Principal, firmware_id: str) -> dict[str, Any]:
        self._tenant_only(who, "attach a blob")
        firmware = self.get_firmware(who, firmware_id)
        if "blob" in firmware:
            raise Locked(f"firmware {firmware_id} already has its blob; create a new firmware "
                         "resource to publish other bytes")
        return firmware

    def attach_blob(self, who: Principal, firmware_id: str, data: bytes,
                    content_type: str) -> dict[str, Any]:
        """Attach the complete upload. Only this call locks the firmware: an upload that broke
        off never got here, so the firmware stays attachable."""
        with self.db:
            firmware = self.check_attachable(who, firmware_id)
            firmware["blob"] = {
                "size": len(data), "contentType": content_type,
                "hashes": {"sha256": hashlib.sha256(data).hexdigest(),
                           "sha1": hashlib.sha1(data).hexdigest(),
                           "md5": hashlib.md5(data).hexdigest()},
                "attachedAt": rfc3339(self.clock.epoch()),
            }
            firmware["links"] = {"download": BLOB_PATH.format(id=firmware_id)}
            self.store.put_blob(firmware_id, data)
            self.store.update("firmwares", firmware)
        return firmware

    def blob_reader(self, who: Principal, firmware_id: str) -> tuple[dict[str, Any], Callable[[int, int], bytes]]:
        firmware = self.get_firmware(who, firmware_id)
        if "blob" not in firmware:
            raise NotFound(f"firmware {firmware_id} has no blob attached yet")
        return firmware, lambda start, stop: self.store.read_blob(firmware_id, start, stop)

    def delete_firmware(self, who: Principal, firmware_id: str) -> None:
        """Deleting cancels the firmware's scheduled, downloading and downloaded installations
        (their gateways get a cancel instruction, then 410 on PATCH). While one is installing
        (writing into a device) the delete is refused with 409. Finished installations keep
        their record, naming a firmware that no longer exists."""
        self._tenant_only(who, "delete firmware")
        self.get_firmware(who, firmware_id)
        users = self.store.select("installations", "firmware_id = ? AND status IN "
                                  f"({ACTIVE_SQL})", (firmware_id,))
        busy = [i["id"] for i in users if i["status"] == "installing"]
        if busy:
            raise Conflict(f"firmware {firmware_id} is being installed by {', '.join(busy)}; "
                           "wait for the result or retry later")
        with self.db:
            for installation in users:
                self._cancel(installation, "firmware deleted")
            self.store.delete("firmwares", firmware_id)
            self.store.delete_blob(firmware_id)

    # -- device types and devices ---------------------------------------------------------------
    def create_device_type(self, who: Principal, body: Any) -> dict[str, Any]:
        self._tenant_only(who, "create device types")
        schemas.validate_device_type(body)
        return self._insert_new("device_types", who, body)

    def list_device_types(self, who: Principal, page: int, page_size: int) -> Page:
        self._tenant_only(who, "list device types")
        return self._page("device_types", who, page, page_size)

    def get_device_type(self, who: Principal, type_id: str) -> dict[str, Any]:
        device_type = self.store.get("device_types", type_id, who.tenant_id)
        if device_type is None:
            raise NotFound(f"device type {type_id} not found")
        return device_type

    def create_device(self, who: Principal, body: Any) -> dict[str, Any]:
        self._tenant_only(who, "create devices")
        schemas.validate(body, schemas.DEVICE_CREATE, "device")
        info = body["info"]
        device_type = self.get_device_type(who, info["deviceTypeId"])
        gateway_id = info.get("connectedBy")
        if gateway_id is not None:
            self.get_device(who, gateway_id)
        for section in olt.REPORT_TYPES:
            schemas.validate_report(device_type, section, body.get(section, {}), f"device {section}")
        now = rfc3339(self.clock.epoch())
        device = {"id": self.new_id(), "info": info, "configuration": body.get("configuration", {}),
                  "attributes": body.get("attributes", {}), "slots": {},
                  "createdAt": now, "updatedAt": now}
        with self.db:
            self.store.insert("devices", device, who.tenant_id, gateway_id=gateway_id)
        return device

    def list_devices(self, who: Principal, page: int, page_size: int) -> Page:
        scope = self._devices_in_scope(who)
        if scope is None:
            return self._page("devices", who, page, page_size)
        items = [self.get_device(who, device_id) for device_id in sorted(scope)]
        return Page(items[page * page_size:(page + 1) * page_size], page, page_size, len(items))

    def get_device(self, who: Principal, device_id: str) -> dict[str, Any]:
        device = self.store.get("devices", device_id, who.tenant_id)
        scope = self._devices_in_scope(who)
        if device is None or (scope is not None and device_id not in scope):
            raise NotFound(f"device {device_id} not found")
        return device

    def _type_of(self, tenant_id: str, device: dict[str, Any]) -> dict[str, Any]:
        return self.get_device_type(Principal(tenant_id), device["info"]["deviceTypeId"])

    async def update_device(self, who: Principal, device_id: str, body: Any) -> dict[str, Any]:
        """Rename/tag a device, or set configuration: validated, merged, and sent to the device
        on ``devices/{id}/configuration`` (it confirms by reporting its configuration)."""
        self._tenant_only(who, "change devices")
        schemas.validate(body, schemas.DEVICE_PATCH, "device change")
        device = self.get_device(who, device_id)
        configuration = body.get("configuration")
        if configuration is not None:
            schemas.validate_report(self._type_of(who.tenant_id, device), "configuration",
                                    configuration, "device configuration")
            device["desiredConfiguration"] = {**device.get("desiredConfiguration", {}), **configuration}
        device["info"] = {**device["info"], **body.get("info", {})}
        device["updatedAt"] = rfc3339(self.clock.epoch())
        with self.db:
            self.store.update("devices", device)
        if configuration is not None:
            await self._publish(olt.configuration_topic(device_id), configuration)
        return device

    def _device_anywhere(self, device_id: str) -> tuple[str, dict[str, Any]] | None:
        row = self.db.execute("SELECT tenant_id, doc FROM devices WHERE id = ?", (device_id,)).fetchone()
        if row is None:
            return None
        return row[0], json.loads(row[1])

    # -- device → cloud: reports and events -------------------------------------------------------
    async def ingest_report(self, device_id: str, kind: str, value: dict[str, Any]) -> bool:
        """A report from ``data-ingest``: validated against the type's fragments as a whole. An
        unknown field or a violation rejects the whole report: nothing is stored, the device
        records ``lastRejectedReport`` and an error goes to ``devices/{id}/errors``."""
        found = self._device_anywhere(device_id)
        if found is None:
            log.info("report for unknown device %s dropped", device_id)
            return False
        tenant_id, device = found
        now = self.clock.epoch()
        device_type = self._type_of(tenant_id, device)
        try:
            schemas.validate_report(device_type, kind, value, f"{kind} report")
        except InvalidDocument as exc:
            device["lastRejectedReport"] = {"type": kind, "detail": exc.detail, "at": rfc3339(now)}
            with self.db:
                self.store.update("devices", device)
            await self._publish(olt.errors_topic(device_id), {"type": kind, "detail": exc.detail})
            return False
        device[kind] = {**device[kind], **value}
        device["updatedAt"] = rfc3339(now)
        with self.db:
            self.store.update("devices", device)
            for rule in device_type.get("reportingRules", []):
                present, reported = _at_path(value, rule["path"], kind)
                if present and "timeseries" in rule["reportTo"]:
                    self.store.add_point(device_id, rule["path"], now, reported)
        return True

    async def ingest_event(self, message: dict[str, Any]) -> bool:
        found = self._device_anywhere(message["deviceId"])
        if found is None:
            log.info("event for unknown device %s dropped", message["deviceId"])
            return False
        tenant_id, device = found
        payload = message.get("payload", {})
        try:
            schemas.validate_named_payload(self._type_of(tenant_id, device), "events",
                                           message["event"], payload, "event")
        except InvalidDocument as exc:
            await self._publish(olt.errors_topic(device["id"]), {"type": "event", "detail": exc.detail})
            return False
        event = {"id": self.new_id(), "deviceId": device["id"], "event": message["event"],
                 "payload": payload, "time": rfc3339(self.clock.epoch())}
        with self.db:
            action = self.store.get("actions", message.get("actionId", ""), tenant_id)
            if action is not None and action["deviceId"] == device["id"]:
                event["actionId"] = action["id"]
                action.update(status="answered", answeredBy=event["id"])
                self.store.update("actions", action)
            self.store.insert("events", event, tenant_id, device_id=device["id"])
        return True

    def list_events(self, who: Principal, device_id: str, page: int, page_size: int) -> Page:
        self.get_device(who, device_id)
        return self._page("events", who, page, page_size, device_id=device_id)

    def timeseries(self, who: Principal, device_id: str, path: str, start: float, end: float,
                   page: int, page_size: int) -> Page:
        self.get_device(who, device_id)
        points, total = self.store.points(device_id, path, start, end, page, page_size)
        return Page([{"time": rfc3339(time), "value": value} for time, value in points],
                    page, page_size, total)

    # -- cloud → device: actions -------------------------------------------------------------------
    async def create_action(self, who: Principal, device_id: str, body: Any) -> dict[str, Any]:
        self._tenant_only(who, "send actions")
        schemas.validate(body, schemas.ACTION_CREATE, "action")
        device = self.get_device(who, device_id)
        payload = body.get("payload", {})
        schemas.validate_named_payload(self._type_of(who.tenant_id, device), "actions",
                                       body["action"], payload, "action payload")
        action = {"id": self.new_id(), "deviceId": device_id, "action": body["action"],
                  "payload": payload, "description": body.get("description", ""),
                  "status": "sent", "createdAt": rfc3339(self.clock.epoch())}
        with self.db:
            self.store.insert("actions", action, who.tenant_id, device_id=device_id)
        await self._publish(olt.actions_topic(device_id),
                            {"actionId": action["id"], "action": action["action"], "payload": payload})
        return action

    def get_action(self, who: Principal, device_id: str, action_id: str) -> dict[str, Any]:
        self.get_device(who, device_id)
        action = self.store.get("actions", action_id, who.tenant_id)
        if action is None or action["deviceId"] != device_id:
            raise NotFound(f"action {action_id} not found")
        return action

    # -- firmware installations -------------------------------------------------------------------
    async def create_installation(self, who: Principal, device_id: str, body: Any) -> dict[str, Any]:
        self._tenant_only(who, "install firmware")
        schemas.validate(body, schemas.INSTALLATION_CREATE, "firmware installation")
        device = self.get_device(who, device_id)
        firmware = self.get_firmware(who, body["firmwareId"])
        slot = body["slot"]
        declared = self._type_of(who.tenant_id, device).get("slots", {})
        if slot not in declared:
            raise InvalidDocument(f"the device type declares no {slot} slot",
                                  extra={"pointer": "/slot"})
        if "blob" not in firmware:
            raise Conflict(f"firmware {firmware['id']} has no blob attached yet")
        if firmware.get("kind", slot) != slot:
            raise InvalidDocument(f"firmware {firmware['id']} is a {firmware['kind']} image, "
                                  f"not for the {slot} slot", extra={"pointer": "/slot"})
        max_size = declared[slot].get("maxSize")
        if max_size is not None and firmware["blob"]["size"] > max_size:
            raise InvalidDocument(f"the {slot} slot holds at most {max_size} bytes, the firmware "
                                  f"has {firmware['blob']['size']}", extra={"pointer": "/firmwareId"})
        active = self.store.select("installations", "device_id = ? AND slot = ? AND status IN "
                                   f"({ACTIVE_SQL})", (device_id, slot))
        if active:
            raise Conflict(f"installation {active[0]['id']} into the {slot} slot of device "
                           f"{device_id} is still {active[0]['status']}; cancel it first")
        now = self.clock.epoch()
        installation = {"id": self.new_id(), "deviceId": device_id, "firmwareId": firmware["id"],
                        "slot": slot, "status": "scheduled", "details": [],
                        "createdAt": rfc3339(now), "updatedAt": rfc3339(now),
                        "history": [{"status": "scheduled", "at": rfc3339(now)}]}
        for option in ("schedule", "maintenanceWindow"):
            if option in body:
                installation[option] = body[option]
        with self.db:
            self.store.insert("installations", installation, who.tenant_id, device_id=device_id,
                              firmware_id=firmware["id"], slot=slot, status="scheduled")
        if self._start_at(installation) <= now:
            return await self._instruct(who.tenant_id, installation["id"]) or installation
        self._arm(installation)
        return installation

    @staticmethod
    def _start_at(installation: dict[str, Any]) -> float:
        schedule = installation.get("schedule")
        return parse_rfc3339(schedule["startAt"]) if schedule else float("-inf")

    def _arm(self, installation: dict[str, Any]) -> None:
        delay = max(0.0, self._start_at(installation) - self.clock.epoch())
        tenant_id = self.db.execute("SELECT tenant_id FROM installations WHERE id = ?",
                                    (installation["id"],)).fetchone()[0]
        self._timers[installation["id"]] = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._instruct(tenant_id, installation["id"])))

    async def _instruct(self, tenant_id: str, installation_id: str) -> dict[str, Any] | None:
        """Send the installation instruction to the device's topic (its gateway listens there);
        the installation as it was when sent (None if it is no longer waiting)."""
        self._timers.pop(installation_id, None)
        installation = self.store.get("installations", installation_id, tenant_id)
        if installation is None or installation["status"] != "scheduled":
            return None
        if self._start_at(installation) > self.clock.epoch():
            self._arm(installation)  # a loop timer may fire a hair early against the epoch clock
            return None
        firmware = self.store.get("firmwares", installation["firmwareId"], tenant_id)
        assert firmware is not None  # deleting a firmware cancels its scheduled installations
        installation["instructedAt"] = rfc3339(self.clock.epoch())
        with self.db:
            self.store.update("installations", installation)
        await self._publish(olt.installations_topic(installation["deviceId"]),
                            self.instruction(installation, firmware))
        return installation

    def instruction(self, installation: dict[str, Any], firmware: dict[str, Any]) -> dict[str, Any]:
        message = {
            "operation": "install", "installationId": installation["id"],
            "deviceId": installation["deviceId"], "slot": installation["slot"],
            "firmware": {"id": firmware["id"], "name": firmware["name"],
                         "version": firmware["version"], "size": firmware["blob"]["size"],
                         "hashes": firmware["blob"]["hashes"],
                         "download": self.base_url + firmware["links"]["download"]},
        }
        if "maintenanceWindow" in installation:
            message["maintenanceWindow"] = installation["maintenanceWindow"]
        return message

    def list_installations(self, who: Principal, device_id: str, page: int, page_size: int,
                           status: str | None = None) -> Page:
        self.get_device(who, device_id)
        filters = {"status": status} if status else {}
        return self._page("installations", who, page, page_size, device_id=device_id, **filters)

    def get_installation(self, who: Principal, device_id: str, installation_id: str) -> dict[str, Any]:
        self.get_device(who, device_id)
        installation = self.store.get("installations", installation_id, who.tenant_id)
        if installation is None or installation["deviceId"] != device_id:
            raise NotFound(f"firmware installation {installation_id} not found")
        return installation

    def report_installation(self, who: Principal, device_id: str, installation_id: str,
                            body: Any) -> dict[str, Any]:
        """A gateway's (or device's, or analytics') status report: PATCH."""
        schemas.validate(body, schemas.INSTALLATION_PATCH, "installation status")
        with self.db:
            installation = self.get_installation(who, device_id, installation_id)
            current, wanted = installation["status"], body["status"]
            if current in TERMINAL:
                raise Gone(f"installation {installation_id} is {current}; it takes no more reports",
                           extra={"currentStatus": current})
            if wanted not in TRANSITIONS[current]:
                raise Conflict(f"installation {installation_id}: {current} → {wanted} is not a "
                               "valid transition", extra={"currentStatus": current})
            if current == "scheduled" and "instructedAt" not in installation:
                raise Conflict(f"installation {installation_id} has not been instructed yet "
                               "(its schedule starts later)", extra={"currentStatus": current})
            now = self.clock.epoch()
            if wanted == "installing" and current != "installing" and olt.seconds_until_window(
                    now, installation.get("maintenanceWindow")):
                raise Conflict(f"installation {installation_id}: outside its maintenance window",
                               extra={"currentStatus": current})
            self._transition(installation, wanted, now, body.get("details", []))
            if "progress" in body:
                installation["progress"] = body["progress"]
            self.store.update("installations", installation, status=wanted)
            if wanted == "succeeded":
                self._record_installed(who.tenant_id, installation)
        if wanted == "installing":
            self._arm_install_deadline(installation)  # each report moves it
        else:
            self._disarm_install_deadline(installation["id"])
        return installation

    def _install_deadline(self, installation: dict[str, Any]) -> float:
        return parse_rfc3339(installation["updatedAt"]) + self.install_timeout

    def _arm_install_deadline(self, installation: dict[str, Any]) -> None:
        self._disarm_install_deadline(installation["id"])
        delay = max(0.0, self._install_deadline(installation) - self.clock.epoch())
        self._deadlines[installation["id"]] = asyncio.get_running_loop().call_later(
            delay, self._install_timed_out, installation["id"])

    def _disarm_install_deadline(self, installation_id: str) -> None:
        timer = self._deadlines.pop(installation_id, None)
        if timer is not None:
            timer.cancel()

    def _install_timed_out(self, installation_id: str) -> None:
        """Fail an installation still installing with no report since its deadline."""
        self._deadlines.pop(installation_id, None)
        with self.db:
            found = self.store.select("installations", "id = ?", (installation_id,))
            installation = found[0] if found else None
            if installation is None or installation["status"] != "installing":
                return
            if self._install_deadline(installation) > self.clock.epoch():
                self._arm_install_deadline(installation)  # a timer may fire a hair early
                return
            reason = (f"no report for {self.install_timeout:g} s while installing: "
                      "the device or its gateway is gone")
            self._transition(installation, "failed", self.clock.epoch(), [reason])
            self.store.update("installations", installation, status="failed")

    @staticmethod
    def _transition(installation: dict[str, Any], status: str, now: float, details: list[str]) -> None:
        if status != installation["status"]:
            entry: dict[str, Any] = {"status": status, "at": rfc3339(now)}
            if details:
                entry["details"] = details
            installation["history"].append(entry)
            installation.pop("progress", None)
        installation["status"] = status
        installation["details"] = details or installation["details"]
        installation["updatedAt"] = rfc3339(now)

    def _record_installed(self, tenant_id: str, installation: dict[str, Any]) -> None:
        device = self.store.get("devices", installation["deviceId"], tenant_id)
        firmware = self.store.get("firmwares", installation["firmwareId"], tenant_id)
        assert device is not None and firmware is not None  # installing blocks their deletion
        device["slots"][installation["slot"]] = {
            "firmwareId": firmware["id"], "version": firmware["version"],
            "installationId": installation["id"], "installedAt": installation["updatedAt"]}
        self.store.update("devices", device)

    async def cancel_installation(self, who: Principal, device_id: str,
                                  installation_id: str) -> dict[str, Any]:
        self._tenant_only(who, "cancel installations")
        with self.db:
            installation = self.get_installation(who, device_id, installation_id)
            status = installation["status"]
            if status in TERMINAL:
                raise Gone(f"installation {installation_id} is already {status}",
                           extra={"currentStatus": status})
            if status not in CANCELABLE:
                raise Conflict(f"installation {installation_id} is {status}: the device is being "
                               "written, wait for the result", extra={"currentStatus": status})
            self._cancel(installation, "canceled by the tenant")
        return installation

    def _cancel(self, installation: dict[str, Any], reason: str) -> None:
        """Inside the caller's transaction: mark canceled, drop the timer, tell the gateway."""
        instructed = "instructedAt" in installation
        self._transition(installation, "canceled", self.clock.epoch(), [reason])
        self.store.update("installations", installation, status="canceled")
        timer = self._timers.pop(installation["id"], None)
        if timer is not None:
            timer.cancel()
        if instructed:
            self._spawn(self._publish(olt.installations_topic(installation["deviceId"]), {
                "operation": "cancel", "installationId": installation["id"],
                "deviceId": installation["deviceId"], "reason": reason}))


def _at_path(value: dict[str, Any], path: str, kind: str) -> tuple[bool, Any]:
    """(True, the value) a ``$.kind.a.b`` reporting path names in a report, else (False, None)."""
    _, section, *keys = path.split(".")
    if section != kind:
        return False, None
    node: Any = value
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


__all__ = ["ACTIVE", "INSTALL_TIMEOUT", "TERMINAL", "TRANSITIONS", "OltBackend", "Page", "Principal", "Publisher",
           "TenantCredentials", "rfc3339"]
