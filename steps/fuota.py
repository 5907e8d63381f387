"""FUOTA steps: firmware campaigns (seed 004) run by the FUOTA server (service "fuota") through the
real network path — FUOTA server → network server → LNS websocket → Basics Station emulator →
radio medium → end devices with their FUOTA agents (TS003/4/5/6).

The gateways come from the lorawan steps (``a LoRaWAN gateway "gw1" at 0 m, 0 m``); both step
modules share the scenario's field and its radio capture (:mod:`otaharness.bdd.lorawan_world`).
Campaigns are created, started and stopped through the FUOTA server's HTTP API; outcomes are read
from that API, and what really went out on the air from what the devices heard. Versions are
written ``major.minor.patch`` (``1.1.0`` = 0x01010000); every FUOTA device starts on ``1.0.0``.
"""

import asyncio
import base64
import dataclasses
import json
from dataclasses import dataclass, field

from behave import given, then, when
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from otaharness.emulators.lorawan_device import AbpActivation, DeviceConfig
from otaharness.emulators.lorawan_device.fuota import PROFILES, FuotaAgent, build_image
from otaharness.runtime.radio import FixedLoss
from otaharness.bdd.lorawan_world import lorawan_world
from otaharness.bdd.support import api_session, ota
from otaharness.protocols.fuota import PACKAGES_BY_FPORT
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.lorawan import SessionKeys
from otaharness.servers.fuota import CampaignState, Stage
from otaharness.servers.http_service import new_token
from otaharness.units import parse_duration, parse_size

FIRST_DEV_EUI = 0x70B3D57ED0050001
FIRST_DEV_ADDR = 0x26020001
INSTALLED_VERSION = "1.0.0"
HW_VERSION = 0x00AB0001
CAMPAIGN_LIMIT_S = 3 * 24 * 3600.0  # scenario seconds a campaign may take before a step gives up
# Campaign settings a scenario does not state: short unicast waits for devices polling every 20 s.
DEFAULT_SETTINGS = {"session_start_delay_s": 60.0, "unicast_timeout_s": 60.0, "unicast_attempts": 3,
                    "verification_timeout_s": 200.0}


@dataclass
class FuotaScenario:
    service: object  # the "fuota" service (server + API; restart() keeps the object)
    signing_key: Ed25519PrivateKey
    agents: dict[str, FuotaAgent] = field(default_factory=dict)
    image: bytes = b""
    image_version: int = 0
    campaign: int | None = None
    reboot_time: float | None = None  # Unix seconds, when the campaign programs one
    tasks: list[asyncio.Task] = field(default_factory=list)
    answer: tuple[int, object] | None = None  # the last raw API answer (status, JSON or None)
    deleted_at: float | None = None  # loop time just before DELETE /campaigns/{id}


def version(text: str) -> int:
    major, minor, patch = (int(part) for part in text.split("."))
    return major << 24 | minor << 16 | patch << 8


def _fuota(context) -> FuotaScenario:
    scenario = getattr(context, "fuota", None)
    if scenario is not None:
        return scenario
    runtime = ota(context)
    service = runtime.run(runtime.service("fuota"))
    scenario = context.fuota = FuotaScenario(
        service, Ed25519PrivateKey.from_private_bytes(runtime.rng("fuota:signing-key").randbytes(32)))

    async def close() -> None:
        for task in scenario.tasks:
            task.cancel()
        for agent in scenario.agents.values():
            await agent.stop()

    runtime.add_cleanup(close)
    return scenario


def _service(context):
    return _fuota(context).service


def _run(context):
    """The campaign's run in the current FUOTA server (a restarted server has a new one)."""
    scenario = _fuota(context)
    assert scenario.campaign is not None, "no FUOTA campaign was started"
    return _service(context).server.runs[scenario.campaign]


def _agent(context, name: str) -> FuotaAgent:
    agents = _fuota(context).agents
    assert name in agents, f"no FUOTA device {name!r} (known: {', '.join(agents) or 'none'})"
    return agents[name]


async def _api(runtime, endpoint: str, method: str, path: str, body: dict | None = None) -> object:
    """A call that must succeed, to the API at ``endpoint`` with its token (over HTTPS)."""
    async with api_session(runtime, endpoint) as http:
        async with http.request(method, runtime.endpoint_url(endpoint) + path, json=body) as response:
            document = await response.json()
            assert response.status < 300, f"{method} {path}: HTTP {response.status} {document}"
            return document


def _api_call(context, method: str, path: str, body: dict | None = None) -> object:
    return ota(context).run(_api(ota(context), "fuota", method, path, body))


async def _raw(runtime, method: str, path: str, data: bytes | None = None, *,
               token: str | None = None, as_is: bool = False) -> tuple[int, object]:
    """Any answer of the FUOTA API, as (status, JSON document or None for an empty body); with
    ``as_is`` the call carries ``token`` (None: no Authorization) instead of the API's own."""
    headers = {"Content-Type": "application/json"} if data is not None else {}
    session = api_session(runtime, "fuota")
    if as_is:
        session.headers.pop("Authorization", None)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
    async with session as http:
        async with http.request(method, runtime.endpoint_url("fuota") + path, data=data,
                                headers=headers) as response:
            body = await response.read()
            return response.status, (json.loads(body) if body else None)


def _raw_call(context, method: str, path: str, data: bytes | None = None, **credential) -> tuple[int, object]:
    _service(context)  # started
    answer = _fuota(context).answer = ota(context).run(_raw(ota(context), method, path, data, **credential))
    return answer


def _campaign_path(context) -> str:
    campaign = _fuota(context).campaign
    assert campaign is not None, "no FUOTA campaign was started"
    return f"/campaigns/{campaign}"


def _device_state(context, name: str) -> dict:
    dev_eui = f"{_agent(context, name).device.config.dev_eui:016X}"
    document = _api_call(context, "GET", _campaign_path(context))
    [state] = [d for d in document["device_states"] if d["dev_eui"] == dev_eui]
    return state


def _names(text: str) -> list[str]:
    return [name.strip().strip('"') for name in text.replace(" and ", ",").split(",") if name.strip()]


def _stop_time(context) -> float:
    """Loop time of the server's stop (its ``stop`` event; the API call itself takes a moment)."""
    events = _api_call(context, "GET", f"{_campaign_path(context)}/events?kind=stop")
    assert events, "the FUOTA campaign was not stopped"
    clock = ota(context).clock
    return events[0]["at"] - (clock.epoch() - clock.monotonic())


def _heard_since_stop(context, name: str) -> list[tuple[float, object, bool]]:
    since = _stop_time(context) + 0.001  # what ended with the stop's instant came before it (float epochs)
    return [entry for entry in _agent(context, name).received if entry[0] >= since]


def _describe(command: object) -> str:
    """A command as the scenarios write it: its name, and the time of a DevRebootTimeReq."""
    if isinstance(command, ts006.DevRebootTimeReq):
        return f"{type(command).__name__} 0x{command.reboot_time:08X}"
    return type(command).__name__


# -- devices and image -----------------------------------------------------------------------------


@given('a FUOTA device "{name}" at {x:g} m, {y:g} m')
def a_fuota_device(context, name, x, y):
    """A class A ABP device running firmware 1.0.0, registered with the network server through its
    application API, with a FUOTA agent polling every 20 s. An optional table ``| setting | value |``
    changes it: ``profile`` (specification, loramac-node), ``hardware`` (hex), ``clock behind``
    (a duration), ``clock sync at boot`` (yes/no), ``poll interval`` (a duration)."""
    runtime, world, scenario = ota(context), lorawan_world(context), _fuota(context)
    settings = {row[0]: row[1] for row in context.table} if context.table else {}
    index = len(scenario.agents)
    dev_eui, dev_addr = FIRST_DEV_EUI + index, FIRST_DEV_ADDR + index
    rng = runtime.rng(f"fuota-device:{name}")
    keys = SessionKeys(nwk_s_key=rng.randbytes(16), app_s_key=rng.randbytes(16))
    runtime.run(_api(runtime, "lorawan-app", "PUT", f"/api/devices/{dev_eui:016X}",
                     {"devAddr": f"{dev_addr:08X}", "nwkSKey": keys.nwk_s_key.hex(), "appSKey": keys.app_s_key.hex(),
                      "class": "A"}))
    clock_offset = -parse_duration(settings["clock behind"]) if "clock behind" in settings else 0.0
    config = DeviceConfig(dev_eui=dev_eui, abp=AbpActivation(dev_addr, keys), gen_app_key=rng.randbytes(16),
                          clock_offset_s=clock_offset)
    device = world.field.add_device(name, config, (x, y), runtime.rng(f"device:{name}"))
    profile = PROFILES[settings.get("profile", "specification")]
    if "clock sync at boot" in settings:
        profile = dataclasses.replace(profile, clock_sync_at_boot=settings["clock sync at boot"] == "yes")
    agent = FuotaAgent(device, scenario.signing_key.public_key(), version(INSTALLED_VERSION),
                       int(settings.get("hardware", f"{HW_VERSION:#x}"), 16), flash_capacity=64 * 1024,
                       profile=profile, rng=runtime.rng(f"fuota-agent:{name}"),
                       poll_interval_s=parse_duration(settings.get("poll interval", "20 s")))
    scenario.agents[name] = agent
    runtime.devices[name] = device

    async def boot() -> None:  # the agent's timers live on the scenario's loop
        agent.start()

    runtime.run(boot())


@given('a firmware image of {kib:g} KiB for version {text}')
def an_image(context, kib, text):
    """A signed image (our TS006 image format) of ``kib`` KiB of body for the devices' hardware.
    ``… for version 1.1.0 signed with an unknown key`` / ``… for hardware 0x…`` / ``… corrupted``
    make the images devices must refuse."""
    scenario, runtime = _fuota(context), ota(context)
    words = text.split(" ", 1)
    variant = words[1] if len(words) > 1 else ""
    body = runtime.rng("fuota:image").randbytes(round(kib * 1024))
    key, hw = scenario.signing_key, HW_VERSION
    if variant == "signed with an unknown key":
        key = Ed25519PrivateKey.from_private_bytes(runtime.rng("fuota:unknown-key").randbytes(32))
    elif variant.startswith("for hardware "):
        hw = int(variant.removeprefix("for hardware "), 16)
    elif variant not in ("", "corrupted"):
        raise ValueError(f"unknown image variant {variant!r}")
    image = build_image(body, fw_version=version(words[0]), hw_version=hw, signing_key=key)
    if variant == "corrupted":  # one body octet flipped after signing
        image = image[:40] + bytes([image[40] ^ 0xFF]) + image[41:]
    scenario.image, scenario.image_version = image, version(words[0])


@given('"{name}" loses {percent:g}% of the fragments in round {round_number:d}')
def loses_fragments(context, name, percent, round_number):
    """While stage 5 (DlFragment) of that round runs, every frame to or from the device is lost
    with this probability (the scenario's seeded rng); the radio is clean otherwise."""
    scenario, medium = _fuota(context), lorawan_world(context).field.medium
    _agent(context, name)

    async def watch() -> None:
        while True:
            run = None
            if scenario.campaign is not None:
                run = scenario.service.server.runs.get(scenario.campaign)
            lossy = run is not None and run.stage is Stage.DL_FRAGMENT and run.round == round_number \
                and run.state is CampaignState.RUNNING
            medium.set_loss(name, FixedLoss(percent / 100) if lossy else None)
            await asyncio.sleep(1.0)

    scenario.tasks.append(asyncio.ensure_future(watch(), loop=ota(context).loop))


@given('"{name}" loses power after hearing {count:d} fragments')
@given('"{name}" loses power after hearing {count:d} fragment')
def power_cut_after_fragments(context, name, count):
    """Once the device has heard this many DataFragments of the campaign over the air, its
    supply is cut and comes back (RAM lost: its fragmentation session with what it had; the
    flash slot and the running version are kept)."""
    _power_cut_once_heard(context, name, lambda run: count)


@given('"{name}" loses power after hearing a quarter of the fragments')
def power_cut_a_quarter_in(context, name):
    """As `after hearing N fragments`, N a quarter of the campaign's uncoded fragments."""
    _power_cut_once_heard(context, name, lambda run: max(1, run.block().nb_frag // 4))


def _power_cut_once_heard(context, name: str, threshold) -> None:
    scenario, agent = _fuota(context), _agent(context, name)

    async def watch() -> None:
        while True:
            run = scenario.service.server.runs.get(scenario.campaign) if scenario.campaign is not None else None
            heard = sum(1 for _, command, multicast in agent.received
                        if multicast and isinstance(command, ts004.DataFragment))
            if run is not None and run.block() is not None and heard >= threshold(run):
                await agent.power_cut()
                return
            await asyncio.sleep(1.0)

    scenario.tasks.append(asyncio.ensure_future(watch(), loop=ota(context).loop))


# -- campaigns -------------------------------------------------------------------------------------


@when('a FUOTA campaign starts for {names}')
def campaign_starts(context, names):
    """Create the campaign with the image through the HTTP API and start it. The optional table
    ``| setting | value |`` holds CampaignConfig fields with JSON values (``fec``, ``redundancy``,
    ``success_threshold``, ``max_rounds``, …; docs/fuota.md) and ``reboot in`` (a duration: the
    reboot time stage 2 programs); the step text then ends with "with"."""
    scenario, runtime = _fuota(context), ota(context)
    assert scenario.image, "no firmware image"
    settings: dict = dict(DEFAULT_SETTINGS)
    for key, value in (context.table or []):
        if key == "reboot in":
            scenario.reboot_time = runtime.clock.epoch() + parse_duration(value)
            settings["reboot_time"] = scenario.reboot_time
        else:
            settings[key] = json.loads(value)
    created = _api_call(context, "POST", "/campaigns", _campaign_body(context, names.removesuffix(" with"), settings))
    scenario.campaign = created["id"]
    _api_call(context, "POST", f"/campaigns/{scenario.campaign}/start")


def _campaign_body(context, names: str, settings: dict) -> dict:
    scenario = _fuota(context)
    devices = [{"dev_eui": f"{agent.device.config.dev_eui:016X}", "gen_app_key": agent.device.config.gen_app_key.hex(),
                "profile": agent.profile.name} for agent in (_agent(context, n) for n in _names(names))]
    config = {"name": context.scenario.name, "devices": devices, "firmware_version": scenario.image_version,
              **settings}
    return {"config": config, "image": base64.b64encode(scenario.image).decode()}


@when('a FUOTA campaign is created for {names} with {setting} set to {value}')
def campaign_created_with(context, names, setting, value):
    """``POST /campaigns`` (no start) whose configuration has ``setting`` written as the JSON text
    ``value`` — which need not be JSON (``NaN``): the body is sent as it is written."""
    assert _fuota(context).image, "no firmware image"
    body = _campaign_body(context, names, {**DEFAULT_SETTINGS, setting: "__value__"})
    text = json.dumps(body)
    assert text.count('"__value__"') == 1
    _raw_call(context, "POST", "/campaigns", text.replace('"__value__"', value).encode())


@given('a FUOTA campaign is created for {names}')
@when('a FUOTA campaign is created for {names}')
def campaign_created(context, names):
    """``POST /campaigns`` with the scenario's image and the default settings; not started."""
    assert _fuota(context).image, "no firmware image"
    status, document = _raw_call(context, "POST", "/campaigns", json.dumps(
        _campaign_body(context, names, dict(DEFAULT_SETTINGS))).encode())
    assert status == 201, f"HTTP {status} {document}"
    _fuota(context).campaign = document["id"]


def _send_campaign_as(context, names: str, token: str | None) -> None:
    _raw_call(context, "POST", "/campaigns", json.dumps(
        _campaign_body(context, names, dict(DEFAULT_SETTINGS))).encode(), token=token, as_is=True)


@when('a FUOTA campaign for {names} is sent without a token')
def campaign_sent_without_token(context, names):
    """``POST /campaigns`` of a valid campaign with no Authorization header."""
    _send_campaign_as(context, names, None)


@when('a FUOTA campaign for {names} is sent with a forged token')
def campaign_sent_with_forged_token(context, names):
    """``POST /campaigns`` of a valid campaign with a token made like a real one (CSPRNG) but
    never issued."""
    _send_campaign_as(context, names, new_token())


@when('a FUOTA campaign for {names} is sent with the "{endpoint}" token')
def campaign_sent_with_other_token(context, names, endpoint):
    """``POST /campaigns`` of a valid campaign with another running API's token (the runtime's)."""
    token = ota(context).token_for(endpoint)
    assert token is not None, f"no running API {endpoint!r} has a token"
    _send_campaign_as(context, names, token)


@when('a malformed body of {size} is sent to the FUOTA API without a token')
def malformed_body_without_token(context, size):
    """``POST /campaigns`` with this many bytes that are no JSON at all, and no token."""
    _raw_call(context, "POST", "/campaigns", b"\xff" * parse_size(size), as_is=True)


@when('the FUOTA API is asked for campaign "{text}"')
def asked_for_campaign(context, text):
    """``GET /campaigns/<text>`` with the text as it is written (not an id, an id out of range)."""
    _raw_call(context, "GET", f"/campaigns/{text}")


@then('the FUOTA server refused it with {status:d} naming "{field_name}"')
def refused_naming(context, status, field_name):
    """The last answer is this status with a JSON error whose ``field`` and text name the field."""
    answer = _fuota(context).answer
    assert answer is not None, "no request was made"
    assert answer[0] == status and isinstance(answer[1], dict), answer
    assert answer[1].get("field") == field_name and field_name in answer[1]["error"], answer


@then('the FUOTA server refused it with {status:d}')
def refused(context, status):
    """The last answer is this status with a JSON error saying why."""
    answer = _fuota(context).answer
    assert answer is not None and answer[0] == status and isinstance(answer[1], dict) and answer[1]["error"], answer


@then('the FUOTA server lists {count:d} campaign and shows it')
@then('the FUOTA server lists {count:d} campaigns and shows each')
def lists_campaigns(context, count):
    """``GET /campaigns`` answers with this many, and ``GET /campaigns/{id}`` answers for each one
    (a refused campaign was not stored; nothing stored breaks a read)."""
    status, listed = _raw_call(context, "GET", "/campaigns")
    assert status == 200 and isinstance(listed, list) and len(listed) == count, (status, listed)
    for campaign in listed:
        status, shown = _raw_call(context, "GET", f"/campaigns/{campaign['id']}")
        assert status == 200 and shown["state"] != "unreadable", (status, shown)


@when('the FUOTA campaign reaches stage {stage:d}')
def reaches_stage(context, stage):
    """Time passes until the campaign is in this stage (seed 004 numbering)."""
    runtime = ota(context)
    assert runtime.run_until(lambda: _run(context).stage == stage, timeout=CAMPAIGN_LIMIT_S), \
        f"the campaign never reached stage {stage} (it is in {_run(context).stage})"


@when('{count:d} fragments have gone out')
def fragments_out(context, count):
    """Time passes until the FUOTA server has handed this many DataFragments to the network server."""
    runtime = ota(context)
    assert runtime.run_until(lambda: _run(context).progress.get("next_fragment", 0) >= count,
                             timeout=CAMPAIGN_LIMIT_S), "fragments did not go out"


@when('every FUOTA device has a reboot programmed')
def reboots_programmed(context):
    """Time passes until each device has taken the DevRebootTimeReq of stage 2."""
    agents = _fuota(context).agents.values()
    assert ota(context).run_until(lambda: all(agent.reboot_programmed for agent in agents), timeout=CAMPAIGN_LIMIT_S), \
        f"reboot programmed: {[(agent.name, agent.reboot_programmed) for agent in agents]}"


@when('the FUOTA campaign is stopped')
def stopped(context):
    """``POST /campaigns/{id}/stop``: no further stage or fragment; the cleanup traffic starts."""
    _api_call(context, "POST", f"{_campaign_path(context)}/stop")


@when('the FUOTA campaign is deleted')
def deleted(context):
    """``DELETE /campaigns/{id}``: a running campaign is stopped with the stop cleanup of its stage
    and removed when that is over (202); any other is removed at once (204)."""
    _fuota(context).deleted_at = ota(context).clock.monotonic()
    status, document = _raw_call(context, "DELETE", _campaign_path(context))
    assert status in (202, 204), f"DELETE: HTTP {status} {document}"


@then('the FUOTA campaign is gone once its stop cleanup is over')
def gone_after_cleanup(context):
    """The DELETE was accepted as pending (202: the campaign was running), time passes until the
    server has removed it, and ``GET /campaigns/{id}`` answers 404."""
    scenario, runtime = _fuota(context), ota(context)
    assert scenario.answer is not None and scenario.answer[0] == 202, scenario.answer
    store = _service(context).server.store
    assert runtime.run_until(lambda: not store.exists(scenario.campaign), timeout=CAMPAIGN_LIMIT_S), \
        "the campaign was not removed"
    status, document = _raw_call(context, "GET", _campaign_path(context))
    assert status == 404, (status, document)


@then('after the deletion the devices heard these unicast commands')
def heard_after_deletion(context):
    """``| device | command |`` (as in the stop tables): each device decoded each of its commands from
    the air after the DELETE request (the stop cleanup the DELETE ran)."""
    since = _fuota(context).deleted_at
    assert since is not None, "the FUOTA campaign was not deleted"
    for row in context.table:
        heard = [_describe(command) for at, command, multicast in _agent(context, row["device"]).received
                 if at >= since and not multicast]
        assert row["command"] in heard, f"{row['device']} did not hear {row['command']}; heard {heard}"


@when('the FUOTA server restarts')
def server_restarts(context):
    """The FUOTA server and its API go down and a new one starts on the same SQLite file."""
    runtime = ota(context)
    runtime.run(_service(context).restart())


@when('the clock goes past the programmed reboot time')
def reboot_time_passes(context):
    """Time passes until a minute after the reboot time the campaign programmed."""
    runtime, reboot_time = ota(context), _fuota(context).reboot_time
    assert reboot_time is not None, "the campaign has no reboot time"
    runtime.run_for(max(reboot_time - runtime.clock.epoch(), 0) + 60)


@then('the FUOTA campaign ends {state}')
def campaign_ends(context, state):
    """Time passes until the campaign (and any cleanup) is over; its state (API) is this one."""
    runtime = ota(context)

    def over() -> bool:
        run = _run(context)
        return run.state in (CampaignState.FINISHED, CampaignState.STOPPED) and all(
            task is None or task.done() for task in (run.task, run.cleanup_task))

    assert runtime.run_until(over, timeout=CAMPAIGN_LIMIT_S), f"the campaign is still {_run(context).state.value}"
    document = _api_call(context, "GET", _campaign_path(context))
    assert document["state"] == state, document


@then('the FUOTA campaign ran the stages {stages}')
def ran_stages(context, stages):
    """The stages in the order they started (the event log through the API), e.g. ``1, 3, 4, 5, 6, 7``."""
    events = _api_call(context, "GET", f"{_campaign_path(context)}/events?kind=stage")
    started = [e["stage"] for e in events if e["event"] == "start"]
    assert started == [int(s) for s in stages.split(",")], \
        f"stages started: {started}; devices: {_api_call(context, 'GET', _campaign_path(context))['device_states']}"


@then('the FUOTA campaign resumed in stage {stage:d}')
def resumed(context, stage):
    """The restarted server logged that it resumed the campaign in this stage."""
    events = _api_call(context, "GET", f"{_campaign_path(context)}/events?kind=resumed")
    assert [e["stage"] for e in events] == [stage], events


@then('no fragment was sent twice')
def no_fragment_twice(context):
    """Judged on the air: no device heard the same DataFragment (index and N) in two multicast
    frames — every device's radio decodes what really went out. The server's event log must
    agree (each fragment logged once per round)."""
    for name in _fuota(context).agents:
        heard = [(c.frag_index, c.n) for c in _fragments_heard(context, name)
                 if isinstance(c, ts004.DataFragment)]
        twice = sorted({key for key in heard if heard.count(key) > 1})
        assert not twice, f"{name} heard fragments (index, N) more than once: {twice}"
    events = _api_call(context, "GET", f"{_campaign_path(context)}/events?kind=fragment")
    sent = [(e.get("round", 1), e["n"]) for e in events]
    assert sent and len(sent) == len(set(sent)), f"the server logged fragments: {sent}"


CLOCK_SYNC_RESOLUTION_S = 1.001  # a synced device clock may be this far off (whole-second corrections)


@then('the devices reported a version only after the programmed reboot time')
def versions_after_reboot(context):
    """Every DevVersionAns of the campaign came at or after the reboot time stage 2 programmed:
    the devices rebooted then, and verification waited for it (the seed's manual reboot time)."""
    reboot_time = _fuota(context).reboot_time
    events = _api_call(context, "GET", f"{_campaign_path(context)}/events?kind=answer")
    answered = [e["at"] for e in events if e["command"] == "DevVersionAns"]
    assert answered and min(answered) >= reboot_time, f"DevVersionAns at {answered}, reboot time {reboot_time}"
    clock = ota(context).clock
    reboot_loop_time = reboot_time - (clock.epoch() - clock.monotonic())
    # The devices' side: each installed no earlier than the reboot time by its own clock, which
    # clock sync leaves up to a second off the true time (TS003 corrects in whole seconds).
    for name, agent in _fuota(context).agents.items():
        installed = [at for at, what in agent.events if what.startswith("installed firmware")]
        assert installed, f"{name} never installed the new firmware"
        assert min(installed) >= reboot_loop_time - CLOCK_SYNC_RESOLUTION_S, \
            f"{name} installed at {min(installed) - reboot_loop_time:+.1f} s from the reboot time"


# -- outcomes --------------------------------------------------------------------------------------


@then('{names} passed the FUOTA campaign')
def passed(context, names):
    """The campaign marks each device as passed (it answered with the new version), and the
    device itself runs the campaign's firmware (its own state, not only the server's verdict)."""
    image_version = _fuota(context).image_version
    for name in _names(names):
        state = _device_state(context, name)
        assert state["status"] == "passed", f"{name}: {state}"
        running = _agent(context, name).firmware_version
        assert running == image_version, \
            f"the server passed {name}, but it runs {running:#010x}, not {image_version:#010x}"


@when('the FUOTA campaign has decided about {names}')
def campaign_decided(context, names):
    """Time passes until the campaign has passed or failed each device, or is over."""
    for name in _names(names):
        _wait_decided(context, name)


def _wait_decided(context, name: str) -> None:
    runtime = ota(context)
    dev_eui = _agent(context, name).device.config.dev_eui

    def decided() -> bool:  # read in process: a check inside run_until makes no API call
        run = _run(context)
        device = run.devices.get(dev_eui)
        return run.state in (CampaignState.FINISHED, CampaignState.STOPPED) or (
            device is not None and device.status.value in ("passed", "failed"))

    assert runtime.run_until(decided, timeout=CAMPAIGN_LIMIT_S), f"the campaign is still {_run(context).state.value}"


@then('"{name}" failed the FUOTA campaign')
def failed_on_device(context, name):
    """Time passes until the campaign has decided about the device; it failed, and the device
    itself does not run the campaign's firmware (its own state)."""
    _wait_decided(context, name)
    state = _device_state(context, name)
    assert state["status"] == "failed", f"{name}: {state}"
    running = _agent(context, name).firmware_version
    assert running != _fuota(context).image_version, \
        f"the server failed {name} ({state['reason']}), yet it runs the campaign's firmware {running:#010x}"


@then('"{name}" failed the FUOTA campaign with "{reason}"')
def failed(context, name, reason):
    """The device failed, and the reason the server recorded contains this text."""
    state = _device_state(context, name)
    assert state["status"] == "failed" and reason in state["reason"], f"{name}: {state}"


@then('{names} run firmware {text}')
@then('{names} runs firmware {text}')
def runs_firmware(context, names, text):
    """The firmware version each device runs (what its DevVersionAns reports)."""
    for name in _names(names):
        agent = _agent(context, name)
        assert agent.firmware_version == version(text), f"{name} runs {agent.firmware_version:#010x}"


@then('"{name}" answered DevUpgradeImageReq with status {status:d}')
def upgrade_image_status(context, name, status):
    """The device's own verdict on its image, as it noted it when answering (1: corrupt or badly
    signed, 2: other hardware, 3: valid), and the DevUpgradeImageAns status the server logged."""
    verdicts = [what for _, what in _agent(context, name).events if what.startswith("upgrade image status ")]
    expected = f"upgrade image status {ts006.UpImageStatus(status).name}"
    assert verdicts and verdicts[-1] == expected, f"{name}'s own verdicts: {verdicts}"
    dev_eui = f"{_agent(context, name).device.config.dev_eui:016X}"
    events = _api_call(context, "GET", f"{_campaign_path(context)}/events?kind=answer")
    statuses = [e["up_image_status"] for e in events
                if e["dev_eui"] == dev_eui and e["command"] == "DevUpgradeImageAns"]
    assert statuses and statuses[-1] == status, f"{name} answered {statuses}"


@then('"{name}" lost uncoded fragments that FEC rebuilt')
def fec_rebuilt(context, name):
    """The device heard fewer than NbFrag uncoded fragments, yet its image is complete."""
    agent, run = _agent(context, name), _run(context)
    nb_frag = run.block().nb_frag
    uncoded = {c.n for _, c, multicast in agent.received
               if multicast and isinstance(c, ts004.DataFragment) and c.n <= nb_frag}
    assert len(uncoded) < nb_frag, f"{name} heard all {nb_frag} uncoded fragments: nothing for FEC to do"
    state = _device_state(context, name)
    coded = sorted(c.n for _, c, multicast in agent.received
                   if multicast and isinstance(c, ts004.DataFragment) and c.n > nb_frag)
    assert state["status"] in ("ready", "passed"), f"{name}: {state}; heard {sorted(uncoded)} + coded {coded}"


def _fragments_heard(context, name: str) -> list[object]:
    return [c for _, c, multicast in _agent(context, name).received if multicast]


@then('"{name}" heard no fragment')
def heard_no_fragment(context, name):
    """The device received no DataFragment of the multicast session (it missed the session)."""
    heard = _fragments_heard(context, name)
    assert not heard, f"{name} heard {len(heard)} fragment(s)"


@then('"{name}" heard fragments')
def heard_fragments(context, name):
    """The device received DataFragments of the multicast session."""
    assert _fragments_heard(context, name), f"{name} heard no fragment"


@then('"{name}" rebooted {count:d} times')
@then('"{name}" rebooted {count:d} time')
def rebooted(context, name, count):
    """How often the device rebooted (a programmed reboot that was cancelled does not count)."""
    agent = _agent(context, name)
    assert agent.reboots == count, f"{name} rebooted {agent.reboots} time(s)"


@then('after the stop the FUOTA server sent exactly these unicast commands and the devices heard them')
def cleanup_after_stop(context):
    """The cleanup traffic, one row per command: ``| device | command |`` (a DevRebootTimeReq with
    its RebootTime, e.g. ``DevRebootTimeReq 0xFFFFFFFF``). The server's requests after its stop
    event are exactly these (a retry of a request whose answer was late counts once), and each
    device decoded them from the air. Anything else a device heard after the stop must be a request
    made before it and already handed to a gateway (still delivered; requests still queued at the
    network server are withdrawn at the stop: docs/fuota.md)."""
    scenario = _fuota(context)
    expected = sorted((row["device"], row["command"]) for row in context.table)
    names = {f"{agent.device.config.dev_eui:016X}": name for name, agent in scenario.agents.items()}
    events = _api_call(context, "GET", f"{_campaign_path(context)}/events")
    stop = next(index for index, event in enumerate(events) if event["kind"] == "stop")
    requests = [e for e in events if e["kind"] == "request"]
    sent = sorted({(names[e["dev_eui"]], _describe(command)) for e in events[stop:] if e["kind"] == "request"
                   for command in PACKAGES_BY_FPORT[e["fport"]].parse_downlink(bytes.fromhex(e["payload"]))})
    assert sent == expected, f"the server sent after the stop: {sent}"
    queued_before = {(names[e["dev_eui"]], e["payload"]) for e in requests if events.index(e) < stop}
    for name in scenario.agents:
        heard = [command for _, command, multicast in _heard_since_stop(context, name) if not multicast]
        described = [_describe(command) for command in heard]
        for row in (row for row in expected if row[0] == name):
            assert row[1] in described, f"{name} did not hear {row[1]}; heard {described}"
        others = [command for command in heard if (name, _describe(command)) not in expected]
        stray = [_describe(c) for c in others if (name, c.to_bytes().hex()) not in queued_before]
        assert not stray, f"{name} heard after the stop, neither cleanup nor queued before it: {stray}"


@then('at most {count:d} fragment went out after the stop')
@then('at most {count:d} fragments went out after the stop')
def fragments_after_stop(context, count):
    """DataFragments the devices heard after the server's stop (one already handed to the network
    server still goes out)."""
    for name in _fuota(context).agents:
        fragments = [c for _, c, multicast in _heard_since_stop(context, name)
                     if multicast and isinstance(c, ts004.DataFragment)]
        assert len(fragments) <= count, f"{name} heard {len(fragments)} fragments after the stop"


@then('{names} hold no firmware image')
@then('{names} holds no firmware image')
def no_image(context, names):
    """The device's flash slot is empty (deleted, or never assembled)."""
    for name in _names(names):
        assert _agent(context, name).flash.data is None, f"{name} still holds an image"
