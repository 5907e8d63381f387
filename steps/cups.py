"""LoRa Basics Station firmware upgrade over CUPS (seed 000): signature keys, update files,
stations, the provisioning tool, and what the station, the CUPS server and the LNS did.

The back end is the flow's service (`runtime.service("cups")`: CUPS with its admin API, the LNS,
the station registry). Operator actions go through the same tools an operator runs
(`otaharness cups prepare|upgrade-firmware`) or the admin API; checks read the server's and the
stations' state in process, so they also work inside `soon`. Stations are
`otaharness.emulators.basics_station` instances reaching the back end through the runtime's link proxies.
"""

import argparse
import base64
import contextlib
import importlib
import io
import re
import shlex
import ssl
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from behave import given, then, when
from cryptography import x509

from otaharness.emulators.basics_station import (
    BasicsStation,
    CredentialSet,
    StationHome,
    StationSettings,
)
from otaharness.emulators.basics_station.cups_http import post_update_info
from otaharness.emulators.basics_station.tls import station_tls
from otaharness.bdd.support import ota, start_flow, substitute
from otaharness.cli import COMMANDS
from otaharness.protocols.basics_station import (
    NO_UPDATE,
    Credentials,
    UpdateInfoRequest,
    format_eui,
)
from otaharness.provision.basics_station import write_firmware_digest
from otaharness.runtime.pki import CertificateAuthority
from otaharness.servers.basics_station.auth import token_digest
from otaharness.servers.basics_station.identity import (
    bearer_tokens,
    certificate_credentials,
    issue_credentials,
    station_certificate,
)
from otaharness.units import parse_duration, parse_size

FIRST_STATION_EUI = 0x0016C001FF10A235  # stations get consecutive EUIs from here, in order of appearance
CONNECT_LIMIT = 600.0  # scenario seconds a step waits for a station to come up
_SIZE = re.compile(r"^\s*(\d+)\s*(B|bytes?|KiB|MiB)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "byte": 1, "bytes": 1, "kib": 1024, "mib": 1024 * 1024}


@dataclass
class _Flow:
    """What the scenario's operator and firmware team hold: keys, update files, stations."""

    workspace: Path
    stations: dict[str, BasicsStation] = field(default_factory=dict)
    homes: dict[str, StationHome] = field(default_factory=dict)
    euis: dict[str, int] = field(default_factory=dict)
    signer: dict[str, str] = field(default_factory=dict)  # update file -> key that signed it
    credentials: dict[tuple[str, str], Credentials] = field(default_factory=dict)  # (station, cups|tc)
    decisions_at_reject: dict[str, int] = field(default_factory=dict)
    new_cas: dict[str, CertificateAuthority] = field(default_factory=dict)  # endpoint -> the CA behind it
    server: object = None  # the flow's back end once started (a BasicsStationServer)


def _flow(context) -> _Flow:
    if not hasattr(context, "cups_flow"):
        context.cups_flow = _Flow(ota(context).artifacts / "cups")
    return context.cups_flow


def _server(context):
    """The flow's back end (started on first use); its URLs become `${endpoint.cups|lns}`."""
    flow = _flow(context)
    if flow.server is None:
        flow.server = start_flow(context, "cups")
    return flow.server


def _keylog(context) -> str | None:
    """Where stations log TLS session secrets: the scenario's key log (Wireshark decrypts)."""
    keylog = ota(context).pki().keylog if "ca" in _server(context).endpoints() else None
    return str(keylog) if keylog else None


def _eui(context, name: str) -> int:
    try:
        return _flow(context).euis[name]
    except KeyError:
        raise KeyError(f"no station {name!r}: provision it first") from None


def _station(context, name: str) -> BasicsStation:
    try:
        return _flow(context).stations[name]
    except KeyError:
        raise KeyError(f"station {name!r} was never switched on") from None


def _key_dir(context, key: str) -> Path:
    path = _flow(context).workspace / "keys" / key
    if not (path / "sig-0.key").is_file():
        raise FileNotFoundError(f"no signature key {key!r}: the firmware team prepares it first")
    return path


def _key_crc(context, key: str) -> int:
    return int((_key_dir(context, key) / "sig-0.crc").read_text())


def _update_file(context, file: str) -> Path:
    path = _flow(context).workspace / "firmware" / file
    if not path.is_file():
        raise FileNotFoundError(f"no update file {file!r}")
    return path


def _tool_access(context) -> list[str]:
    """The admin API's token and (with TLS) the trust file, as an operator passes them."""
    endpoints = _server(context).endpoints()
    return [f"--token={ota(context).token_for('cups') or ''}"] + (["--ca", endpoints["ca"]] if "ca" in endpoints else [])


def _run_tool(context, command: str, argv: list[str]) -> None:
    """Run `otaharness cups <command> <argv>` in process, the way the CLI does."""
    module = importlib.import_module(COMMANDS["cups"][command])
    parser = argparse.ArgumentParser(prog=f"otaharness cups {command}")
    module.add_arguments(parser)
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            arguments = parser.parse_args(argv)
        except SystemExit as refused:  # argparse's way: fail the step, not the whole run
            raise AssertionError(f"otaharness cups {command} refused its arguments: "
                                 f"{errors.getvalue().strip()}") from refused
        status = ota(context).run(module.run(arguments))
    assert status == 0, f"otaharness cups {command} failed ({status}): {errors.getvalue().strip()}"


def _admin(context, method: str, path: str, **request) -> dict:
    """Call the back end's admin API (the twin and firmware store) with its bearer token;
    returns the JSON answer."""
    endpoints = _server(context).endpoints()
    url = endpoints["cups"] + path
    headers = {"Authorization": f"Bearer {ota(context).token_for('cups')}"}
    tls = ssl.create_default_context(cafile=endpoints["ca"]) if "ca" in endpoints else None

    async def call():
        async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=tls) if tls else None
                                         ) as http, http.request(method, url, **request) as response:
            text = await response.text()
            assert response.status < 400, f"{method} {path}: HTTP {response.status}: {text}"
            return await response.json() if text else {}

    return ota(context).run(call())


def _decisions(context, name: str) -> list[str]:
    """Why CUPS answered each of the station's requests as it did, oldest first."""
    eui = _eui(context, name)
    return [reason for station, reason in _server(context).cups.decisions if station == eui]


def _events(station: BasicsStation) -> str:
    """The station's latest events, for failure messages."""
    return "; ".join(f"{e.at:.0f} s {e.kind} {e.detail}".strip() for e in station.events[-12:])


# -- the firmware team ---------------------------------------------------------------------------


@given('the firmware team prepares the signature key "{key}"')
def prepare_key(context, key):
    """Generate a P-256 signature key with `otaharness cups prepare` (the seed's preparation
    tool): `sig-0.key` for the stations, `sig-0.pem` kept by the team, `sig-0.crc` (its CRC32,
    the checksum the provisioning tool uploads)."""
    _run_tool(context, "prepare", ["--output-dir", str(_flow(context).workspace / "keys" / key)])


@given('an update file "{file}" that installs package "{package}" but leaves update.bin behind')
def sloppy_update_file(context, file, package):
    """An update program that writes `version.txt` but neither removes `update.bin` nor asks
    for a restart: the station runs it again at every start."""
    _write_update(context, file, package, cleans_up=False, size=0)


@given('an update file "{file}" that installs package "{package}"')
def update_file(context, file, package):
    """An update program as the station runs it: writes `package` into `version.txt`, removes
    `update.bin` and asks for a restart (like the seed's `fwUpdateSample.sh`). Each run is
    counted in the station's `update-runs.log`."""
    _write_update(context, file, package, cleans_up=True, size=0)


@given('an update file "{file}" of {size} that installs package "{package}"')
def sized_update_file(context, file, size, package):
    """The same update program, padded with comment lines to `size` (e.g. `64 KiB`), so a
    download takes many packets."""
    match = _SIZE.match(size)
    if match is None:
        raise ValueError(f"not a size: {size!r} (try '64 KiB', '2 MiB', '900 bytes')")
    _write_update(context, file, package, cleans_up=True,
                  size=int(match[1]) * _SIZE_UNITS[match[2].lower()])


@given('an update file "{file}" that installs package "{package}" without restarting the station')
def update_file_without_restart(context, file, package):
    """What the starter kit's `fwUpdateSample.sh` does: writes `version.txt` and removes
    `update.bin`, and does not restart the station (its next CUPS request names the new package;
    the LNS hears of it only when the station reconnects)."""
    _write_update(context, file, package, cleans_up=True, size=0, restarts=False)


def _write_update(context, file: str, package: str, *, cleans_up: bool, size: int, restarts: bool = True) -> None:
    lines = ["#!/bin/sh", f"# CUPS update to package {package}", "set -e", "echo run >> update-runs.log",
             f"printf '%s\\n' {shlex.quote(package)} > version.txt"]
    if cleans_up:
        lines += ["rm -f update.bin"] + [": > station.restart"] * restarts
    script = "\n".join(lines) + "\n"
    while (missing := size - len(script)) > 0:  # comment lines up to the exact size
        script += "#" * (min(missing, 80) - 1) + "\n"
    path = _flow(context).workspace / "firmware" / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(0o755)


@given('the firmware team signs "{file}" with the key "{key}"')
def sign_update(context, file, key):
    """Write `<file>.digest`: the base64 DER ECDSA-SHA512 signature of the update file made
    with the key's private half (as the preparation tool and `openssl dgst -sha512 -sign`)."""
    firmware = _update_file(context, file)
    write_firmware_digest(firmware, _key_dir(context, key) / "sig-0.pem",
                          firmware.with_name(firmware.name + ".digest"))
    _flow(context).signer[file] = key


# -- stations --------------------------------------------------------------------------------------


@given('station "{name}" is provisioned with package "{package}" and the signature key "{key}"')
def provision_with_key(context, name, package, key):
    """Register the station with the back end (its twin hands out our CUPS and LNS URIs) and
    install it: `cups.uri`, `version.txt` = package, the key as `sig-0.key`. Its EUI is
    `${station.<name>.eui}`. It is not switched on yet."""
    _provision(context, name, package, [key])


@given('station "{name}" is provisioned with package "{package}" and no signature key')
def provision_without_key(context, name, package):
    """Register and install the station as above, without any `sig-N.key`."""
    _provision(context, name, package, [])


def _provision(context, name: str, package: str, keys: list[str], auth: str = "certificate") -> None:
    flow, runtime = _flow(context), ota(context)
    if name in flow.euis:
        raise ValueError(f"station {name!r} is already provisioned")
    endpoints = _server(context).endpoints()
    eui = flow.euis[name] = FIRST_STATION_EUI + len(flow.euis)
    runtime.values.setdefault("station", {})[name] = {"eui": format_eui(eui, "")}
    _admin(context, "PUT", f"/admin/stations/{format_eui(eui, '')}",
           json={"cupsUri": endpoints["cups"], "tcUri": endpoints["lns"]})
    key_files = tuple((_key_dir(context, key) / "sig-0.key").read_bytes() for key in keys)
    home = StationHome(flow.workspace / "stations" / name)
    if "ca" in endpoints:  # TLS: the station's credential files, as an installer writes them
        _run_tool(context, "station-credentials", [
            "--server", endpoints["cups"], "--station-eui", format_eui(eui, ""), "--home", str(home.path),
            "--auth", auth, *_tool_access(context)])
    flow.homes[name] = home.provision(cups_uri=endpoints["cups"], version=package, sig_keys=key_files)


@given('station "{name}" is switched on')
@when('station "{name}" is switched on')
def switch_on(context, name):
    """Start the station (Basics Station 2.0.6 defaults: CUPS every 24 h, 1 min after a failure)
    from its own address through the runtime's links. It calls CUPS at once, then the LNS."""
    flow, runtime = _flow(context), ota(context)
    if name in flow.stations:
        raise ValueError(f"station {name!r} is already on")
    station = BasicsStation(StationSettings(_eui(context, name)), flow.homes[name], runtime.clock,
                            bind_address=runtime.address_of(name), dial=runtime.link, name=name,
                            tls_keylog=_keylog(context))
    runtime.add_cleanup(station.stop)
    flow.stations[name] = runtime.devices[name] = station
    runtime.run(station.start())


@then('station "{name}" is connected to the LNS')
def connected_to_lns(context, name):
    """The station holds a live LNS connection and the LNS has its `version` message."""
    station = _station(context, name)
    session = _server(context).lns.sessions.get(_eui(context, name))
    assert station.tc_connected and session is not None and session.version is not None, (
        f"station {name} is not on the LNS; its events: {_events(station)}")


@then('station "{name}" runs package "{package}"')
@then('station "{name}" still runs package "{package}"')
def runs_package(context, name, package):
    """The package in the station's `version.txt` (what it reports to CUPS and the LNS)."""
    actual = _flow(context).homes[name].version()
    assert actual == package, (
        f"station {name} runs {actual!r}; its events: {_events(_station(context, name))}")


@then('station "{name}" ran the update: {outcome}')
def ran_update(context, name, outcome):
    """The station accepted the update file and ran it, for this reason (e.g. `a key verified
    the signature`, `no sig-0.key and no signature`), and the program exited with 0."""
    station = _station(context, name)
    accepted, ran = station.last("update-accepted"), station.last("update-run")
    assert accepted is not None and outcome in accepted.detail, (
        f"station {name} did not run an update because {outcome!r}: {_events(station)}")
    assert ran is not None and ran.detail == "exit 0", f"the update program failed: {_events(station)}"


@then('station "{name}" refused the update: {outcome}')
def refused_update(context, name, outcome):
    """The station received an update file and did not run it, for this reason (e.g. `no key
    could verify the signature`); the file was removed."""
    station = _station(context, name)
    aborted = station.last("update-aborted")
    assert aborted is not None and outcome in aborted.detail, (
        f"station {name} did not refuse an update because {outcome!r}: {_events(station)}")
    assert station.count("update-run") == 0, f"station {name} ran an update: {_events(station)}"
    assert not (station.home.path / "update.bin").exists(), "the refused update.bin is still there"


@then('station "{name}" received an update of {size}')
def received_update_of(context, name, size):
    """The last update the station wrote to its update.bin had this many bytes (`64 KiB`, `900
    bytes`): the station's own note when it stored it."""
    station = _station(context, name)
    received = station.last("update-received")
    assert received is not None, f"station {name} received no update: {_events(station)}"
    expected = parse_size(size)
    assert received.detail == f"{expected} bytes", f"station {name} received an update of {received.detail}, not {expected} bytes"


@then('station "{name}" received no update')
def received_no_update(context, name):
    """The station was never sent an update file."""
    station = _station(context, name)
    assert station.count("update-accepted") + station.count("update-aborted") == 0, _events(station)


@then('station "{name}" restarted to install the update')
def restarted_for_update(context, name):
    """Downtime: after the update ran, the station restarted (the program asked for it), leaving
    the LNS, and came back on with the package the update installed."""
    station = _station(context, name)
    kinds = [event.kind for event in station.events]
    try:
        ran = max(i for i, kind in enumerate(kinds) if kind == "update-run")
        halted = kinds.index("halt", kinds.index("restart-requested", ran))
        back = kinds.index("tc-connected", kinds.index("boot", halted))
    except ValueError:
        raise AssertionError(f"no update, restart and reconnection in order: {_events(station)}") from None
    package = station.home.version()
    assert station.events[back].detail.endswith(f"package {package!r}"), station.events[back]


@then('the update program of station "{name}" has run {count:d} time')
@then('the update program of station "{name}" has run {count:d} times')
def update_runs(context, name, count):
    """How often the update program ran on the station (its `update-runs.log`)."""
    log = _flow(context).homes[name].path / "update-runs.log"
    runs = len(log.read_text().split()) if log.exists() else 0
    assert runs == count, f"the update program ran {runs} times: {_events(_station(context, name))}"


@then('station "{name}" ran the leftover update.bin again at startup')
def reran_leftover(context, name):
    """At its last start the station found `update.bin` and ran it again (basicstation's
    `startupMaster` does this at every start while the file exists)."""
    station = _station(context, name)
    kinds = [event.kind for event in station.events]
    last_boot = len(kinds) - 1 - kinds[::-1].index("boot")
    assert "update-rerun" in kinds[last_boot:], f"no re-run at the last start: {_events(station)}"


# -- the operator ----------------------------------------------------------------------------------


@when('the operator uploads "{file}" as package "{package}" for station "{name}"'
      ' with the checksum of the key "{key}"')
def upload_with_checksum(context, file, package, name, key):
    """The same upload, naming the checksum file of this key (whichever key signed the file)."""
    _upgrade_firmware(context, file, package, name, key)


@given('the operator uploads "{file}" as package "{package}" for station "{name}"')
@when('the operator uploads "{file}" as package "{package}" for station "{name}"')
def upload(context, file, package, name):
    """`otaharness cups upgrade-firmware` (the seed's `upgrade-firmware`) with the update file,
    its `.digest` and the checksum file of the key that signed it: the file goes to the firmware
    store and the station's twin wants the package."""
    signer = _flow(context).signer.get(file)
    if signer is None:
        raise ValueError(f"{file!r} is not signed: the firmware team signs it first")
    _upgrade_firmware(context, file, package, name, signer)


def _upgrade_firmware(context, file: str, package: str, name: str, checksum_key: str) -> None:
    firmware = _update_file(context, file)
    _run_tool(context, "upgrade-firmware", [
        "--station-eui", format_eui(_eui(context, name), ""), "--package", package,
        "--firmware-location", str(firmware),
        "--digest-location", str(firmware.with_name(firmware.name + ".digest")),
        "--checksum-location", str(_key_dir(context, checksum_key) / "sig-0.crc"),
        "--server", _server(context).endpoints()["cups"], *_tool_access(context)])


@given('the operator sets package "{package}" for station "{name}" to "{file}" without a signature')
@when('the operator sets package "{package}" for station "{name}" to "{file}" without a signature')
def upload_unsigned(context, package, name, file):
    """Through the admin API (the provisioning tool always signs): store the update file and
    set the desired package with neither key checksum nor signature."""
    eui = format_eui(_eui(context, name), "")
    stored = _admin(context, "PUT", f"/admin/firmware/{eui}-{package}",
                    data=_update_file(context, file).read_bytes())
    _admin(context, "PUT", f"/admin/stations/{eui}/cups", json={
        "package": package, "fwUrl": stored["fwUrl"], "fwKeyChecksum": None, "fwSignature": None})


def _move(context, name: str, category: str, uri: str | None, credentials: Credentials) -> None:
    """Set the twin's URI (None: unchanged) and credential blob; CUPS sends them when the CRC the
    station reports differs."""
    prefix = _category(category)
    change = {f"{prefix}Credentials": base64.b64encode(credentials.encode()).decode("ascii")}
    if uri is not None:
        change[f"{prefix}Uri"] = substitute(uri, ota(context).values)
    _admin(context, "PUT", f"/admin/stations/{format_eui(_eui(context, name), '')}", json=change)
    _flow(context).credentials[(name, prefix)] = credentials


def _pki(context):
    server = _server(context)
    if server.pki is None:
        raise AssertionError("credential steps need CUPS over TLS (-D target.cups.plain is set)")
    return server.pki


@given('station "{name}" is provisioned with package "{package}", the signature key "{key}" and a token')
def provision_with_token(context, name, package, key):
    """Register and install the station with `station-credentials --auth token`: `cups.key` and
    `tc.key` hold `Authorization: Bearer <token>` and there is no client certificate."""
    _provision(context, name, package, [key], auth="token")


@given('station "{name}" is provisioned with package "{package}", no signature key'
       ' and an expired client certificate')
def provision_expired(context, name, package):
    """Register and install the station, its client certificate (for CUPS and TC) issued by the
    station CA but expired two days ago."""
    _provision(context, name, package, [])
    pki = _pki(context)
    expired = certificate_credentials(pki.server_ca.certificate,
                                      station_certificate(pki.device_ca, _eui(context, name), expired=True))
    for category in ("cups", "tc"):
        _flow(context).homes[name].store_credentials(category, expired)


@when('the operator rotates the {category} credentials of station "{name}" to a new client certificate')
def rotate_to_certificate(context, category, name):
    """A new client certificate (and key) for the station from the station CA, with the server
    CA as trust, set in the twin: CUPS sends it as `cupsCred`/`tcCred` at the next check."""
    pki = _pki(context)
    _move(context, name, category, None, certificate_credentials(
        pki.server_ca.certificate, station_certificate(pki.device_ca, _eui(context, name))))


@when('the operator rotates the {category} credentials of station "{name}" to a new token')
def rotate_to_token(context, category, name):
    """A new bearer token for the station (no client certificate), with the server CA as trust."""
    _move(context, name, category, None,
          issue_credentials(_pki(context), _server(context).registry, _eui(context, name), "token"))


@when('the operator rotates the {category} credentials of station "{name}" to a trust of an unrelated CA')
def rotate_to_broken(context, category, name):
    """A mistake: the trust is a CA our server's certificate does not chain to (the client
    certificate is fine). The station stores it and can no longer verify the server."""
    pki = _pki(context)
    _move(context, name, category, None, certificate_credentials(
        pki.rogue_ca.certificate, station_certificate(pki.device_ca, _eui(context, name))))


@given('the CUPS server also answers at "{endpoint}" with a certificate of a new CA')
@when('the CUPS server also answers at "{endpoint}" with a certificate of a new CA')
def cups_with_new_ca(context, endpoint):
    """The same CUPS on another port, presenting a certificate of a new server CA: the CUPS after
    a CA change. Its URL is `${endpoint.<endpoint>}`."""
    server, flow = _server(context), _flow(context)
    _pki(context)
    flow.new_cas[endpoint] = CertificateAuthority(f"otaharness Root CA for {endpoint} (after a CA change)")
    url = ota(context).run(server.add_cups_endpoint(endpoint, flow.new_cas[endpoint]))
    ota(context).values.setdefault("endpoint", {})[endpoint] = url


@when('the operator moves station "{name}" to the CUPS URI "{uri}" trusting the new CA of "{endpoint}"')
def move_to_new_ca(context, name, uri, endpoint):
    """Set the twin's CUPS URI and CUPS credentials: the new CA as trust, a new client certificate.
    CUPS sends both in one reply; the station calls the new URI with the new trust."""
    pki = _pki(context)
    _move(context, name, "cups", uri, certificate_credentials(
        _flow(context).new_cas[endpoint].certificate, station_certificate(pki.device_ca, _eui(context, name))))


def _credential_detail(credentials: Credentials) -> str:
    """How the server names this credential in what it records (serial, or token digest)."""
    if credentials.certificate:
        return f"certificate {x509.load_der_x509_certificate(credentials.certificate).serial_number:x}"
    return f"token {token_digest(bearer_tokens(credentials)[0])[:16]}"


@then('CUPS saw station "{name}" come with its new CUPS credentials')
def cups_saw_new_credentials(context, name):
    """The station's latest CUPS request was authenticated with the credential the operator set
    last (the server records the certificate's serial or the token's digest, never the secret)."""
    eui, expected = _eui(context, name), _credential_detail(_flow(context).credentials[(name, "cups")])
    arrivals = [detail for station, _, detail in _server(context).cups.arrivals if station == eui]
    assert arrivals and arrivals[-1] == expected, f"CUPS saw {arrivals[-3:]}, expected {expected}"


@then('the last CUPS request of station "{name}" came to "{endpoint}"')
def last_cups_endpoint(context, name, endpoint):
    """The server socket that answered the station's latest CUPS request (after the link proxy)."""
    eui, port = _eui(context, name), urlsplit(_server(context).endpoints()[endpoint]).port
    ports = [local for station, local, _ in _server(context).cups.arrivals if station == eui]
    assert ports and ports[-1] == port, f"CUPS requests of {name} came to ports {ports[-3:]}, not {port}"


@then('the LNS saw station "{name}" connect with its new TC credentials')
def lns_saw_new_credentials(context, name):
    """The station's latest LNS data connection was authenticated with the TC credential the
    operator set last."""
    eui, expected = _eui(context, name), _credential_detail(_flow(context).credentials[(name, "tc")])
    identities = [session.identity for session in _server(context).lns.history if session.eui == eui]
    assert identities and identities[-1] == expected, f"the LNS saw {identities[-3:]}, expected {expected}"


@then('station "{name}" reached CUPS with its backup credentials')
def reached_with_backup(context, name):
    """After its regular set kept failing, a CUPS session with the BAK set succeeded."""
    station = _station(context, name)
    kinds = [(event.kind, event.detail) for event in station.events]
    try:
        backup = kinds.index(("cups-set", "BAK"))
    except ValueError:
        raise AssertionError(f"station {name} never used its BAK set: {_events(station)}") from None
    assert any(kind == "cups-done" for kind, _ in kinds[backup:]), _events(station)


@then('station "{name}" could not reach CUPS: {reason}')
def could_not_reach_cups(context, name, reason):
    """Every CUPS session of the station failed, the last one for this reason (as the station's
    TLS library reported it); none succeeded."""
    station = _station(context, name)
    failed = station.last("cups-failed")
    assert failed is not None and reason in failed.detail, _events(station)
    assert station.count("cups-done") == 0, _events(station)


@then('station "{name}" failed its last CUPS check: {reason}')
def failed_last_check(context, name, reason):
    """The station's latest CUPS session failed, for this reason (as its TLS library said)."""
    station = _station(context, name)
    sessions = [event for event in station.events if event.kind in ("cups-done", "cups-failed")]
    assert sessions and sessions[-1].kind == "cups-failed" and reason in sessions[-1].detail, _events(station)


@then('station "{name}" is not connected to the LNS')
def not_on_lns(context, name):
    """The station holds no LNS connection and the LNS has none for it."""
    station = _station(context, name)
    assert not station.tc_connected and _eui(context, name) not in _server(context).lns.sessions, _events(station)


@then('station "{name}" reached CUPS and the LNS over TLS with its {kind}')
def reached_over_tls(context, name, kind):
    """The station's URIs are `https`/`wss`, and CUPS and the LNS recorded its latest request
    and connection as authenticated with a `client certificate` or a `token`."""
    station, eui = _station(context, name), _eui(context, name)
    by = {"client certificate": "certificate", "token": "token"}[kind]
    assert (urlsplit(station.home.uri("cups")).scheme, urlsplit(station.home.uri("tc")).scheme) == ("https", "wss")
    arrivals = [detail for station_eui, _, detail in _server(context).cups.arrivals if station_eui == eui]
    sessions = [session.identity for session in _server(context).lns.history if session.eui == eui]
    assert arrivals and arrivals[-1].startswith(by + " "), f"CUPS saw {arrivals[-3:]}"
    assert sessions and sessions[-1].startswith(by + " "), f"the LNS saw {sessions[-3:]}"


@then('station "{name}" did not restart')
def did_not_restart(context, name):
    """The station has been running since it was switched on (one boot)."""
    station = _station(context, name)
    assert station.boots == 1, _events(station)


@then('the last CUPS request of station "{name}" names package "{package}"')
def last_request_package(context, name, package):
    """The `package` of the station's latest CUPS request, as the server received it."""
    eui = _eui(context, name)
    requests = [r for r in map(UpdateInfoRequest.decode, _server(context).cups.requests) if r.router == eui]
    assert requests and requests[-1].package == package, f"its last request names {requests[-1].package!r}"


def _category(text: str) -> str:
    category = text.strip().lower()
    if category not in ("cups", "tc"):
        raise ValueError(f"credential category must be CUPS or TC, not {text!r}")
    return category


@when('the LNS rejects station "{name}" because "{reason}"')
def lns_rejects(context, name, reason):
    """From now on the LNS turns the station away (discovery answers with this error) and
    closes its live connection."""
    _flow(context).decisions_at_reject[name] = len(_decisions(context, name))
    _admin(context, "PUT", f"/admin/stations/{format_eui(_eui(context, name), '')}/reject",
           json={"reason": reason})


@when('the LNS accepts station "{name}" again')
def lns_accepts(context, name):
    """The LNS lets the station connect again."""
    _admin(context, "DELETE", f"/admin/stations/{format_eui(_eui(context, name), '')}/reject")


# -- what the back end saw -------------------------------------------------------------------------


@then('the registry wants package "{package}" from "{file}" on station "{name}"')
def twin_desired(context, package, file, name):
    """The station's twin as the provisioning tool left it: the desired package, the file in
    the firmware store as `<StationEui>-<package>`, the checksum of the key that signed the file
    and the file's digest as signature."""
    server, eui = _server(context), _eui(context, name)
    twin = server.registry.get(eui)
    firmware = _update_file(context, file)
    digest = base64.b64decode(firmware.with_name(firmware.name + ".digest").read_text())
    assert (twin.package, twin.fw_key_checksum) == (package, _key_crc(context, _flow(context).signer[file])), (
        twin.to_dict())
    assert twin.fw_signature == digest, "the twin's signature is not the file's digest"
    assert twin.fw_url and twin.fw_url.endswith(f"/admin/firmware/{format_eui(eui, '')}-{package}"), twin.fw_url
    assert server.store.read(f"{format_eui(eui, '')}-{package}") == firmware.read_bytes()


@then('the registry shows package "{package}" reported by station "{name}" to the LNS')
def registry_reported(context, package, name):
    """The LNS got `package` in the station's latest `version` message and recorded it in the
    registry (the twin's reported `Package`)."""
    server, eui = _server(context), _eui(context, name)
    versions = [s.version for s in server.lns.history if s.eui == eui and s.version is not None]
    assert versions, f"station {name} never sent the LNS a version message"
    assert versions[-1].package == package, f"the last version message says {versions[-1]}"
    reported = server.registry.get(eui).reported_package
    assert reported == package, f"the registry shows {reported!r}"


@then('the CUPS server sent station "{name}" the update to "{package}" unsigned')
def sent_unsigned(context, name, package):
    """CUPS sent the update file without a signature (the twin has no key checksum)."""
    decisions = _decisions(context, name)
    assert any(f"update to {package!r}" in reason and "UNSIGNED" in reason for reason in decisions), decisions


@then('the CUPS server sent station "{name}" no update because it lacks the key "{key}"')
def no_update_lacking_key(context, name, key):
    """CUPS's last answer held no update, and it recorded why: the checksum of the key the
    firmware was signed with is not among the station's key CRCs."""
    eui = _eui(context, name)
    twin = _server(context).registry.get(eui)
    station_keys = list(_station(context, name).update_info_request().keys)
    expected = (f"no update to {twin.package!r}: the station lacks the signing key "
                f"(fwKeyChecksum {_key_crc(context, key)} not in keys {station_keys})")
    decisions = _decisions(context, name)
    assert decisions and decisions[-1] == expected, f"CUPS's answers: {decisions[-3:]}"


@then('the CUPS server\'s last answer to station "{name}" was "{reason}"')
def last_decision(context, name, reason):
    """What CUPS recorded about its latest answer to the station contains this text."""
    decisions = _decisions(context, name)
    assert decisions and reason in decisions[-1], f"CUPS's answers: {decisions[-3:]}"


@then('CUPS answers station "{name}" with the 14-byte "no update"')
def fourteen_bytes(context, name):
    """The station's last CUPS session ended with "no updates", and the request it sends now,
    posted the station's way (its address, its raw HTTP), gets 200 with Content-Length 14 and
    14 zero bytes."""
    station, runtime = _station(context, name), ota(context)
    done = station.last("cups-done")
    assert done is not None and done.detail == "no updates", _events(station)
    url = station.home.uri("cups")
    parts = urlsplit(url)
    tls, auth_headers = (station_tls(station.home, "cups", CredentialSet.REG) if parts.scheme == "https"
                         else (None, b""))

    async def ask():
        return await post_update_info(await runtime.link(url), parts.netloc, station.update_info_request().encode(),
                                      runtime.address_of(name), tls=tls, server_hostname=parts.hostname,
                                      auth_headers=auth_headers)

    reply = runtime.run(ask())
    assert (reply.status, reply.headers.get("content-length"), reply.body) == (200, "14", NO_UPDATE), reply


@then('station "{name}" asks CUPS again within {duration}')
def asks_cups_again(context, name, duration):
    """Since the LNS turned it away, the station has called CUPS again, within this time."""
    runtime, before = ota(context), _flow(context).decisions_at_reject[name]
    asked = runtime.run_until(lambda: len(_decisions(context, name)) > before, timeout=parse_duration(duration))
    assert asked, f"station {name} did not ask CUPS within {duration}: {_events(_station(context, name))}"


@then('station "{name}" was turned away by the LNS: "{reason}"')
def turned_away(context, name, reason):
    """The station's discovery got this error from the LNS."""
    station = _station(context, name)
    rejected = station.last("tc-rejected")
    assert rejected is not None and rejected.detail == reason, _events(station)


@then('the CUPS download of station "{name}" was cut off')
def download_cut(context, name):
    """A CUPS session of the station failed because the reply ended early."""
    station = _station(context, name)
    assert any(e.kind == "cups-failed" and "cut short" in e.detail for e in station.events), _events(station)


@then('station "{name}" asked CUPS again {duration} after the cut download')
def retried_after(context, name, duration):
    """The station's next CUPS session came this long after the one that was cut off (its
    resync interval off the LNS, its regular interval while on the LNS)."""
    station = _station(context, name)
    events = [e for e in station.events if e.kind in ("cups-done", "cups-failed")]
    cut = next((i for i, e in enumerate(events) if "cut short" in e.detail), None)
    assert cut is not None and cut + 1 < len(events), f"no CUPS session after a cut: {_events(station)}"
    waited = events[cut + 1].at - events[cut].at
    assert abs(waited - parse_duration(duration)) <= 1.0, f"the station asked again after {waited:.0f} s"


# -- credentials and URIs on the station ----------------------------------------------------------


@then('station "{name}" uses the {category} URI "{uri}"')
def uses_uri(context, name, category, uri):
    """The station's `cups.uri` / `tc.uri` (the REG set)."""
    actual = _flow(context).homes[name].uri(_category(category))
    assert actual == substitute(uri, ota(context).values), f"station {name} uses {actual!r}"


@then('station "{name}" kept its previous {category} URI "{uri}" as backup')
def backup_uri(context, name, category, uri):
    """The BAK set (`cups-bak.uri` / `tc-bak.uri`) holds the URI the station had before CUPS
    changed it."""
    actual = _flow(context).homes[name].uri(_category(category), CredentialSet.BAK)
    assert actual == substitute(uri, ota(context).values), f"the backup holds {actual!r}"


@then('station "{name}" stored its new {category} credentials byte for byte')
def stored_credentials(context, name, category):
    """The station's `.trust`, `.crt`, `.key` files hold exactly the parts of the blob the
    operator set (an absent client certificate or key as an empty file)."""
    prefix = _category(category)
    expected = _flow(context).credentials[(name, prefix)].stored_files()
    actual = _flow(context).homes[name].credential_files(prefix)
    for extension, want, got in zip(("trust", "crt", "key"), expected, actual):
        assert want == got, f"{prefix}.{extension}: {len(got)} bytes differ from the {len(want)} sent"


@then('station "{name}" reports the CRC of its new {category} credentials to CUPS')
def reports_credential_crc(context, name, category):
    """The station's latest CUPS request carries `crc32(blob)` of the credentials CUPS sent,
    and CUPS, seeing it equal, does not send them again."""
    prefix = _category(category)
    blob = _flow(context).credentials[(name, prefix)].encode()
    eui = _eui(context, name)
    requests = [r for r in map(UpdateInfoRequest.decode, _server(context).cups.requests) if r.router == eui]
    reported = getattr(requests[-1], f"{prefix}_cred_crc")
    assert reported == zlib.crc32(blob), f"{prefix}CredCrc {reported} is not crc32 of the blob {zlib.crc32(blob)}"
    assert f"{prefix} credentials" not in _decisions(context, name)[-1], _decisions(context, name)[-1]
