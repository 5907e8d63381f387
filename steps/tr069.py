"""TR-069 firmware upgrades (seed 002, Splynx "Files and upgrades" on a GenieACS-like ACS): the
operator's Files, Groups, Upgrades and Devices pages, MikroTik routers and TR-098 gateways, and
what the ACS and the routers did.

The back end is the flow's service (`runtime.service("tr069")`: the ACS, its file server and
its admin API). Operator actions go through the admin API, as the Splynx pages would; checks
read the ACS's store and the routers' state in process, so they also work inside `soon`.
Routers are `otaharness.emulators.cpe.Cpe` instances registered in `runtime.devices`, each dialling the
ACS and the file server from its own address through the runtime's link proxies (so
`the link between "cpe3" and the ACS endpoint is refused` applies), and sharing one
Connection Request listener.
"""

import datetime as dt
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
from behave import given, then, when

from otaharness.emulators.cpe.connection_request import ConnectionRequestServer
from otaharness.emulators.cpe.device import Cpe
from otaharness.emulators.cpe.quirks import Quirks
from otaharness.fixtures import fixture_path
from otaharness.bdd.support import ota, start_flow
from otaharness.protocols.cwmp import DownloadResponse, Fault, Inform, TransferComplete, parse_envelope
from otaharness.servers.tr069 import device_id_of
from otaharness.servers.tr069.acs import nc_reuse_problem
from otaharness.runtime.pki import client_context
from otaharness.units import parse_duration, parse_size

BOOT_LIMIT = 600.0  # scenario seconds a router gets to finish its first session
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FILE_TYPES = {  # the Files page's Type choices (seed 002) -> CWMP FileType
    "1": "1 Firmware Upgrade Image", "2": "2 Web Content", "3": "3 Vendor Configuration File",
    "4": "4 Tone File", "5": "5 Ringer File", "X": "X MIKROTIK Factory Configuration File"}
# Batch form fields as the Upgrades page labels them -> admin API fields.
BATCH_FIELDS = {"group": "group", "original version": "original_version", "file": "file",
                "new version": "new_version", "days": "days", "hours": "hours", "event": "event",
                "max number of attempts": "max_attempts",
                "max devices per day": "max_devices_per_day", "time zone": "timezone"}
SEED_FILE_SERVER = "https://splynx_domain:7567"  # the seed's XML names the operator's server
_NAMES = re.compile(r'"([^"]+)"')
_NAME_RANGE = re.compile(r"^(?P<prefix>\D*)(?P<number>\d+)$")


@dataclass
class _Flow:
    """What the scenario's operator and field hold: routers, the operator's own copies of
    files (workspace), batches by name."""

    workspace: Path
    routers: dict[str, Cpe] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)
    listener: ConnectionRequestServer | None = None
    server: object = None  # the flow's back end once started (an AcsServer)
    # What each router put on the wire (parsed RPC bodies, latest last): Then-steps judge the
    # router's side from these, not from the ACS's account of what it received.
    sent: dict[str, deque] = field(default_factory=dict)


SENT_KEPT = 512  # RPC bodies kept per router (a long scenario must not grow without bound)
# The Faults this CPE answers a Download with (emulators/cpe/device.py `_rpc_Download`).
DOWNLOAD_REFUSALS = ((9013, "Unsupported protocol"), (9003, "unsupported FileType"))


def _flow(context) -> _Flow:
    if not hasattr(context, "tr069_flow"):
        context.tr069_flow = _Flow(ota(context).artifacts / "tr069-operator")
    return context.tr069_flow


def _server(context):
    """The ACS (started on first use); its URLs become `${endpoint.acs|files|admin}`."""
    flow = _flow(context)
    if flow.server is None:
        flow.server = start_flow(context, "tr069")
    return flow.server


def _admin(context, method: str, path: str, *, expect: tuple[int, ...] = (200, 201, 202),
           **request) -> object:
    """Call the ACS's admin API; returns the JSON answer (a status outside `expect` fails)."""
    server = _server(context)
    url = server.endpoints()["admin"] + path
    token = ota(context).token_for("admin")
    request.setdefault("headers", {}).setdefault("Authorization", f"Bearer {token}")
    ca_file = server.endpoints().get("ca")
    tls = client_context(ca_file) if url.startswith("https:") else None

    async def call():
        async with aiohttp.ClientSession() as http:
            async with http.request(method, url, ssl=tls or True, **request) as response:
                answer = await response.json()
                assert response.status in expect, \
                    f"{method} {path}: HTTP {response.status}: {answer}"
                return answer

    return ota(context).run(call())


def _names(text: str) -> list[str]:
    """`"cpe1", "cpe2" and "cpe3"` or `"cpe1" to "cpe10"` -> the names."""
    names = _NAMES.findall(text)
    if " to " in text and len(names) == 2:
        first, last = (_NAME_RANGE.match(n) for n in names)
        if first is None or last is None or first["prefix"] != last["prefix"]:
            raise ValueError(f'a range needs names like "cpe1" to "cpe10", not {text!r}')
        return [f"{first['prefix']}{n}" for n in range(int(first["number"]),
                                                      int(last["number"]) + 1)]
    if not names:
        raise ValueError(f'name devices in double quotes, e.g. "cpe1" and "cpe2": {text!r}')
    return names


def _router(context, name: str) -> Cpe:
    try:
        return _flow(context).routers[name]
    except KeyError:
        raise KeyError(f"no router {name!r} was switched on") from None


def _device_id(context, name: str) -> str:
    ident = _router(context, name).device_id
    return device_id_of(ident.oui, ident.product_class, ident.serial_number)


def _batch_id(context, batch: str) -> int:
    try:
        return _flow(context).batches[batch]
    except KeyError:
        raise KeyError(f"no batch {batch!r} was added") from None


def _entry(context, batch: str, name: str) -> dict:
    entry = _server(context).store.batch_device(_batch_id(context, batch), _device_id(context, name))
    assert entry is not None, f"{name} is not in the devices for upgrade of batch {batch!r}"
    return entry


def _events(context, name: str, kind: str) -> list[dict]:
    return [e for e in _server(context).store.events(_device_id(context, name)) if e["kind"] == kind]


def _history(context, name: str) -> str:
    """The ACS's latest log lines for a device, for failure messages."""
    events = _server(context).store.events(_device_id(context, name))[-10:]
    start = _server(context).clock.epoch()
    return "; ".join(f"{e['kind']} {e['detail']} ({e['time'] - start:+.0f} s)" for e in events)


def _switch_on(context, names: list[str], profile: str, *, interval: str | None = None,
               quirks: Quirks = Quirks(), ca_file: str | None = None,
               credentials: tuple[str, str] | None = None, wait: bool = True) -> None:
    """Switch routers on; they trust the ACS's CA (``ca_file`` overrides it), carry the
    credentials the ACS asks for (``credentials`` overrides them) and, ``wait``, the step waits
    until the ACS has registered each."""
    runtime, flow = ota(context), _flow(context)
    endpoints = _server(context).endpoints()
    acs_url = endpoints["acs"]
    keylog = runtime.pki().keylog if "ca" in endpoints else None
    if credentials is None:  # provisioned as the operator's ACS expects (first user, if any)
        config = _server(context).acs.config
        credentials = next(iter(config.users.items()), ("", "")) \
            if config.auth_mode != "none" else ("", "")
    if flow.listener is None:
        flow.listener = ConnectionRequestServer()
        runtime.run(flow.listener.start())
        runtime.add_cleanup(lambda: _stop_routers(flow))
    started = []
    for name in names:
        if name in flow.routers:
            raise ValueError(f"router {name!r} is already switched on")
        cpe = Cpe(name.upper(), acs_url=acs_url, clock=runtime.clock, rng=runtime.rng(f"cpe-{name}"),
                  profile=profile, connection_requests=flow.listener,
                  bind_address=runtime.address_of(name), link=runtime.link, quirks=quirks,
                  periodic_interval=parse_duration(interval) if interval else None,
                  ca_file=ca_file or endpoints.get("ca"),
                  username=credentials[0], password=credentials[1],
                  tls_keylog=str(keylog) if keylog else None,
                  trace=_wire_recorder(flow.sent.setdefault(name, deque(maxlen=SENT_KEPT))))
        flow.routers[name] = runtime.devices[name] = cpe
        runtime.run(cpe.start())
        started.append(cpe)
    if not wait:
        return
    # Switched on = registered with the ACS (its first session, 0 BOOTSTRAP + 1 BOOT, is done).
    assert runtime.run_until(lambda: all(c.sessions_completed for c in started),
                             timeout=BOOT_LIMIT), \
        "not every router finished its first session: " + ", ".join(
            f"{c.serial_number}: {c.last_session_error or 'no session'}"
            for c in started if not c.sessions_completed)


def _wire_recorder(sent: deque):
    """The CPE's trace hook: every message it emits, as the bytes on the wire, parsed back."""
    def record(_side: str, data: bytes) -> None:
        sent.append(parse_envelope(data).body)
    return record


def _sent_by(context, name: str, kind: type) -> list:
    """RPC bodies of this kind the router put on the wire, oldest first."""
    _router(context, name)
    return [body for body in _flow(context).sent[name] if isinstance(body, kind)]


async def _stop_routers(flow: _Flow) -> None:
    for cpe in flow.routers.values():
        await cpe.stop()
    if flow.listener is not None:
        await flow.listener.stop()


# -- routers in the field -------------------------------------------------------------------------


@given('the MikroTik CHR router "{name}" that reports firmware as installed but keeps its '
       'version is switched on')
def router_keeping_its_version(context, name):
    """A router that downloads, reboots and reports TransferComplete success without changing
    its version (GenieACS issue #162; what both public CPE simulators do)."""
    _switch_on(context, [name], "mikrotik", quirks=Quirks(keep_version=True))


@given('the MikroTik CHR routers {names} are switched on, informing every {interval}')
def routers_switched_on_informing(context, names, interval):
    """Like `... are switched on`, with another periodic inform interval, e.g. `informing every
    4 hours`."""
    _switch_on(context, _names(names), "mikrotik", interval=interval)


@given('the MikroTik CHR routers {names} are switched on')
def routers_switched_on(context, names):
    """Switch on emulated MikroTik RouterOS CHRs (TR-181, OUI E48D8C, product class CHR,
    RouterOS and tr069-client 6.48, informing every hour) and wait until the ACS has registered
    them, e.g. `"cpe1" and "cpe2"` or `"cpe1" to "cpe10"`."""
    _switch_on(context, _names(names), "mikrotik")


@given('the MikroTik CHR router "{name}" is switched on')
def router_switched_on(context, name):
    """Switch on one emulated MikroTik RouterOS CHR (as `the MikroTik CHR routers ... are
    switched on`) and wait until the ACS has registered it."""
    _switch_on(context, [name], "mikrotik")


@given('the TR-098 gateway "{name}" is switched on')
def gateway_switched_on(context, name):
    """Switch on an emulated TR-098 gateway (OUI 00D09E, product class EX-1000, one firmware
    image, version 1.0.0) and wait until the ACS has registered it."""
    _switch_on(context, [name], "generic")


@given('the MikroTik CHR router "{name}" is switched on with credentials "{user}" / "{password}"')
def router_with_credentials(context, name, user, password):
    """A router whose ManagementServer.Username/Password are set (Basic or Digest, as the ACS
    asks), switched on and registered."""
    _switch_on(context, [name], "mikrotik", credentials=(user, password))


@when('the MikroTik CHR router "{name}" that repeats its Digest nonce count as cwmp-sim does is '
      'switched on with credentials "{user}" / "{password}"')
@given('the MikroTik CHR router "{name}" that repeats its Digest nonce count as cwmp-sim does is '
       'switched on with credentials "{user}" / "{password}"')
def router_repeating_nonce_count(context, name, user, password):
    """A router answering Digest as cwmp-sim does (fact sheet §8): `nc=00000001` every time and
    the same nonce until told it is stale. The step does not wait for its first session: an ACS
    that checks nonce counts refuses it (`router "..." finished its first session` waits)."""
    _switch_on(context, [name], "mikrotik", quirks=Quirks(fixed_nonce_count=True),
               credentials=(user, password), wait=False)


@when('the MikroTik CHR router "{name}" that trusts only an unrelated CA is switched on')
@given('the MikroTik CHR router "{name}" that trusts only an unrelated CA is switched on')
def router_trusting_another_ca(context, name):
    """A router whose CA file holds only a CA unrelated to the ACS's certificate. The step does
    not wait for a session: the router refuses the ACS."""
    _switch_on(context, [name], "mikrotik", ca_file=_unrelated_ca(context), wait=False)


@given('the MikroTik CHR router "{name}" that does not check the ACS certificate and trusts only '
       'an unrelated CA is switched on')
def router_not_checking_certificates(context, name):
    """A router that believes any HTTPS certificate (the `skip_certificate_check` quirk, as many
    CPEs in the field): its CA file does not matter. Switched on and registered."""
    _switch_on(context, [name], "mikrotik", ca_file=_unrelated_ca(context),
               quirks=Quirks(skip_certificate_check=True))


def _unrelated_ca(context) -> str:
    pki = ota(context).pki()
    return str(pki.write("unrelated-ca.pem", pki.rogue_ca.certificate_pem))


@then('router "{name}" finished its first session')
def router_finished_a_session(context, name):
    """The router completed a CWMP session with the ACS (Inform to the closing 204)."""
    cpe = _router(context, name)
    assert cpe.sessions_completed, f"{name} finished no session: {cpe.last_session_error}"


@then('router "{name}" finished no session, the last one failing with `{reason}`')
def router_failed_sessions(context, name, reason):
    """No session of the router completed, and the reason the router itself gives for the last
    failure contains `reason` (e.g. `certificate verify failed`, `HTTP 401`)."""
    cpe = _router(context, name)
    assert not cpe.sessions_completed, f"{name} finished {cpe.sessions_completed} sessions"
    assert reason in cpe.last_session_error, f"{name}'s last session: {cpe.last_session_error!r}"


@then('the ACS has not registered "{name}"')
def acs_has_not_registered(context, name):
    """The ACS holds no device record for the router (it never accepted an Inform from it)."""
    assert _server(context).store.device(_device_id(context, name)) is None, \
        f"the ACS registered {name}: {_history(context, name)}"


@then('the ACS has registered "{name}"')
def acs_has_registered(context, name):
    """The ACS holds a device record for the router."""
    assert _server(context).store.device(_device_id(context, name)) is not None, \
        f"the ACS does not know {name}"


@then('router "{name}" runs RouterOS {version}')
def router_runs(context, name, version):
    """The router's RouterOS and tr069-client packages are both at `version`, and so is its
    DeviceInfo.SoftwareVersion."""
    cpe = _router(context, name)
    packages = {package: installed for package, installed in cpe.nv.packages.items()
                if installed != version}
    assert cpe.software_version == version and not packages, \
        f"{name} runs {cpe.software_version} (packages {cpe.nv.packages}); ACS log: " \
        f"{_history(context, name)}"


@then('router "{name}" still runs RouterOS {version}')
def router_still_runs(context, name, version):
    """Nothing was installed: the router is still at `version`."""
    router_runs(context, name, version)


@then('router "{name}" has the system identity "{identity}"')
def router_identity(context, name, identity):
    """RouterOS `/system identity` (TR-181 DeviceInfo.X_MIKROTIK_SystemIdentity)."""
    actual = _router(context, name).model.get("DeviceInfo.X_MIKROTIK_SystemIdentity")
    assert actual == identity, f"{name} is called {actual!r}"


@then('router "{name}" informs every {interval}')
def router_interval(context, name, interval):
    """ManagementServer.PeriodicInformInterval on the router."""
    actual = float(_router(context, name).model.get("ManagementServer.PeriodicInformInterval"))
    assert actual == parse_duration(interval), f"{name} informs every {actual:g} s"


@then('router "{name}" ran the script on its configuration instead of replacing it')
def router_ran_script(context, name):
    """A `.alter` vendor configuration file is run on the existing configuration (MikroTik);
    any other name would have replaced the whole configuration."""
    cpe = _router(context, name)
    assert cpe.nv.scripts_applied, f"{name} ran no configuration script"
    assert cpe.nv.configuration == "", f"{name} replaced its configuration"


# -- STEP 1 and 2: Files ------------------------------------------------------------------------


@given('the operator writes the upgrade file "{file}" linking {packages} on the ACS file server')
def write_upgrade_xml(context, file, packages):
    """STEP 2: the MikroTik `<upgrade version="1" type="links">` XML naming the packages, at the
    URLs of the ACS's file server (the seed's `https://splynx_domain:7567/...`)."""
    files_url = _server(context).acs.config.files_url or _server(context).endpoints()["files"]
    links = "".join(f"\n       <link>\n          <url>{files_url}/{quote(p)}</url>\n       </link>"
                    for p in _names(packages))
    text = (f'<upgrade version="1" type="links">\n   <config/>\n   <links>{links}\n   </links>\n'
            "</upgrade>\n")
    _write(context, file, text.encode())


@given('a corrupted copy of "{file}"')
def corrupted_copy(context, file):
    """The operator's copy of a file, damaged in the middle (a broken download from
    mikrotik.com): a router that installs it finds the package checksum wrong."""
    content = bytearray(_content(context, file))
    content[len(content) // 2] ^= 0xFF
    _write(context, file, bytes(content))


@given('the operator\'s file "{file}" is {size} of random bytes')
def sized_file(context, file, size):
    """The operator's own copy of a file, this many bytes (`4 MiB`, `700 bytes`) drawn from the
    scenario's seed: upload it with `the operator uploads these files` (type `2` Web Content or
    an `X` type: a router keeps it as it is)."""
    _write(context, file, ota(context).rng(f"operator-file:{file}").randbytes(parse_size(size)))


def _write(context, file: str, content: bytes) -> None:
    path = _flow(context).workspace / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _content(context, file: str) -> bytes:
    """The operator's own copy if written in this scenario, else the fixture
    (fixtures/tr069: the 6.48.4 packages, the seed's XML, set-identity.alter)."""
    own = _flow(context).workspace / file
    if own.is_file():
        return own.read_bytes()
    fixture = fixture_path("tr069", file)
    if not fixture.is_file():
        raise FileNotFoundError(f"no file {file!r} (neither written here nor in fixtures/tr069)")
    content = fixture.read_bytes()
    if file.endswith(".xml"):  # the seed's XML points at the operator's own server
        content = content.replace(SEED_FILE_SERVER.encode(),
                                  _server(context).endpoints()["files"].encode())
    return content


@given('the operator uploads these files')
@when('the operator uploads these files')
def upload_files(context):
    """STEP 1: `Upload` on Networking → TR-069 (ACS) → Files, one row per file, columns `file`,
    `type` (`1` … `5`, `X` or the full FileType), `OUI`, `product class`, `version`."""
    for row in context.table:
        file_type = row["type"].strip()
        _upload(context, row["file"], FILE_TYPES.get(file_type.split(" ", 1)[0], file_type),
                oui=row.get("OUI", ""), product_class=row.get("product class", ""),
                version=row.get("version", ""))


@when('the operator uploads "{file}" again')
def upload_again(context, file):
    """Upload a file under the same name with the same type, OUI, product class and version
    (the fixed copy replaces the stored one)."""
    record = _admin(context, "GET", f"/files/{quote(file, safe='')}")
    own = _flow(context).workspace / file
    own.unlink(missing_ok=True)  # the operator downloads it again: the good copy
    _upload(context, file, record["file_type"], oui=record["oui"],
            product_class=record["product_class"], version=record["version"])


def _upload(context, file: str, file_type: str, *, oui: str, product_class: str,
            version: str) -> None:
    _admin(context, "PUT", f"/files/{quote(file, safe='')}", data=_content(context, file),
           headers={"fileType": file_type, "oui": oui, "productClass": product_class,
                    "version": version})


@when('the operator deletes the file "{file}"')
@given('the operator deletes the file "{file}"')
def delete_file(context, file):
    """Remove a file from the Files page (its download URL then answers 404)."""
    _admin(context, "DELETE", f"/files/{quote(file, safe='')}")


@then('the Files page lists {files} for group "{group}"')
def files_for_group(context, files, group):
    """The files offered for a group's batch: those whose OUI and product class fit one of its
    devices (empty = any), exactly these."""
    listed = sorted(f["name"] for f in _admin(context, "GET", f"/files?group={quote(group)}"))
    assert listed == sorted(_names(files)), f"the Files page lists {listed}"


@given('the file server requires the user "{user}" with password "{password}"')
def file_server_credentials(context, user, password):
    """The file server demands HTTP credentials (Basic or Digest) from routers."""
    _server(context).set_file_auth("any", {user: password})


@given('the ACS asks routers for Digest credentials "{user}" with password "{password}"')
def acs_digest_credentials(context, user, password):
    """The ACS answers CPEs with a Digest challenge and accepts only these credentials (before
    any router is switched on)."""
    _server(context).set_cpe_auth("digest", {user: password})


@given('the ACS lets routers whose serial number matches "{pattern}" repeat a Digest nonce count')
def acs_nonce_count_allowance(context, pattern):
    """The per-device allowance for clients like cwmp-sim (`nc_reuse_devices`, serial number
    pattern with `*` and `?`); every other device must count up."""
    problem = nc_reuse_problem(f"serial:{pattern}")
    assert problem is None, problem
    config = _server(context).acs.config
    config.nc_reuse_devices = (*config.nc_reuse_devices, f"serial:{pattern}")


@given('the ACS gives routers the file server credentials "{user}" with password "{password}"')
def download_credentials(context, user, password):
    """The Username and Password the ACS puts into each Download RPC."""
    config = _server(context).acs.config
    config.download_username, config.download_password = user, password


# -- STEP 3: groups and upgrade batches ---------------------------------------------------------


@given('the operator creates the group "{group}" for OUI "{oui}" and product class "{product_class}"')
def create_group(context, group, oui, product_class):
    """An ACS group (Config → Networking → TR-069 (ACS) → Groups): every device with this OUI
    and product class, now or later."""
    _admin(context, "PUT", f"/groups/{quote(group, safe='')}",
           json={"oui": oui, "product_class": product_class})


@given('the operator adds the upgrade batch "{batch}"')
@when('the operator adds the upgrade batch "{batch}"')
def add_batch(context, batch):
    """STEP 3: `ACS upgrade batch` on Networking → TR-069 (ACS) → Upgrades; a two-column table
    `field | value` with the form's fields: group, original version, file, new version, days
    (e.g. `Tue, Wed`), hours (e.g. `2-3`), event (Boot or Inform), max number of attempts, max
    devices per day (0 = unlimited), time zone."""
    spec = {}
    for row in context.table:
        label = row["field"].strip().lower()
        if label not in BATCH_FIELDS:
            raise ValueError(f"no batch field {row['field']!r}; fields: {', '.join(BATCH_FIELDS)}")
        value = row["value"].strip()
        if label in ("days", "hours"):
            spec[BATCH_FIELDS[label]] = [part.strip() for part in value.split(",")]
        elif label.startswith("max"):
            spec[BATCH_FIELDS[label]] = int(value)
        else:
            spec[BATCH_FIELDS[label]] = value
    _flow(context).batches[batch] = _admin(context, "POST", "/batches", json=spec)["id"]


@then('the devices for upgrade in batch "{batch}" are {names}')
def batch_devices(context, batch, names):
    """The batch's device list (the group's devices found at the original version), exactly."""
    wanted = {_device_id(context, name): name for name in _names(names)}
    listed = [e["device_id"] for e in _server(context).store.batch_devices(_batch_id(context, batch))]
    assert sorted(listed) == sorted(wanted), f"batch {batch!r} lists {listed}"


@when('the operator clicks "Find new devices" in batch "{batch}"')
def find_new_devices(context, batch):
    """Add the group's devices at the original version that the batch does not list yet."""
    _admin(context, "POST", f"/batches/{_batch_id(context, batch)}/find-new-devices")


@when('the operator forces the upgrade of "{name}" in batch "{batch}" now')
def force_upgrade(context, batch, name):
    """`Force upgrade (now)`: the Download is queued whatever the days, hours, event, cap and
    attempts, and the ACS sends a Connection Request so the router opens a session now."""
    _admin(context, "POST", f"/batches/{_batch_id(context, batch)}/devices/"
           f"{quote(_device_id(context, name), safe='')}/force")


@when('the operator discards the upgrade of "{name}" in batch "{batch}"')
def discard_upgrade(context, batch, name):
    """`Discard upgrade`: the device leaves the upgrade queue."""
    _admin(context, "POST", f"/batches/{_batch_id(context, batch)}/devices/"
           f"{quote(_device_id(context, name), safe='')}/discard")


@then('the status of {names} in batch "{batch}" is {status}')
def batch_status(context, names, batch, status):
    """The devices' row on `View ACS upgrade batch`: queued, downloading, installed, Ready,
    Error or discarded (case does not matter). The status is the ACS's record; a router shown
    Ready must also run the batch's new version itself."""
    for name in _names(names):
        entry = _entry(context, batch, name)
        assert entry["state"] == status.strip().lower(), \
            f"{name} is {entry['state']} in batch {batch!r} (attempts {entry['attempts']}, " \
            f"last fault {entry['last_fault']}); ACS log: {_history(context, name)}"
    if status.strip().lower() == "ready":
        _ready_routers_run_new_version(context, batch, _names(names))


def _ready_routers_run_new_version(context, batch: str, names: list[str]) -> None:
    """The device side of Ready: the router's own SoftwareVersion is the batch's new version."""
    new_version = _server(context).store.batch(_batch_id(context, batch))["new_version"]
    for name in names:
        running = _router(context, name).software_version
        assert running == new_version, \
            f"the ACS shows {name} Ready in batch {batch!r}, but it runs {running}, not {new_version}"


@then('every device in batch "{batch}" is {status}')
def batch_all_status(context, batch, status):
    """Every row of the batch has this status (the ACS's record; every router shown Ready must
    also run the batch's new version itself)."""
    entries = _server(context).store.batch_devices(_batch_id(context, batch))
    others = {e["device_id"]: e["state"] for e in entries if e["state"] != status.strip().lower()}
    assert entries and not others, f"not {status}: {others}"
    if status.strip().lower() == "ready":
        in_batch = {e["device_id"] for e in entries}
        _ready_routers_run_new_version(context, batch, [
            name for name in _flow(context).routers if _device_id(context, name) in in_batch])


@then('"{name}" used {count:d} of its attempts in batch "{batch}"')
def attempts_used(context, name, count, batch):
    """How many upgrades the batch started on the device (Max number of attempts caps them)."""
    entry = _entry(context, batch, name)
    assert entry["attempts"] == count, f"{name} used {entry['attempts']} attempts"


@then('the batch "{batch}" reports for "{name}" the fault {code:d}')
def batch_fault(context, batch, name, code):
    """The device's last failure in the batch came with this CWMP fault code (from its
    TransferComplete or a SOAP fault)."""
    fault = _entry(context, batch, name)["last_fault"] or {}
    assert fault.get("code") == code, f"{name}'s last fault is {fault}"


@then('the batch "{batch}" reports for "{name}" that the version did not change')
def batch_version_unchanged(context, batch, name):
    """The device's Error comes from the 30-minute check: its version is not the new one."""
    fault = _entry(context, batch, name)["last_fault"] or {}
    assert "version is" in fault.get("reason", ""), f"{name}'s last fault is {fault}"


@then('the batch "{batch}" started upgrades on {counts} devices on successive days')
def starts_per_day(context, batch, counts):
    """Devices whose upgrade started on each UTC day, from the batch's creation day on, e.g.
    `3, 3, 3 and 1` (Max devices per day)."""
    batch_id = _batch_id(context, batch)
    store = _server(context).store
    created = dt.datetime.fromtimestamp(store.batch(batch_id)["created"], dt.timezone.utc).date()
    per_day: dict[int, set[str]] = {}
    for started, device in store.db.execute(
            "SELECT started, device_id FROM batch_starts WHERE batch_id=?", (batch_id,)):
        day = (dt.datetime.fromtimestamp(started, dt.timezone.utc).date() - created).days
        per_day.setdefault(day, set()).add(device)
    actual = [len(per_day.get(day, ())) for day in range(max(per_day, default=-1) + 1)]
    expected = [int(n) for n in re.split(r"\s*(?:,|and)\s*", counts.strip())]
    assert actual == expected, f"upgrades started per day: {actual}"


# -- the ACS's view of devices -----------------------------------------------------------------


@when('the operator reboots "{name}" through the ACS')
def reboot_through_acs(context, name):
    """STEP 4: reboot on demand from the ACS: a Reboot RPC, pushed by a Connection Request (a
    router that cannot be reached takes it at its next Inform)."""
    _admin(context, "POST", f"/devices/{quote(_device_id(context, name), safe='')}/reboot")


@when('the operator runs the "Upgrade" action with "{file}" on the selected devices {names}')
def mass_upgrade(context, file, names):
    """Networking → TR-069 (ACS) → Devices, the mass `Actions` → `Upgrade`: a Download of the
    file to each selected device, each pushed by a Connection Request."""
    devices = [_device_id(context, name) for name in _names(names)]
    _admin(context, "POST", "/actions/upgrade", json={"devices": devices, "file": file})


@then('the ACS shows software version "{version}" for {names}')
def acs_shows_version(context, version, names):
    """The SoftwareVersion the devices reported in their last Inform."""
    for name in _names(names):
        device = _server(context).store.device(_device_id(context, name))
        actual = device["software_version"] if device else None
        assert actual == version, f"the ACS shows {actual!r} for {name}"


@then('the ACS sent "{name}" {count:d} Download')
@then('the ACS sent "{name}" {count:d} Downloads')
def downloads_sent(context, name, count):
    """Download RPCs the ACS sent the device (batch or action), as the ACS logged them, and as
    many answered on the wire by the router (a DownloadResponse, or the Fault it refuses one
    with): a Download logged but lost on the way fails here."""
    sent = _events(context, name, "Download-sent")
    assert len(sent) == count, f"the ACS sent {name} {len(sent)} Downloads; log: " \
        f"{_history(context, name)}"
    answered = len(_sent_by(context, name, DownloadResponse)) + len([
        fault for fault in _sent_by(context, name, Fault)
        if any(fault.fault_code == code and text in fault.fault_string for code, text in DOWNLOAD_REFUSALS)])
    assert answered == count, f"{name} answered {answered} Downloads on the wire, the ACS logged {count}"


@then('the ACS received from "{name}" a TransferComplete with fault {code:d}')
def transfer_complete_fault(context, name, code):
    """The device's last TransferComplete carried this FaultCode (0 = success): judged from the
    router's TransferComplete on the wire, and the ACS logged the same code on receiving it."""
    on_wire = _sent_by(context, name, TransferComplete)
    assert on_wire, f"{name} sent no TransferComplete"
    assert on_wire[-1].fault_struct.fault_code == code, f"the last TransferComplete {name} sent " \
        f"says {on_wire[-1].fault_struct.fault_code} {on_wire[-1].fault_struct.fault_string!r}"
    received = _events(context, name, "transfer-complete")
    assert received, f"no TransferComplete from {name}; log: {_history(context, name)}"
    detail = received[-1]["detail"]
    assert detail["code"] == code, f"the last TransferComplete of {name} says " \
        f"{detail['code']} {detail['string']!r}"


@then('the last Inform of "{name}" carried the events {events}')
def informed_with(context, name, events):
    """The device's last Inform (`last`) carried these event codes, e.g. `"1 BOOT" and
    "M Reboot"`: judged from the last Inform the router put on the wire; the ACS's record of
    the last Inform it received must carry them too."""
    on_wire = _sent_by(context, name, Inform)
    assert on_wire, f"{name} never sent an Inform"
    sent_codes = {event.event_code for event in on_wire[-1].event}
    missing = set(_names(events)) - sent_codes
    assert not missing, f"{name}'s last Inform on the wire carried {sorted(sent_codes)}"
    informs = _events(context, name, "inform")
    assert informs, f"the ACS logged no Inform of {name}"
    codes = {code for code, _ in informs[-1]["detail"]["events"]}
    missing = set(_names(events)) - codes
    assert not missing, f"the ACS logged {name}'s last Inform with {sorted(codes)}"


# -- time -----------------------------------------------------------------------------------


@given('it is {day} {clock_time} UTC')
@when('it is {day} {clock_time} UTC')
def it_is(context, day, clock_time):
    """Let scenario time pass until the next `day` (e.g. Tuesday) at `clock_time` (HH:MM,
    UTC): every timer due meanwhile fires (periodic informs, the 30-minute checks). On the
    virtual clock the days cost no real time."""
    runtime = ota(context)
    if day.lower() not in DAYS:
        raise ValueError(f"not a day of the week: {day!r}")
    hour, minute = (int(part) for part in clock_time.split(":"))
    now = runtime.clock.utcnow()
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    target += dt.timedelta(days=(DAYS.index(day.lower()) - now.weekday()) % 7)
    if target <= now:
        target += dt.timedelta(days=7)
    runtime.run_for((target - now).total_seconds())
