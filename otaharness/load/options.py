"""The options ``otaharness load`` adds to Locust's (shown by ``otaharness load KIND --help``).

Locust hands them from the master to every worker with each spawn message, so a worker started
with only ``--worker --master-host H`` runs its devices with the master's settings.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from otaharness.emulators.fleet import HTTP, MQTT, WEBSOCKET, url_argument
from otaharness.runtime.faults import add_fault_arguments
from otaharness.units import parse_duration

KIND_NAMES = ("cpe", "olt-gateway", "basics-station", "aws-tracker", "lorawan")

# dest -> passed to the device host (everything the devices need; nothing of Locust's own)
HOST_OPTIONS = ("acs_url", "ca", "cpe_profile", "username", "password", "cr_host",
                "periodic_interval", "boot_seconds", "device_prefix", "seed", "fault",
                "fault_devices", "fault_endpoint", "api", "mqtt", "olt_token", "gateway_type",
                "device_type")
HOST_OPTIONS += ("cups_url", "cups_token", "station_auth", "station_package", "station_sig_key",
                 "station_eui_base", "cups_interval", "cups_resync_interval")
HOST_OPTIONS += ("aws_api", "aws_region", "iot_policy", "credentials_dir", "s3_endpoint",
                 "server_name", "app_version", "fragment_size", "tracker_reboot_seconds")
HOST_OPTIONS += ("lns_url", "app_api", "app_token", "fuota_verify_key", "lorawan_firmware_version",
                 "lorawan_hw_version", "poll_interval", "dev_eui_base", "join_eui", "key_sheet",
                 "stations_per_worker")

# Locust marks a worker missing after 3 heartbeats (one a second) go unanswered; on a shared
# CI machine at load average 7-9 a worker's gevent loop was starved that long during spawn, and
# the master re-dispatched its users (issue #20). 20 s rides that out; a worker that really
# dies is still reported 20 s after its last heartbeat.
HEARTBEAT_LIVENESS = 20

# Options a worker takes from its own command line, not from the master's (Locust copies the
# master's custom options onto every worker): where this host listens.
WORKER_OWN_OPTIONS = ("cr_host",)


_STAGE = re.compile(r"\s*(\d+)\s+in\s+(.+?)\s*")


def parse_stages(text: str) -> list[tuple[int, float]]:
    """``200 in 10s, 1000 in 60s`` -> [(200, 10.0), (1000, 60.0)]: devices by the stage's end,
    at seconds since the start."""
    stages, elapsed = [], 0.0
    for part in text.split(","):
        match = _STAGE.fullmatch(part)
        if match is None:
            raise ValueError(f"a stage is 'DEVICES in DURATION' (e.g. '200 in 10s'), not {part!r}")
        seconds = parse_duration(match[2])
        if not seconds > 0:
            raise ValueError(f"a stage lasts more than 0 s: {part!r}")
        elapsed += seconds
        stages.append((int(match[1]), elapsed))
    if not stages:
        raise ValueError("no stages")
    return stages


def _checked_by(parse: Any) -> Any:
    """An argparse type that keeps the text once ``parse`` reads it (its ValueError, as
    argparse's error)."""

    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def _parse_eui(text: str) -> int:
    # here, not at the top: the codec package (jsonschema) is not needed for other kinds' --help
    from otaharness.protocols.basics_station import parse_eui

    return parse_eui(text)


_stages = _checked_by(parse_stages)
_eui = _checked_by(_parse_eui)


def _share(text: str) -> float:
    value = float(text.rstrip("%"))
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(
            f"a share of the fleet is above 0 and at most 100 %, not {text!r}")
    return value


def add_load_options(parser: Any) -> None:
    fleet = parser.add_argument_group(
        "otaharness fleet", "the emulated devices (each Locust user is one device)")
    fleet.add_argument("--kind", choices=KIND_NAMES, default="cpe",
                       help="device kind (set by `otaharness load KIND`)")
    fleet.add_argument("--ca", help="CA file the servers' certificates chain to (serve prints it "
                       "as `ca`; default: the system's trust store)")
    fleet.add_argument("--device-prefix", default="", metavar="TEXT",
                       help="device names are TEXT + a 9-digit number worker_index * 1000000 + n "
                       "(default per kind, e.g. OTAH for CPE serials)")
    fleet.add_argument("--seed", type=int, default=0,
                       help="seed of protocol randomness (retry back-off); keys, nonces and "
                       "tokens come from the CSPRNG")
    add_fault_arguments(fleet, devices_counted="the worker's devices, counted from 1 in the "
                        "order they start")
    fleet.add_argument("--reboot-wave-every", type=float, default=0.0, metavar="SECONDS",
                       help="reboot a share of the fleet every SECONDS (a different share each "
                       "wave)")
    fleet.add_argument("--reboot-wave-share", type=_share, default=10.0, metavar="PERCENT",
                       help="share of the fleet each reboot wave takes (default 10)")
    fleet.add_argument("--stages", metavar="'N in DURATION, ...'", type=_stages,
                       help="ramp the fleet up in stages, e.g. '200 in 10s, 1000 in 60s' "
                       "(each stage reaches its size by its end; replaces -u/-r)")
    fleet.add_argument("--until-upgraded", action="store_true",
                       help="stop the run once every device's upgrade has ended: as many "
                       "upgraded or failed as users, none in progress")
    fleet.add_argument("--heartbeat-liveness", type=int, default=HEARTBEAT_LIVENESS,
                       metavar="SECONDS", help="seconds without a worker's heartbeat before the "
                       "master marks it missing (Locust's own is 3: too short for a worker "
                       "starved of CPU on a loaded machine; default %(default)s)")
    fleet.add_argument("--fleet-report", metavar="FILE",
                       help="write the fleet's totals (JSON) here at the end (master)")

    cpe = parser.add_argument_group("cpe", "TR-069 CPEs (emulators/cpe)")
    cpe.add_argument("--acs-url", type=url_argument(HTTP),
                     help="the ACS's CWMP URL (serve tr069 prints it as `acs`)")
    cpe.add_argument("--cpe-profile", default="mikrotik", choices=("mikrotik", "generic"),
                     help="mikrotik: a RouterOS CHR, TR-181 (default); generic: a TR-098 "
                     "gateway with one firmware image")
    cpe.add_argument("--username", default="", help="CPE -> ACS user name")
    cpe.add_argument("--password", default="",
                     help="CPE -> ACS password (Basic or Digest, as the ACS asks)")
    cpe.add_argument("--cr-host", default="127.0.0.1",
                     help="address of the worker's Connection Request listener (give one the "
                     "ACS can reach when it runs on another host)")
    cpe.add_argument("--periodic-interval", type=float, default=None, metavar="SECONDS",
                     help="PeriodicInformInterval (default: the data model's)")
    cpe.add_argument("--boot-seconds", type=float, default=30.0,
                     help="seconds a reboot takes (default 30)")

    olt = parser.add_argument_group(
        "olt-gateway", "OLT gateways, one field device each (emulators/olt_gateway); each onboards "
        "itself through the API with the tenant's token")
    olt.add_argument("--api", type=url_argument(HTTP),
                     help="firmware REST API base URL (serve olt prints it as `olt`)")
    olt.add_argument("--mqtt", type=url_argument(MQTT), help="broker URL (serve prints it as `mqtt`)")
    olt.add_argument("--olt-token", help="the tenant's bearer token (serve olt: tokens.olt)")
    olt.add_argument("--gateway-type", help="device type id of the gateways")
    olt.add_argument("--device-type", help="device type id of the field devices")

    station = parser.add_argument_group(
        "basics-station", "LoRa Basics Stations (emulators/basics_station), each EUI "
        "--station-eui-base + worker_index * 1000000 + n; each gets its credentials from the "
        "back end's admin API, as `otaharness cups station-credentials` does")
    station.add_argument("--cups-url", type=url_argument(HTTP),
                         help="the CUPS URL the stations start with (serve cups "
                         "prints it as `cups`)")
    station.add_argument("--cups-token", help="the admin API's bearer token, to have each new "
                         "station issued its credential set (serve cups: tokens.cups); without "
                         "it the stations present none (--ca is their only trust)")
    station.add_argument("--station-auth", choices=("certificate", "token"),
                         default="certificate", help="the credential the back end issues each "
                         "station: a client certificate with CN = its EUI, or a bearer token")
    station.add_argument("--station-package", default="v0",
                         help="the package a new station runs (version.txt; default v0)")
    station.add_argument("--station-sig-key", action="append", metavar="FILE",
                         help="a firmware signature key (64-byte sig-N.key of `otaharness cups "
                         "prepare`), installed as sig-0.key, sig-1.key, ... (repeat)")
    station.add_argument("--station-eui-base", default="0016C001F0000000", metavar="EUI", type=_eui,
                         help="the first station's EUI is this + 1 (default 0016C001F0000000)")
    station.add_argument("--cups-interval", type=float, metavar="SECONDS",
                         help="seconds between a station's CUPS checks (default 86400, the "
                         "station's own)")
    station.add_argument("--cups-resync-interval", type=float, metavar="SECONDS",
                         help="seconds to the next CUPS check after a failed one (default 60)")

    tracker = parser.add_argument_group(
        "aws-tracker", "nRF9160 asset trackers (emulators/aws_tracker), things named --device-prefix "
        "(default tracker-) + worker_index * 1000000 + n, taking AWS IoT Jobs FOTA jobs over "
        "--mqtt (mqtts:// for mutual TLS, as real trackers; serve aws-iot prints it as `mqtts`) "
        "and downloading in HTTPS range requests")
    tracker.add_argument("--aws-api", metavar="URL", type=url_argument(HTTP),
                         help="the IoT control plane each new "
                         "tracker's thing, keys and certificate are created on (serve aws-iot: "
                         "`aws`; AWS: https://iot.REGION.amazonaws.com), signed with the "
                         "environment's AWS credentials")
    tracker.add_argument("--aws-region", help="region of --aws-api (default $AWS_DEFAULT_REGION "
                         "or us-east-1)")
    tracker.add_argument("--iot-policy", metavar="NAME", help="AWS IoT policy attached to each "
                         "new certificate (AWS needs one; serve aws-iot enforces its own rules)")
    tracker.add_argument("--credentials-dir", metavar="DIR", help="instead of --aws-api: things "
                         "provisioned already, <thing>.cert.pem and <thing>.private.key each")
    tracker.add_argument("--s3-endpoint", metavar="URL", type=url_argument(HTTP),
                         help="where <bucket>.s3.amazonaws.com "
                         "is dialled (serve aws-iot: `aws`; default: the job document's host)")
    tracker.add_argument("--server-name", metavar="HOST", help="host name the broker's "
                         "certificate is checked for (serve aws-iot: "
                         "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com; default the --mqtt host)")
    tracker.add_argument("--app-version", default="1.0.0",
                         help="the version a new tracker runs (default 1.0.0)")
    tracker.add_argument("--fragment-size", type=int, default=2048, metavar="BYTES",
                         help="bytes per range request (default 2048, the nRF's)")
    tracker.add_argument("--tracker-reboot-seconds", type=float, default=10.0, metavar="SECONDS",
                         help="seconds a tracker takes to boot (default 10)")


    lorawan = parser.add_argument_group(
        "lorawan", "LoRaWAN end devices (emulators/lorawan_device, OTAA, with the FUOTA packages "
        "TS003-TS006) on a radio medium per worker with its own Basics Stations (EUI "
        "--station-eui-base + worker_index * 1000000 + s; with --cups-url and --cups-token each is "
        "registered and issued its credentials by the CUPS admin API); devices DevEUI "
        "--dev-eui-base + worker_index * 1000000 + n, keys from the CSPRNG, registered through the "
        "application API; the upgrade is a FUOTA campaign the operator starts")
    lorawan.add_argument("--lns-url", type=url_argument(WEBSOCKET),
                         help="the LNS the stations connect to (serve lorawan "
                         "prints it as `lns`)")
    lorawan.add_argument("--app-api", metavar="URL", type=url_argument(HTTP),
                         help="the network server's application API "
                         "each new device is registered with (serve lorawan: `lorawan-app`)")
    lorawan.add_argument("--app-token", help="its bearer token (serve: tokens.lorawan-app)")
    lorawan.add_argument("--fuota-verify-key", metavar="PEM", help="the firmware team's Ed25519 "
                         "public key the devices check images with")
    lorawan.add_argument("--lorawan-firmware-version", default="1.0.0", metavar="X.Y.Z",
                         help="the version a new device runs (default 1.0.0)")
    lorawan.add_argument("--lorawan-hw-version", default="0x00AB0001", metavar="HEX",
                         help="the devices' hardware version word (default 0x00AB0001)")
    lorawan.add_argument("--poll-interval", type=float, default=60.0, metavar="SECONDS",
                         help="seconds between a device's uplinks when it has nothing to answer "
                         "(the class A windows the server's requests ride in; default 60)")
    lorawan.add_argument("--dev-eui-base", default="0004A30B00000000", metavar="EUI", type=_eui,
                         help="the first device's DevEUI is this + 1 (default 0004A30B00000000)")
    lorawan.add_argument("--join-eui", default="70B3D57ED0000001", metavar="EUI", type=_eui,
                         help="the devices' JoinEUI (AppEUI) in their join requests (default "
                         "70B3D57ED0000001)")
    lorawan.add_argument("--key-sheet", metavar="DIR", help="write each new device's "
                         "{dev_eui, gen_app_key} to DIR/<DevEUI>.json (0600): what the FUOTA "
                         "campaign needs")
    lorawan.add_argument("--stations-per-worker", type=int, default=1, metavar="N",
                         help="Basics Stations on each worker's radio medium (default 1)")


REQUIRED = {"cpe": ("acs_url",),
            "olt-gateway": ("api", "mqtt", "olt_token", "gateway_type", "device_type"),
            "basics-station": ("cups_url",),
            "aws-tracker": ("mqtt", "aws_api|credentials_dir"),
            "lorawan": ("lns_url", "app_api", "fuota_verify_key")}


def missing_options(options: Any) -> list[str]:
    """The kind's required options the run lacks, as command-line flags (``a|b``: either)."""
    return [" or ".join("--" + name.replace("_", "-") for name in required.split("|"))
            for required in REQUIRED.get(options.kind, ())
            if not any(getattr(options, name, None) for name in required.split("|"))]


def host_options(options: Any, own: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the device host needs, the worker's ``own`` options (``WORKER_OWN_OPTIONS``, read
    from its command line before the master's arrived) over the master's."""
    return {**{name: getattr(options, name, None) for name in HOST_OPTIONS}, **(own or {})}
