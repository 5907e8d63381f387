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

The same lines in the other flows, the scenario's `@embedded:<flow>` tag saying which (AWS IoT
without one); each flow's part below says what its lines run::

    @embedded:olt      Given a device "lamp1" of type "switch" running version 2.0.0 behind gateway gw1
                       And firmware 2.1.0 of 64 KiB is available
                       When I upgrade lamp1 to version 2.1.0        (an installation, firmware slot)
                       Then soon the installation for lamp1 ends succeeded
    @embedded:tr069    Given 2 routers running RouterOS 6.48
                       When I create the upgrade batch "spring" to 6.48.4 at any Inform
                       Then soon the batch ends Ready
    @embedded:cups     Given a Basics station "gw1" running package v0
                       When I upgrade gw1 to version v1             (at its next daily CUPS check)
    @embedded:fuota    Given 3 FUOTA devices running version 1.0.0
                       When I start a campaign to version 1.1.0 with FEC and redundancy 20%
                       Then the campaign ends finished

Natural variants are accepted: a/an/the, quoted or bare names, `version 2` or `firmware "2.0.0"`,
one name or a list (`t1, t2 and t3`), singular or plural, "every"/"all"/"each". A quoted name
needs the word "tracker" (`the tracker "t1" runs …`): `"a" runs firmware …` is the FUOTA
flow's. Detailed steps of aws_iot, assertions and common are tried first (behave tries step
modules in file order).
"""

import asyncio
import hashlib
import re

from behave import given, then, use_step_matcher, when
from behave.matchers import get_step_matcher_factory
from otaharness.fixtures import fixture_path

from otaharness.bdd.support import ota
from otaharness.units import parse_duration, parse_size

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
_VERSION = r'(?:(?:firmware|version|RouterOS|package)\s+)*"?(?P<version>[\w.+-]+)"?'
_ARTICLE = r"(?:(?:a|an|the)\s+)?"
_TRACKER = (r"(?:nRF9160\s+|MikroTik\s+(?:CHR\s+)?|(?:LoRa\s+)?Basics\s+|FUOTA\s+|LoRaWAN\s+)?(?:asset\s+)?"
            r"(?:tracker|device|router|station)s?\s+")
_EVERY = (r"(?:every|each|all(?:\s+the)?|all\s+of\s+the|both(?:\s+the)?|the\s+(?:two|three|four|\d+))\s+"
          r"(?:(?:asset|FUOTA|LoRaWAN|MikroTik|Basics)\s+)?(?:trackers?|devices?|routers?|stations?|sensors?|gateways?)")

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
    return (rf"{_ARTICLE}{_TRACKER}(?:(?:named|called)\s+)?{_NAMES}{rest}", rf"{_BARE_NAMES}{rest}")


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


def _background(context, coroutine) -> None:
    """A watcher on the scenario's loop (a fault waiting for its moment), cancelled at the end if
    its moment never came: the check that the fault happened says so, not a leftover task."""
    runtime = ota(context)
    task = runtime.loop.create_task(coroutine)

    async def cancel() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    runtime.add_cleanup(cancel)


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


def _firmware_available(context, version: str, size: str | None = None) -> None:
    """The image for ``version`` in the FOTA bucket as `fw-<version>.hex` (the bucket made once;
    10 KiB unless said), unless the scenario said it is missing."""
    values = _bucket(context)
    if version not in values.get("firmware", {}) and version not in _missing(context):
        sized = f" of {size}" if size else ""
        _run(context, f"Given the firmware `{version}`{sized} is in the FOTA bucket "
                      f"`${{fotaBucketName}}` as `fw-{version}.hex`")


def _flow(context) -> str:
    """The flow the scenario is about: its `@embedded:<flow>` tag (AWS IoT without one)."""
    for tag in context.scenario.effective_tags:
        if tag.startswith("embedded:"):
            return tag.removeprefix("embedded:")
    return "aws-iot"


_SIZE = r"(?P<size>\d+(?:\.\d+)?\s*(?:[KMG]i?B|bytes?))"
_OF_SIZE = rf"(?:\s+\(?(?:of\s+|with\s+an?\s+)?{_SIZE}(?:\s+image)?\)?)?"
_SIGNED = r"(?:,?\s+signed\s+with\s+(?:an?\s+|the\s+)?(?P<unknown_key>unknown|other|another|wrong|rogue)\s+key)?"
_OF_TYPE = r'(?:\s+of\s+(?:the\s+)?type\s+"?(?P<kind>[\w.-]+)"?)?'
_BEHIND = r'(?:\s+behind\s+(?:the\s+)?gateway\s+"?(?P<gateway>[\w.-]+)"?)?'


# -- the firmware REST flow (olt): devices behind a gateway, installations into their slots ----

OLT_DEFAULT_TYPE, OLT_DEFAULT_GATEWAY, OLT_DEFAULT_SIZE, OLT_SLOT = "switch", "gw1", "32 KiB", "firmware"
_OLT_STATES = {"succeeded": "succeeded", "failed": "failed", "canceled": "canceled",
               "cancelled": "canceled", "scheduled": "scheduled", "downloading": "downloading",
               "downloaded": "downloaded", "installing": "installing"}


def _olt(context) -> dict:
    """What the layer remembers of the olt flow: device types made, each device's gateway and
    installation."""
    return _layer(context).setdefault("olt", {"types": [], "gateway_of": {}, "installations": {},
                                              "power_cuts": []})


def _olt_firmware(version: str) -> str:
    return f"firmware {version}"


def _olt_devices(context, names: list[str], version: str, kind: str | None,
                 gateway: str | None) -> None:
    """Devices of a type behind a gateway (switched on the first time), their firmware slot
    holding an image of this version, as a device leaves the factory."""
    from otaharness.emulators.olt_gateway.device import SlotImage  # the device's slot, set before the flow

    layer, kind, gateway = _olt(context), kind or OLT_DEFAULT_TYPE, gateway or OLT_DEFAULT_GATEWAY
    if kind not in layer["types"]:
        _run(context, f'Given the device type "{kind}" declares the firmware, bootloader and '
                      "configuration slots")
        layer["types"].append(kind)
    for name in names:
        _run(context, f'Given gateway "{gateway}" connects device "{name}" of type "{kind}"')
        image = ota(context).rng(f"declarative factory image {name} {version}").randbytes(4096)
        context.olt_platform.field_device(name).slots[OLT_SLOT] = SlotImage(
            version, hashlib.sha256(image).hexdigest(), image)
        layer["gateway_of"][name] = gateway
        if name not in _trackers(context):
            _trackers(context).append(name)


def _olt_firmware_available(context, version: str, size: str | None) -> None:
    platform = getattr(context, "olt_platform", None)
    if platform is None or _olt_firmware(version) not in platform.images:
        _run(context, f'Given firmware "{_olt_firmware(version)}" version "{version}" with a '
                      f"{size or OLT_DEFAULT_SIZE} image")


def _olt_upgrade(context, names: list[str], version: str) -> None:
    """An installation of the version's firmware into each device's firmware slot."""
    _olt_firmware_available(context, version, None)
    runtime, layer = ota(context), _olt(context)
    for name in names:
        _run(context, f'When I install firmware "{_olt_firmware(version)}" into the {OLT_SLOT} '
                      f'slot of device "{name}"')
        layer["installations"][name] = runtime.values["installation"]
        gateway = layer["gateway_of"].get(name)
        if gateway in layer["power_cuts"]:
            layer["power_cuts"].remove(gateway)
            _olt_power_cut_mid_download(context, gateway, runtime.values["installation"]["id"],
                                        len(context.olt_platform.images[_olt_firmware(version)]))


def _olt_power_cut_mid_download(context, gateway: str, installation_id: str, size: int) -> None:
    """The gateway's link slowed so the download takes a while; once a quarter of the image is
    in its flash the gateway loses power, and the link is fast again."""
    runtime = ota(context)
    emulator = context.olt_platform.gateway(gateway)
    quarter = max(1, size // 4)
    assert runtime.run_until(lambda: len(emulator.flash.get(installation_id, b"")) >= quarter,
                             timeout=600), f"gateway {gateway} never got a quarter of the image"
    _run(context, f'When device "{gateway}" loses power',
         f'And the link between "{gateway}" and the OLT endpoint is restored')


def _olt_runs(context, name: str, version: str) -> None:
    """The device's slot holds this version, and the bytes of its firmware when the platform
    hosts one (judged from the device's non-volatile memory)."""
    platform = context.olt_platform
    held = platform.field_device(name).slots.get(OLT_SLOT)
    assert held is not None, f"device {name}'s {OLT_SLOT} slot is empty"
    assert held.version == version, f"device {name} runs {held.version}, not {version}"
    image = platform.images.get(_olt_firmware(version))
    assert image is None or held.data == image, (
        f"device {name}'s {OLT_SLOT} slot holds other bytes than firmware {version}")


def _olt_ends(context, name: str, state: str) -> None:
    words = " ".join(state.lower().replace("_", " ").split())
    if words not in _OLT_STATES:
        raise ValueError(f"no installation state {state!r}; states: {', '.join(_OLT_STATES)}")
    installation = _olt(context)["installations"].get(name)
    assert installation is not None, f"no installation for {name} in this scenario"
    ota(context).values["installation"] = installation
    _run(context, f"Then the installation is {_OLT_STATES[words]}")


# -- TR-069 (MikroTik CHR routers, an ACS upgrade batch) ------------------------------------------

TR069_FACTORY_VERSION = "6.48"  # what the emulated routers leave the factory with
TR069_PACKAGES = ("routeros-x86-{v}.npk", "tr069-client-{v}.npk")  # fixtures/tr069
TR069_GROUP = "MikroTik CHR"
# A quarter of the routers' factory hour: a batch's Download (at an Inform), a failed attempt and
# its retry at the next Inform all come within the hour that `soon` waits.
TR069_INFORM_INTERVAL = "15 minutes"
_TR069_STATES = {"succeeded": "Ready", "ready": "Ready", "failed": "Error", "error": "Error",
                 "queued": "queued", "downloading": "downloading", "installed": "installed",
                 "discarded": "discarded"}


def _tr069(context) -> dict:
    """What the layer remembers of the TR-069 flow: the versions uploaded, each router's batch."""
    return _layer(context).setdefault("tr069", {"uploaded": [], "batch_of": {}})


def _tr069_routers(context, names: list[str], version: str) -> None:
    if version != TR069_FACTORY_VERSION:
        raise ValueError(f"the emulated MikroTik CHR routers run RouterOS {TR069_FACTORY_VERSION} "
                         f"when switched on, not {version}")
    _run(context, "Given the MikroTik CHR routers " + " and ".join(f'"{n}"' for n in names)
         + f" are switched on, informing every {TR069_INFORM_INTERVAL}")
    _trackers(context).extend(name for name in names if name not in _trackers(context))


def _tr069_firmware_available(context, version: str) -> None:
    """The MikroTik upgrade XML and its packages uploaded under Files for the routers' group."""
    layer = _tr069(context)
    if version in layer["uploaded"]:
        return
    packages = [package.format(v=version) for package in TR069_PACKAGES]
    if not all(fixture_path("tr069", package).is_file() for package in packages):
        # said here, not as the upload step's missing file three steps down
        known = sorted(path.name.removeprefix("routeros-x86-").removesuffix(".npk")
                       for path in fixture_path("tr069").glob("routeros-x86-*.npk"))
        raise ValueError(f"no RouterOS {version} packages in fixtures/tr069 (the TR-069 flow has "
                         f"{', '.join(known)}); for an upgrade that fails, take a package away "
                         '(`the operator deletes the file "tr069-client-6.48.4.npk"`) or damage '
                         'it (`a corrupted copy of "routeros-x86-6.48.4.npk"`)')
    xml = f"upgrade_{version}.xml"
    rows = "\n".join(f"  | {file} | 1 | E48D8C | CHR | {version} |" for file in [*packages, xml])
    _run(context,
         f'Given the operator writes the upgrade file "{xml}" linking "{packages[0]}" and '
         f'"{packages[1]}" on the ACS file server',
         "And the operator uploads these files",
         "  | file | type | OUI | product class | version |", rows)
    if not layer["uploaded"]:
        _run(context, f'Given the operator creates the group "{TR069_GROUP}" for OUI "E48D8C" and '
                      'product class "CHR"')
    layer["uploaded"].append(version)


def _tr069_batch(context, batch: str, names: list[str], version: str, *, event: str = "Inform",
                 attempts: int | None = None, days: str | None = None,
                 hours: str | None = None) -> None:
    """An ACS upgrade batch of the routers' group from the version they run to this one."""
    _tr069_firmware_available(context, version)
    rows = {"group": TR069_GROUP, "original version": TR069_FACTORY_VERSION,
            "file": f"upgrade_{version}.xml", "new version": version, "event": event,
            "max number of attempts": attempts, "days": days, "hours": hours}
    table = "\n".join(f"  | {field} | {value} |" for field, value in rows.items() if value)
    _run(context, f'When the operator adds the upgrade batch "{batch}"', "  | field | value |", table)
    for name in names:
        _tr069(context)["batch_of"][name] = batch


def _tr069_power_cut_mid_download(context, name: str) -> None:
    """The router's link to the file server slowed to 1 KiB/s; 2 seconds into its first
    download (whenever a batch sends it) the router loses power and boots again."""
    runtime = ota(context)
    router = runtime.devices[name]
    _run(context, f'Given the link between "{name}" and the files endpoint is throttled to 1 KiB/s')

    async def cut_once_downloading() -> None:
        while not router.nv.downloads_in_progress:
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        await router.power_cut()

    _background(context, cut_once_downloading())


def _tr069_ends(context, name: str, state: str) -> None:
    words = " ".join(state.lower().split())
    if words not in _TR069_STATES:
        raise ValueError(f"no batch state {state!r}; states: {', '.join(_TR069_STATES)}")
    batch = _tr069(context)["batch_of"].get(name)
    assert batch is not None, f"no upgrade batch for {name} in this scenario"
    _run(context, f'Then the status of "{name}" in batch "{batch}" is {_TR069_STATES[words]}')


# -- CUPS (LoRa Basics Stations asking their CUPS server for updates every 24 hours) ----------

CUPS_KEY = "release"  # the firmware team's signature key, on every station of the layer
CUPS_UNKNOWN_KEY = "unknown"  # a key no station of the layer holds
CUPS_DEFAULT_SIZE = "16 KiB"  # an update big enough to be cut in the middle
CUPS_POWER_CUT_RATE = "2 KiB/s"  # the station's link while a power cut waits for its moment


def _cups(context) -> dict:
    """What the layer remembers of the CUPS flow: update files made, each station's packages."""
    return _layer(context).setdefault("cups", {"files": [], "runs": {}, "wants": {}, "signers": {},
                                               "power_cuts": [], "cut_at": {}})


def _cups_key(context) -> None:
    layer = _cups(context)
    if not layer.get("key"):
        _run(context, f'Given the firmware team prepares the signature key "{CUPS_KEY}"')
        layer["key"] = CUPS_KEY


def _cups_stations(context, names: list[str], version: str) -> None:
    """Stations provisioned with this package and the team's key, switched on, on the LNS."""
    _cups_key(context)
    for name in names:
        _run(context, f'Given station "{name}" is provisioned with package "{version}" and the '
                      f'signature key "{CUPS_KEY}"',
             f'And station "{name}" is switched on',
             f'Then soon station "{name}" is connected to the LNS')
        _cups(context)["runs"][name] = version
        if name not in _trackers(context):
            _trackers(context).append(name)


def _cups_update_file(context, version: str, size: str | None, signed_by: str = CUPS_KEY) -> str:
    """The update file `<version>.bin` that installs this package, signed with the team's key
    (or a key no station holds)."""
    file, layer = f"{version}.bin", _cups(context)
    if file not in layer["files"]:
        _cups_key(context)
        if signed_by != CUPS_KEY:
            _run(context, f'Given the firmware team prepares the signature key "{signed_by}"')
        _run(context, f'Given an update file "{file}" of {size or CUPS_DEFAULT_SIZE} that installs '
                      f'package "{version}"',
             f'And the firmware team signs "{file}" with the key "{signed_by}"')
        layer["files"].append(file)
        layer["signers"][file] = signed_by
    return file


def _cups_upgrade(context, names: list[str], version: str) -> None:
    """The operator uploads the update for each station: each gets it at its next CUPS check."""
    file = _cups_update_file(context, version, None)
    for name in names:
        _run(context, f'When the operator uploads "{file}" as package "{version}" for station "{name}"')
        _cups(context)["wants"][name] = version
        if name in _cups(context)["power_cuts"]:
            _cups(context)["power_cuts"].remove(name)
            _cups_power_cut_mid_download(context, name, file)


def _cups_power_cut_mid_download(context, name: str, file: str) -> None:
    """The station's link to CUPS slowed; once half the update's bytes have reached the station
    (counted on its link from now: the next CUPS answers carry the update) it loses power, and
    the link is fast again. The bytes it had are kept as `cut_at` (the wire's count)."""
    runtime = ota(context)
    size = (context.cups_flow.workspace / "firmware" / file).stat().st_size
    url = runtime.endpoint_url("cups")
    _run(context, f'Given the link between "{name}" and the cups endpoint is throttled to {CUPS_POWER_CUT_RATE}')
    proxy = runtime.proxy_for(url)
    before = proxy.counters(name).bytes_to_device

    async def cut_halfway() -> None:
        while (received := proxy.counters(name).bytes_to_device - before) < size // 2:
            await asyncio.sleep(0.5)
        _cups(context)["cut_at"][name] = (received, size)
        await runtime.devices[name].power_cut()
        await runtime.set_link_fault(name, url, None)

    _background(context, cut_halfway())


def _cups_ends(context, name: str, state: str) -> None:
    """Succeeded: the station reported the package it was given to the LNS; failed: CUPS
    withheld an update signed with a key the station lacks, or the station refused the update
    it received (not run, removed), and it still runs, and reports, the package it had."""
    words = state.strip().lower()
    layer = _cups(context)
    assert name in layer["wants"], f"no upgrade of {name} in this scenario"
    if words in ("succeeded", "done", "installed"):
        package = layer["wants"][name]
    elif words in ("failed", "refused"):
        package, signer = layer["runs"][name], layer["signers"][f"{layer['wants'][name]}.bin"]
        if signer != CUPS_KEY:  # CUPS withholds an update signed with a key the station lacks
            _run(context, f'Then the CUPS server sent station "{name}" no update because it '
                          f'lacks the key "{signer}"')
        else:  # every refusal the station notes is an "abort: …"
            _run(context, f'Then station "{name}" refused the update: abort')
        _run(context, f'Then station "{name}" still runs package "{package}"')
    else:
        raise ValueError(f"no upgrade state {state!r} for a station; states: succeeded, failed")
    _run(context, f'Then the registry shows package "{package}" reported by station "{name}" to the LNS')


# -- FUOTA (LoRaWAN devices, a multicast campaign through one gateway) ---------------------------

FUOTA_FACTORY_VERSION = "1.0.0"  # what the emulated FUOTA devices run when they start
FUOTA_GATEWAY, FUOTA_DEFAULT_SIZE = "gw1", "3 KiB"
_CAMPAIGN_OPTIONS = {  # the campaign's usual settings in words → (setting, JSON value)
    r"without\s+FEC": lambda m: ("fec", "false"),
    r"with\s+FEC": lambda m: ("fec", "true"),
    r"(?:with\s+)?(?:a\s+)?redundancy\s+(?:of\s+)?(\d+(?:\.\d+)?)\s*%": lambda m: ("redundancy", str(float(m[1]) / 100)),
    r"(?:with\s+)?at\s+most\s+(\d+)\s+rounds?": lambda m: ("max_rounds", m[1]),
    r"(?:with\s+)?a\s+success\s+threshold\s+of\s+(\d+(?:\.\d+)?)\s*%":
        lambda m: ("success_threshold", str(float(m[1]) / 100)),
}


def _fuota_layer(context) -> dict:
    return _layer(context).setdefault("fuota", {"gateway": False, "image": None})


def _fuota_devices(context, names: list[str], version: str) -> None:
    """FUOTA devices (class A, their agents polling) near the gateway, placed 100 m apart."""
    if version != FUOTA_FACTORY_VERSION:
        raise ValueError(f"the emulated FUOTA devices run {FUOTA_FACTORY_VERSION} when they start, not {version}")
    layer = _fuota_layer(context)
    if not layer["gateway"]:
        _run(context, f'Given a LoRaWAN gateway "{FUOTA_GATEWAY}" at 0 m, 0 m')
        layer["gateway"] = True
    for name in names:
        _run(context, f'Given a FUOTA device "{name}" at {500 + 100 * len(_trackers(context))} m, 0 m')
        _trackers(context).append(name)


def _fuota_image(context, version: str, size: str | None, variant: str = "") -> None:
    layer = _fuota_layer(context)
    if layer["image"] != version or size or variant:
        kib = parse_size(size or FUOTA_DEFAULT_SIZE) / 1024
        _run(context, f"Given a firmware image of {kib:g} KiB for version {version}{variant}")
        layer["image"] = version


def _fuota_version(text: str) -> int:
    """`1.1.0` as the FUOTA devices number it (0x01010000)."""
    major, minor, patch = (int(part) for part in text.split("."))
    return major << 24 | minor << 16 | patch << 8


def _campaign_options(text: str) -> dict:
    """`with FEC, redundancy 20% and at most 2 rounds` → the campaign's settings."""
    return _options_in_words(text, _CAMPAIGN_OPTIONS, "campaign", "`with FEC` or `without FEC`, "
                             "`redundancy 20%`, `at most 2 rounds`, `a success threshold of 100%`")


def _fuota_campaign(context, names: list[str], version: str, options: dict) -> None:
    """The campaign created with the image of this version and started."""
    _fuota_image(context, version, None)
    who = ", ".join(f'"{name}"' for name in names)
    if not options:
        _run(context, f"When a FUOTA campaign starts for {who}")
        return
    table = "\n".join(f"  | {key} | {value} |" for key, value in options.items())
    _run(context, f"When a FUOTA campaign starts for {who} with", "  | setting | value |", table)


# -- devices and firmware ------------------------------------------------------------------------


@intent(given)(*_who(rf"{_OF_TYPE}\s+(?:is\s+|are\s+)?(?:running|runs|run|on)\s+{_VERSION}{_BEHIND}"))
def trackers_running(context, names, version, kind=None, gateway=None):
    """Devices switched on and connected, running this version: `a tracker "t1" running version
    1.0.0`, `the trackers t1 and t2 run firmware "1.0.0"` (nRF9160 asset trackers); in the
    firmware REST flow `a device "lamp1" of type "switch" running version 1.0.0 behind gateway
    gw1` (type `switch` and gateway `gw1` unless said)."""
    if _flow(context) == "olt":
        _olt_devices(context, _names(names), version, kind, gateway)
        return
    if _flow(context) == "tr069" and not (kind or gateway):
        _tr069_routers(context, _names(names), version)
        return
    if _flow(context) == "cups" and not (kind or gateway):
        _cups_stations(context, _names(names), version)
        return
    if _flow(context) == "fuota" and not (kind or gateway):
        _fuota_devices(context, _names(names), version)
        return
    if kind or gateway:
        raise ValueError("a type or a gateway is said of devices of the firmware REST flow (@embedded:olt)")
    for name in _names(names):
        _switched_on(context, name, version)


@intent(given)(rf"(?P<count>\d+)\s+{_TRACKER[:-3]}{_OF_TYPE}\s+(?:are\s+)?(?:running|on)\s+{_VERSION}{_BEHIND}")
def count_trackers_running(context, count, version, kind=None, gateway=None):
    """N devices running this version: `3 trackers running version 1.0.0` (named t1 … tN); in
    the firmware REST flow `2 devices of type switch running version 1.0.0` (named d1 … dN)."""
    if _flow(context) == "olt":
        _olt_devices(context, [f"d{index}" for index in range(1, int(count) + 1)], version,
                     kind, gateway)
        return
    if _flow(context) == "tr069":
        _tr069_routers(context, [f"cpe{index}" for index in range(1, int(count) + 1)], version)
        return
    if _flow(context) == "cups":
        _cups_stations(context, [f"gw{index}" for index in range(1, int(count) + 1)], version)
        return
    if _flow(context) == "fuota":
        _fuota_devices(context, [f"d{index}" for index in range(1, int(count) + 1)], version)
        return
    for index in range(1, int(count) + 1):
        _switched_on(context, f"t{index}", version)


@intent(given, when)(
    rf"{_ARTICLE}(?:new\s+)?(?:firmware|RouterOS|package)\s+(?:version\s+)?\"?(?P<version>[\w.+-]+)\"?{_OF_SIZE}{_SIGNED}\s+is\s+"
    r"(?:available|published|uploaded|in\s+the\s+bucket)",
    rf"version\s+\"?(?P<version>[\w.+-]+)\"?\s+of\s+the\s+firmware{_OF_SIZE}{_SIGNED}\s+is\s+"
    r"(?:available|published|uploaded)")
def firmware_available(context, version, size=None, unknown_key=None):
    """The firmware image of this version is published, ready for upgrades: `firmware 1.0.1 is
    available`, `version "2.0.0" of the firmware is published` (AWS IoT: in the FOTA bucket as
    `fw-<version>.hex`; TR-069: the fixtures' RouterOS files); with its size in the other flows,
    `firmware 2.1.0 of 64 KiB is available` (AWS IoT 10 KiB, olt 32 KiB, CUPS 16 KiB, FUOTA 3 KiB
    unless said); CUPS and
    FUOTA images the devices must refuse: `firmware v1 signed with an unknown key is available`."""
    if unknown_key and _flow(context) not in ("cups", "fuota"):
        raise ValueError("only CUPS and FUOTA images are signed for the devices")
    if _flow(context) == "olt":
        _olt_firmware_available(context, version, size)
        return
    if _flow(context) == "cups":
        _cups_update_file(context, version, size, signed_by=CUPS_UNKNOWN_KEY if unknown_key else CUPS_KEY)
        return
    if _flow(context) == "fuota":
        _fuota_image(context, version, size, " signed with an unknown key" if unknown_key else "")
        return
    if _flow(context) == "tr069":
        if size:
            raise ValueError("the TR-069 flow's RouterOS packages are the fixtures' files, of their "
                             'own sizes: for a file of your size say `the operator\'s file "big.bin" '
                             'is 300 KiB of random bytes`')
        _tr069_firmware_available(context, version)
        return
    _firmware_available(context, version, size)


@intent(given, when)(
    rf"{_ARTICLE}(?:image\s+of\s+)?(?:the\s+)?firmware\s+(?:version\s+)?\"?(?P<version>[\w.+-]+)\"?\s+is\s+"
    r"(?:missing|not\s+available|not\s+in\s+the\s+bucket)")
def firmware_missing(context, version):
    """No image of this version in the FOTA bucket: an upgrade to it names `fw-<version>.hex` of
    10 KiB, as a job made before an upload that never happened does, and S3 does not have it
    (`firmware 9.9.9 is missing`). AWS IoT only: in another flow it would make an AWS bucket the
    scenario never uses, and the upgrade then fail for another reason."""
    if _flow(context) != "aws-iot":
        raise ValueError(f"`firmware {version} is missing` is the AWS IoT flow's (an image not in "
                         f"the FOTA bucket); this scenario is @embedded:{_flow(context)}: leave "
                         "out the firmware's `is available` line instead"
                         + ('; for a router\'s missing package say `the operator deletes the '
                            'file "tr069-client-6.48.4.npk"`' if _flow(context) == "tr069" else ""))
    values = _bucket(context)
    _missing(context).append(version)
    values.setdefault("firmware", {}).setdefault(version, {
        "size": 10240, "bucket": values["fotaBucketName"], "key": f"fw-{version}.hex"})


# -- the upgrade -----------------------------------------------------------------------------------


@intent(when, given)(*(rf"I\s+upgrade\s+{who}" for who in _who(rf"\s+to\s+{_VERSION}")))
def upgrade(context, names, version):
    """Upgrade the devices to this version, its firmware made available first if not yet:
    `I upgrade the tracker "t1" to firmware "1.0.1"`, `I upgrade t1 to version 1.0.1`. AWS IoT: a
    FOTA job per tracker (`job-<tracker>`); olt: an installation into each device's firmware
    slot; TR-069: an upgrade batch `to <version>`, forced now for each router; CUPS: the
    operator's upload for each station (taken at its next daily check); FUOTA: a campaign with
    the default settings."""
    _started(context)
    if _flow(context) == "olt":
        _olt_upgrade(context, _names(names), version)
        return
    if _flow(context) == "cups":
        _cups_upgrade(context, _names(names), version)
        return
    if _flow(context) == "fuota":
        _fuota_campaign(context, _names(names), version, {})
        return
    if _flow(context) == "tr069":  # one batch per version; routers on since join it
        batch = f"to {version}"
        if batch in _tr069(context)["batch_of"].values():
            _run(context, f'When the operator clicks "Find new devices" in batch "{batch}"')
            _tr069(context)["batch_of"].update({name: batch for name in _names(names)})
        else:
            _tr069_batch(context, batch, _names(names), version)
        for name in _names(names):
            _run(context, f'When the operator forces the upgrade of "{name}" in batch "to {version}" now')
        return
    _firmware_available(context, version)
    for name in _names(names):
        _run(context, f"When I create the job `{_job(name)}` upgrading the `{name}` tracker to "
                      f"`{version}` from `fw-{version}.hex`")


@intent(when, given)(rf"I\s+upgrade\s+{_EVERY}\s+to\s+{_VERSION}")
def upgrade_every(context, version):
    """Upgrade each device of the scenario, as `I upgrade t1 to …` does: `I upgrade every
    tracker to 1.0.1`, `I upgrade all the routers to 6.48.4`."""
    upgrade(context, ", ".join(_trackers(context)), version)


_BATCH_OPTIONS = {  # the batch form's usual options in words → (field, value)
    r"at\s+(?:any|every|each|the\s+next)\s+Inform": lambda m: ("event", "Inform"),
    r"at\s+(?:a|the\s+next|every|each)\s+Boot": lambda m: ("event", "Boot"),
    r"(?:with\s+)?at\s+most\s+(\d+)\s+attempts?": lambda m: ("attempts", int(m[1])),
    r"on\s+((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\w*(?:\s*(?:,|and)\s*(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\w*)*)":
        lambda m: ("days", ", ".join(day[:3] for day in re.split(r"\s*(?:,|and)\s*", m[1]))),
    r"(?:between|during)\s+(?:hours\s+)?(\d+)\s*(?:-|and|to)\s*(\d+)(?:\s+o'clock)?":
        lambda m: ("hours", f"{m[1]}-{m[2]}"),
}


def _options_in_words(text: str, options: dict, what: str, hint: str) -> dict:
    """The options said in words (`at any Inform, with at most 2 attempts`) → their fields, by a
    table of patterns; anything else said is an error naming what is understood."""
    found_options, rest = {}, text
    for pattern, field in options.items():
        found = re.search(pattern, rest, re.IGNORECASE)
        if found:
            key, value = field(found)
            found_options[key] = value
            rest = rest[:found.start()] + rest[found.end():]
    if re.sub(r"(?:,|\band\b|\bwith\b|\s)+", "", rest):
        raise ValueError(f"{what} options not understood: {rest.strip()!r}; say {hint}")
    return found_options


def _batch_options(text: str) -> dict:
    """`at any Inform, with at most 2 attempts, on Tue and Wed between 2 and 3` → the form's fields."""
    return _options_in_words(text, _BATCH_OPTIONS, "batch", "`at any Inform` or `at a Boot`, "
                             "`with at most N attempts`, `on Tue and Wed`, `between 2 and 3`")


@intent(when, given)(
    r'I\s+(?:create|add)\s+(?:an?|the)\s+(?:ACS\s+)?(?:upgrade\s+)?batch(?:\s+"(?P<batch>[^"]+)")?'
    rf"\s+(?:(?:upgrading|for)\s+(?:every|all(?:\s+the)?|the)\s+routers?\s+)?to\s+{_VERSION}"
    r"(?P<options>(?:,?\s+(?:and\s+)?(?:at|with|on|between|during)\s+.*)?)")
def create_batch(context, version, batch=None, options=""):
    """An ACS upgrade batch for the routers' group from the version they run to this one (the
    upgrade XML and packages uploaded first if not yet there); the routers get the Download at
    their next such Inform: `I create the upgrade batch "spring" to RouterOS 6.48.4 at any
    Inform with at most 2 attempts` (also `at a Boot`, `on Tue and Wed`, `between 2 and 3`)."""
    _started(context)
    _tr069_batch(context, batch or f"to {version}", list(_trackers(context)), version,
                 **_batch_options(options or ""))


@intent(then)(r'the\s+(?:upgrade\s+)?batch(?:\s+"[^"]+")?\s+(?:ends|ended|is|has\s+ended)\s+'
               r"(?:in\s+)?(?:state\s+)?(?P<state>[A-Za-z_ ]+?)")
def batch_ends(context, state):
    """Every router of the scenario is in this state in its batch: `the batch ends Ready` (or
    `succeeded`; `failed` is Error)."""
    for name in _trackers(context):
        _until_final(context, state, lambda name=name: _tr069_ends(context, name, state))


@intent(when, given)(
    r"I\s+(?:create|start)\s+(?:a|the)\s+(?:FUOTA\s+)?campaign"
    rf"(?:\s+for\s+(?:{_EVERY}|{_NAMES}))?\s+to\s+{_VERSION}"
    r"(?P<options>(?:,?\s+(?:and\s+)?(?:with|without|at|a|redundancy)\b.*)?)")
def create_campaign(context, version, names=None, options=""):
    """A FUOTA campaign for the devices (every device of the scenario unless named) to this
    version, created and started with its settings in words: `I start a campaign to version 1.1.0
    with FEC and redundancy 20%`, `I create the campaign for "a" and "b" to 1.1.0 without FEC, at
    most 2 rounds and a success threshold of 100%`."""
    _started(context)
    who = _names(names) if names else list(_trackers(context))
    _fuota_campaign(context, who, version, _campaign_options(options or ""))


@intent(then)(r"the\s+campaign\s+(?:ends|ended|is|has\s+ended)\s+(?:in\s+)?(?:state\s+)?(?P<state>[A-Za-z_]+)")
def campaign_ends(context, state):
    """The FUOTA campaign is over (time passes until it is) in this state: `the campaign ends
    finished` (or `stopped`)."""
    _run(context, f"Then the FUOTA campaign ends {state.lower()}")


@intent(given, when)(*_who(r"\s+loses?\s+(?P<percent>\d+(?:\.\d+)?)\s*%\s+of\s+(?:its\s+|the\s+|their\s+)?"
                           r"(?P<what>(?:radio\s+)?frames?|fragments?|downlinks?|uplinks?)"))
def loses_frames(context, names, percent, what):
    """A LoRaWAN device's radio link loses this share of frames, both ways, all the time (`a
    loses 30% of its frames`, `the device "a" loses 30% of its frames`), only the frames to it
    (`d1 loses 30% of its downlinks`: unicast, multicast, fragments) or only its own (`… of its
    uplinks`), or the fragments of the campaign's first round (`b loses 100% of the fragments`)."""
    if _flow(context) not in ("fuota", "lorawan"):
        raise ValueError(f"radio frames are lost in the FUOTA and LoRaWAN flows; in the {_flow(context)} "
                         "flow say `the download to t2 is cut after 4 KiB`")
    what = what.lower().rstrip("s")
    for name in _names(names):
        if what == "fragment":
            _run(context, f'Given "{name}" loses {percent}% of the fragments in round 1')
        elif what in ("downlink", "uplink"):
            _run(context, f'Given the radio link of "{name}" loses {percent}% of {what}s')
        else:
            _run(context, f'Given the radio link of "{name}" loses {percent}% of frames')


# -- faults ----------------------------------------------------------------------------------------


@intent(given, when)(*(rf"the\s+download\s+(?:of|to|for|by)\s+{who}" for who in _who(
    r"\s+is\s+cut\s+after\s+(?P<size>\d+(?:\.\d+)?\s*\w+)")))
def download_cut(context, names, size):
    """The device's download link breaks once this much has crossed it (`4 KiB`, TLS included):
    `the download to tracker t2 is cut after 4 KiB`. AWS IoT: the tracker's link to S3 (it goes
    on from the bytes it has); olt: the device's gateway's link to the platform (it resumes);
    TR-069: the router's link to the file server (the transfer fails, the batch retries while
    attempts remain); CUPS: the station's link to CUPS (it asks again)."""
    if _flow(context) == "fuota":
        raise ValueError("a FUOTA image comes over the radio, not a link: say `a loses 30% of its "
                         "frames` or `a loses 100% of the fragments`")
    for name in _names(names):
        if _flow(context) == "olt":  # the device's gateway downloads for it
            gateway = _olt(context)["gateway_of"][name]
            _run(context, f'Given the link between "{gateway}" and the OLT endpoint is cut after {size}')
        elif _flow(context) == "cups":  # the update comes in the CUPS answer
            _run(context, f'Given the link between "{name}" and the cups endpoint is cut after {size}')
        elif _flow(context) == "tr069":  # the router fetches the packages from the file server
            _run(context, f'Given the link between "{name}" and the files endpoint is cut after {size}')
        else:
            _run(context, f'Given the link between "{name}" and the AWS endpoint is cut after {size}')


@intent(given, when)(*_who(r"\s+loses?\s+(?:its\s+|the\s+)?power\s+(?:during|in\s+the\s+middle\s+of|halfway\s+through)\s+"
                           r"(?:the|its|their)\s+(?:download|campaign|upgrade|update|transfer)"))
def power_lost_during_download(context, names):
    """The device loses power during its next download and boots again: `t2 loses power during
    the download`, `the tracker "t1" loses power during the download`. AWS IoT: a quarter into
    the image, the tracker takes the job up anew; olt: the device's gateway, its link slowed to
    2 KiB/s, a quarter into the image (it resumes from its flash); TR-069: the router, its link
    to the file server slowed to 1 KiB/s, 2 s into the download (the transfer fails with 9010,
    the batch retries while attempts remain); CUPS: the station, its link to CUPS slowed to 2
    KiB/s, halfway into the update (it asks CUPS again at boot); FUOTA: the device, a quarter
    into the campaign's fragments (`… loses power during the campaign`; its fragmentation
    session is RAM: it has to fail, or be saved by a later round)."""
    runtime = ota(context)
    if _flow(context) == "cups":
        _cups(context)["power_cuts"].extend(_names(names))
        return
    if _flow(context) == "fuota":
        for name in _names(names):
            _run(context, f'Given "{name}" loses power after hearing a quarter of the fragments')
        return
    if _flow(context) == "olt":  # the device's gateway, slowed so a quarter of the image takes a while
        for name in _names(names):
            gateway = _olt(context)["gateway_of"].get(name, name)
            _olt(context)["power_cuts"].append(gateway)
            _run(context, f'Given the link between "{gateway}" and the OLT endpoint is throttled to 2 KiB/s')
        return
    if _flow(context) == "tr069":
        for name in _names(names):
            _tr069_power_cut_mid_download(context, name)
        return
    if _flow(context) != "aws-iot":
        raise ValueError(f"no power loss during the download in words for the {_flow(context)} flow "
                         'yet: use the detailed `device "<name>" loses power`')
    for name in _names(names):
        tracker = runtime.devices[name]
        armed = [True]

        def on_event(text: str, tracker=tracker, armed=armed) -> None:
            if armed[0] and text.startswith("download 25%"):
                armed[0] = False
                runtime.loop.create_task(tracker.power_cut())

        tracker.listeners.append(on_event)


# -- outcomes --------------------------------------------------------------------------------------


@intent(then)(*(rf'(?!(?:router|station)\s+"){who}' for who in _who(
    rf"\s+(?:now\s+|still\s+)?(?:runs|run|is\s+running|are\s+running)\s+{_VERSION}")))
def trackers_run(context, names, version):
    """The devices run this firmware version, judged from the device (the tracker, the olt
    device's slot and its bytes, the router's packages, the station's version.txt, the FUOTA
    device's DevVersionAns): `the tracker "t1" runs version 1.0.1`, `t1 runs version 1.0.1`;
    with `soon`, retried while time passes."""
    for name in _names(names):
        if _flow(context) == "olt":
            _olt_runs(context, name, version)
        elif _flow(context) == "tr069":
            _run(context, f'Then router "{name}" runs RouterOS {version}')
        elif _flow(context) == "cups":
            _run(context, f'Then station "{name}" runs package "{version}"')
        elif _flow(context) == "fuota":
            _run(context, f'Then "{name}" runs firmware {version}')
        else:
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


@intent(then)(*(rf"the\s+(?:upgrade|job|installation)\s+(?:of|for|on)\s+{who}" for who in _who(
    r"\s+(?:ends|ended|is|has\s+ended)\s+(?:in\s+)?(?:state\s+)?(?P<state>(?:(?!\s(?:because|with|saying)\b)[A-Za-z_ ])+?)")))
def upgrade_ends(context, names, state):
    """The device's upgrade is in this state, waited for when it is a final one (as `soon`
    waits; FUOTA: until the campaign decided): `the upgrade of the tracker "t1" ends failed`,
    `the upgrade of t1 ends succeeded`, `the installation for lamp1 ends succeeded`. AWS IoT:
    the job (`succeeded`, `failed`, `in progress`, `timed out`, …); olt: the installation
    (`succeeded`, `failed`, `canceled`, …); TR-069: the router's row in its batch (`Ready` or
    `succeeded`, `Error` or `failed`, `queued`, …); CUPS: `succeeded` (the new package reported
    to the LNS) or `failed`; FUOTA: `succeeded` (passed the campaign, and runs its firmware) or
    `failed` (once the campaign decided; the device does not run the campaign's firmware)."""
    for name in _names(names):
        if _flow(context) == "olt":
            _until_final(context, state, lambda name=name: _olt_ends(context, name, state))
        elif _flow(context) == "tr069":
            _until_final(context, state, lambda name=name: _tr069_ends(context, name, state))
        elif _flow(context) == "cups":
            _until_final(context, state, lambda name=name: _cups_ends(context, name, state))
        elif _flow(context) == "fuota":  # the campaign's verdict, waited for however long it takes
            words = state.strip().lower()
            if words not in ("succeeded", "passed", "failed"):
                raise ValueError(f"no upgrade state {state!r} for a FUOTA device; states: succeeded, failed")
            _run(context, f'When the FUOTA campaign has decided about "{name}"')
            _run(context, f'Then "{name}" {"failed" if words == "failed" else "passed"} the FUOTA campaign')
        else:
            _until_final(context, state, lambda name=name: _run(
                context, f"Then the job `{_job(name)}` of the `{name}` tracker is {_state(state)}"))


# States an upgrade ends in: said of one, the check waits (as `soon` does) for the upgrade to get there.
_FINAL_STATES = {"succeeded", "failed", "passed", "ready", "error", "canceled", "cancelled", "timed out",
                 "rejected", "removed", "refused", "discarded", "done", "finished"}
FINAL_STATE_LIMIT = 3600.0  # scenario seconds, as `soon`


def _until_final(context, state: str, check) -> None:
    """Run ``check`` now for a state on the way; for a final one, retry it while time passes
    (1 s, 2 s, 4 s … then every 16 s, at most an hour) until it holds. A check that errs (not
    an assertion) is not retried."""
    if " ".join(state.lower().replace("_", " ").split()) not in _FINAL_STATES:
        check()
        return
    _retrying(context, check, ota(context).clock.monotonic() + FINAL_STATE_LIMIT)


def _retrying(context, check, give_up: float) -> None:
    """``check`` retried as `soon` retries (1 s, 2 s, 4 s … then every 16 s of scenario time)
    until it passes; past ``give_up`` (the clock's monotonic time) its failure stands. A
    sub-step that errs (behave's "ERROR SUB-STEP") is a broken step, not retried."""
    runtime, delay = ota(context), 1.0
    while True:
        try:
            check()
            return
        except AssertionError as failure:
            now = runtime.clock.monotonic()
            if str(failure).startswith("ERROR") or now >= give_up:
                raise
        runtime.run_for(min(delay, give_up - now))
        delay = min(delay * 2, 16.0)


@intent(then)(r"(?:every|each|all(?:\s+the)?|both(?:\s+the)?)\s+(?:upgrades?|jobs?|installations?)\s+(?:ends?|ended|is|are)\s+"
               r"(?:in\s+)?(?:state\s+)?(?P<state>[A-Za-z_ ]+?)")
def every_upgrade_ends(context, state):
    """Every device's upgrade is in this state: `every upgrade ends succeeded`, `every
    installation ends failed`."""
    upgrade_ends(context, ", ".join(_trackers(context)), state)



# -- downloads, fragments and files, in words --------------------------------------------------------

_BYTES = r"(?P<offset>\d+(?:\.\d+)?(?:\s*(?:[KMG]i?B|bytes?))?)"
_TIMES = r"(?P<least>at\s+least\s+)?(?P<count>\d+|once|twice)(?:\s+times?)?"


def _downloader(context, name: str) -> str:
    """Who downloads for the device: an olt device's gateway, else the device itself."""
    return _olt(context)["gateway_of"].get(name, name) if _flow(context) == "olt" else name


@intent(then)(*_who(rf"\s+(?:has\s+)?resumed\s+(?:the|its|their)\s+downloads?\s+(?:from|at)\s+byte\s+{_BYTES}"))
def resumed_download_from(context, names, offset):
    """The device went on with its broken download from this byte, judged from the device's own
    record of its range requests: `t2 resumed the download from byte 4096` (or `4 KiB`; `the
    tracker "t2" resumed its download from byte 4 KiB`); an olt
    device's gateway downloads for it. A router or a station fetches whole and says so."""
    for name in _names(names):
        _run(context, f'Then device "{_downloader(context, name)}" resumed the download from byte {offset}')


@intent(then)(*_who(rf"\s+(?:has\s+)?resumed\s+(?:the|its|their)\s+downloads?\s+{_TIMES}"))
def resumed_times(context, names, count, least=None):
    """How often the device went on with a broken download: `t2 resumed the download once`,
    `the device "lamp1" resumed its download 2 times`, `t3 resumed the download at least once`."""
    count = {"once": "1", "twice": "2"}.get(count.lower(), count)
    at_least = "at least " if least else ""
    for name in _names(names):
        _run(context, f'Then device "{_downloader(context, name)}" resumed the download {at_least}{count} '
                      f'{"time" if count == "1" else "times"}')


@intent(then)(*_who(r"\s+(?:did\s+not|didn't|never)\s+resumed?\s+(?:the|its|a|their)\s+downloads?"))
def never_resumed(context, names):
    """The device never went on with a broken download (`t1 did not resume the download`,
    `the tracker "t1" never resumed a download`)."""
    for name in _names(names):
        _run(context, f'Then device "{_downloader(context, name)}" did not resume a download')


@intent(then)(*_who(r"\s+heard\s+(?P<count>(?:at\s+least\s+|at\s+most\s+|exactly\s+)?\d+|no)\s+"
                    r"(?:multicast\s+)?fragments?(?:\s+(?:on|over)\s+the\s+(?:radio|air))?"))
def heard_fragments_in_words(context, names, count):
    """FUOTA: the multicast fragments that reached each device over the air, counted on the
    radio medium (lost ones are not): `d1 heard at least 12 fragments`, `d2 heard no fragments`,
    `the device "d3" heard 40 fragments on the radio`."""
    count = re.sub(r"^exactly\s+", "", " ".join(count.lower().split()))
    for name in _names(names):
        _run(context, f'Then device "{name}" heard {count} fragments on the radio')


@intent(then)(*_who(r"\s+heard\s+(?P<comparison>fewer|less|more)\s+(?:multicast\s+)?fragments(?:\s+(?:on|over)\s+the\s+(?:radio|air))?"
                    r"\s+than\s+(?:the\s+)?(?:device\s+)?\"?(?P<other>[A-Za-z][\w.-]*)\"?"))
def heard_fewer_fragments(context, names, comparison, other):
    """FUOTA: fewer (or more) fragments reached the device over the air than another one:
    `d3 heard fewer fragments than d1`, `the device "d1" heard more fragments than d3`."""
    comparison = "fewer" if comparison.lower() in ("fewer", "less") else "more"
    for name in _names(names):
        _run(context, f'Then device "{name}" heard {comparison} fragments on the radio than device "{other}"')


@intent(then)(
    r"(?:the\s+)?(?:(?:image|file|update|firmware|package|RouterOS|version)\s+(?:of\s+|for\s+)?)+"
    rf"\"?(?P<version>[\w.+-]+?)\"?(?:\s+(?:image|file|update|package))?\s+"
    rf"(?:is|weighs|has|was|holds)\s+{_SIZE}")
def firmware_size(context, version, size):
    """The uploaded firmware of this version has this size, judged where it lands: AWS IoT: S3's
    answer for `fw-<version>.hex` and every tracker's own count of the bytes it downloaded; olt:
    the firmware's blob as the platform describes and serves it; TR-069: the RouterOS package on
    the ACS file server (its record and the bytes it serves); CUPS: the update file as each
    station given it stored it; FUOTA: the firmware each device installed, by its own note (the
    image's body, as `firmware 1.1.0 of 3 KiB` sets it): `the firmware 1.0.1 image is 64 KiB`, `the update v1 is 16 KiB`."""
    expected, flow = parse_size(size), _flow(context)
    if flow == "olt":
        name = _olt_firmware(version)
        _run(context, f'Then firmware "{name}" offers its image for download with its size and hashes')
        held = len(context.olt_platform.images[name])
        assert held == expected, f"firmware {version} is {held} bytes, not {expected}"
    elif flow == "tr069":
        _run(context, f'Then the ACS file server holds "{TR069_PACKAGES[0].format(v=version)}" of {size}')
    elif flow == "cups":
        stations = [name for name, wants in _cups(context)["wants"].items() if wants == version]
        assert stations, f"no station was upgraded to {version} in this scenario"
        for name in stations:
            _run(context, f'Then station "{name}" received an update of {size}')
    elif flow == "fuota":  # each device's own note of the firmware it installed
        installed = {name: [what for _, what in context.fuota.agents[name].events
                            if what.startswith(f"installed firmware {_fuota_version(version):#x} ")]
                     for name in _trackers(context)}
        assert any(installed.values()), f"no device installed firmware {version}"
        for name, notes in installed.items():
            for note in notes:
                assert note.endswith(f", {expected} octets)"), f"{name}: {note}, not {expected} octets"
    else:
        _run(context, f"Then the object `fw-{version}.hex` in the FOTA bucket is {size}")
        for name in _trackers(context):
            done = [text for _, text in ota(context).devices[name].events
                    if text.startswith("download complete:") and f"/fw-{version}.hex" in _last_download(
                        ota(context).devices[name], text)]
            for text in done:
                got = int(text.split()[2])
                assert got == expected, f"{name} downloaded {got} bytes of firmware {version}, not {expected}"


def _last_download(tracker, complete: str) -> str:
    """The `download of <host>/<path> started` event before this `download complete` one."""
    started = ""
    for _, text in tracker.events:
        if text.startswith("download of "):
            started = text
        if text == complete:
            return started
    return started


@intent(then)(*_who(r"\s+lost\s+(?:its\s+|the\s+)?power\s+(?:during|in\s+the\s+middle\s+of|halfway\s+through)\s+"
                    r"(?:the|its|their)\s+(?:download|campaign|upgrade|update|transfer)"))
def lost_power_during(context, names):
    """The power cut said in the Given came while the device was downloading, judged from the
    device: a CUPS station had not stored the update before its cut (and half of the update's
    bytes had crossed its link); a FUOTA device had heard fragments and had no complete image
    yet; an AWS tracker's download had started and not completed: `gw1 lost power during the
    download`, `the device "d2" lost power during the campaign`."""
    runtime = ota(context)
    for name in _names(names):
        device, flow = runtime.devices[name], _flow(context)
        if flow == "cups":
            kinds = [(event.kind, event.detail) for event in device.events]
            assert ("halt", "power cut") in kinds, f"{name} never lost power: {kinds}"
            cut = kinds.index(("halt", "power cut"))
            assert not any(kind == "update-received" for kind, _ in kinds[:cut]), (
                f"{name} had stored the update before its power cut: {kinds}")
            received, size = _cups(context)["cut_at"][name]
            assert received >= size // 2, f"{name} lost power after {received} of {size} bytes"
        elif flow == "fuota":
            agent = context.fuota.agents[name]
            cuts = [at for at, what in agent.events if what == "power cut"]
            assert cuts, f"{name} never lost power"
            heard = [at for at, command, multicast in agent.received
                     if multicast and type(command).__name__ == "DataFragment" and at <= cuts[0]]
            complete = [at for at, what in agent.events if what.startswith("data block") and
                        "complete" in what and at <= cuts[0]]
            assert heard and not complete, (
                f"{name} lost power having heard {len(heard)} fragments"
                + (" and holding a complete image" if complete else ""))
        elif flow == "aws-iot":
            texts = [text for _, text in device.events]
            cut = next((i for i, text in enumerate(texts) if text.startswith("power cut")), None)
            assert cut is not None, f"{name} never lost power: {texts}"
            before = texts[:cut]
            started = max((i for i, text in enumerate(before) if text.startswith("download of ")), default=None)
            assert started is not None and not any(
                text.startswith("download complete") for text in before[started:]), (
                f"{name} was not downloading when it lost power: {before[-5:]}")
        else:
            raise ValueError(f"no `lost power during the download` check in words for the {flow} flow yet")


_DURATION = r"(?P<duration>\d+(?:\.\d+)?\s*(?:seconds?|s|minutes?|min|hours?|h|days?))"


@intent(then)(rf"within\s+{_DURATION}(?:\s+of\s+the\s+(?:upgrade|start))?,?\s+(?P<step>.+)",
              rf"(?P<step>.+?),?\s+within\s+{_DURATION}(?:\s+of\s+the\s+(?:upgrade|start))?")
def within(context, duration, step):
    """Another Then-step holds within this much scenario time of the upgrade (the last `I
    upgrade …`, batch or campaign of the scenario; of this step without one), retried as `soon`
    retries: `every tracker runs version 1.0.1 within 2 hours`, `within 30 minutes, cpe1 runs
    6.48.4`. Said after the time is up, it fails: when a state was reached is not known."""
    runtime = ota(context)
    now = runtime.clock.monotonic()
    start = _layer(context).get("started", now)
    deadline = start + parse_duration(duration)
    if now > deadline:
        raise AssertionError(f"already {(now - start) / 60:.0f} minutes past the upgrade, more than "
                             f"{duration}: say `within {duration}` before other waits")
    try:
        _retrying(context, lambda: _run(context, f"Then {step}"), deadline)
    except AssertionError as failure:
        if str(failure).startswith("ERROR"):
            raise
        raise AssertionError(f"not within {duration} of the upgrade ({(runtime.clock.monotonic() - start) / 60:.0f} "
                             f"minutes): {failure}") from None


def _started(context) -> None:
    """The upgrade's moment, for `within`."""
    _layer(context)["started"] = ota(context).clock.monotonic()



# -- what the back end was told, why an upgrade failed, how many attempts ----------------------------


@intent(then)(*_who(rf"\s+(?:has\s+)?report(?:s|ed)?\s+{_VERSION}(?:\s+(?:to\s+the\s+(?:back\s*end|server|ACS|LNS|platform|cloud)|in\s+its\s+shadow))?"))
def reports_version(context, names, version):
    """What the device told the back end agrees with what it runs: `t1 reports version 1.0.1`,
    `the router "cpe1" reports RouterOS 6.48.4 to the ACS`.
    AWS IoT: the thing shadow's `dev.v.appV` and the tracker's version; olt: the platform's device
    resource shows the slot's version and the device's slot holds that image; TR-069: the ACS's
    SoftwareVersion from the router's last Inform and the router's packages; CUPS: the station's
    version message to the LNS on the wire and the registry; FUOTA: the version the device runs
    (what its DevVersionAns says)."""
    for name in _names(names):
        flow = _flow(context)
        if flow == "olt":
            _run(context, f'Then device "{name}" reports version "{version}" in its {OLT_SLOT} slot')
        elif flow == "tr069":
            _run(context, f'Then the ACS shows software version "{version}" for "{name}"',
                 f'And router "{name}" runs RouterOS {version}')
        elif flow == "cups":
            _run(context, f'Then the registry shows package "{version}" reported by station "{name}" to the LNS',
                 f'And station "{name}" runs package "{version}"')
        elif flow == "fuota":
            _run(context, f'Then "{name}" runs firmware {version}')
        else:
            _run(context, f"Then the `{name}` tracker reports firmware version `{version}` in its shadow")


@intent(then)(*(rf"the\s+(?:upgrade|job|installation)\s+(?:of|for|on)\s+{who}" for who in _who(
    r"\s+(?:ends|ended|is|has\s+ended)\s+(?:in\s+)?(?:state\s+)?failed,?\s+(?:because|with|saying|:)\s+"
    r"(?:of\s+)?(?:fault\s+)?[\"`]?(?P<reason>[^\"`]+?)[\"`]?")))
def upgrade_failed_because(context, names, reason):
    """The device's upgrade ends failed, for this reason: `the upgrade of t1 ends failed because
    "image not found"`, `the upgrade of the router "cpe1" ends failed with fault 9010`. AWS IoT: the tracker's own note of the
    failure it reported; olt: the installation's details; TR-069: the fault code of the router's
    last TransferComplete on the wire; CUPS: the station's refusal (or CUPS's answer when it
    withheld the update); FUOTA: the campaign's recorded reason."""
    upgrade_ends(context, names, "failed")
    for name in _names(names):
        flow = _flow(context)
        if flow == "olt":
            _run(context, f'Then the installation\'s details say "{reason}"')
        elif flow == "tr069":
            if not reason.strip().isdigit():
                raise ValueError(f"a router's failure is said by its CWMP fault code (`with fault 9010`), not {reason!r}")
            _run(context, f'Then the ACS received from "{name}" a TransferComplete with fault {reason.strip()}')
        elif flow == "cups":
            station = ota(context).devices[name]
            if station.last("update-aborted") is not None:
                _run(context, f'Then station "{name}" refused the update: {reason}')
            else:
                _run(context, f'Then the CUPS server\'s last answer to station "{name}" was "{reason}"')
        elif flow == "fuota":
            _run(context, f'Then "{name}" failed the FUOTA campaign with "{reason}"')
        else:
            job = ota(context).values[_job(name)]
            notes = [text for _, text in ota(context).devices[name].events if text.startswith(f"job {job} failed: ")]
            assert any(reason in text for text in notes), f"{name} failed {job} saying {notes or 'nothing'}"


@intent(then)(*(rf"(?:the\s+download\s+(?:of|to|for|by)\s+)?{who}" for who in _who(
    r"\s+(?:took|needed|used|made)\s+(?P<count>\d+|one|two|three)\s+(?:download\s+)?attempts?")))
def download_attempts(context, names, count):
    """How many times the device started downloading the image: `cpe1 needed 2 attempts`, `the
    tracker "t1" took 1 attempt`. AWS IoT: the downloads the tracker started (its own log);
    TR-069: the Downloads the router answered on the wire, and the attempts its batch counts."""
    count = {"one": "1", "two": "2", "three": "3"}.get(count.lower(), count)
    for name in _names(names):
        flow = _flow(context)
        if flow == "tr069":
            batch = _tr069(context)["batch_of"].get(name)
            assert batch is not None, f"no upgrade batch for {name} in this scenario"
            _run(context, f'Then the ACS sent "{name}" {count} Download{"" if count == "1" else "s"}',
                 f'And "{name}" used {count} of its attempts in batch "{batch}"')
        elif flow == "aws-iot":
            started = [text for _, text in ota(context).devices[name].events if text.startswith("download of ")]
            assert len(started) == int(count), f"{name} started {len(started)} downloads: {started}"
        else:
            raise ValueError(f"no count of download attempts in words for the {flow} flow yet")


use_step_matcher(_PREVIOUS)
