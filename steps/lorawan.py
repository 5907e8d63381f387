"""LoRaWAN steps: Basics Stations with radios, class A/C devices on one radio medium, the network
server behind the LNS (service "lorawan"), its application interface over HTTP.

Positions are metres on a plane (log-distance path loss: a few km reach at SF7, more at SF12).
Payloads are hex. Every scenario's radio traffic is written as a LoRaTap pcap with the Wireshark
key log beside it (``radio.pcap`` and ``radio.pcap.wireshark/`` in the scenario's artifacts, copied
into the capture directory when capture is on).
"""

import asyncio

import aiohttp
from behave import given, then, when

from otaharness.emulators.basics_station import StationHome
from otaharness.emulators.lorawan_device import DeviceClass, DeviceConfig, LoRaWANDevice
from otaharness.runtime.radio import FixedLoss, Transmission
from otaharness.bdd.lorawan_world import LoRaWANWorld, Received, lorawan_world
from otaharness.bdd.support import api_session, ota
from otaharness.protocols.basics_station import format_eui
from otaharness.protocols.lorawan import EU868
from otaharness.units import parse_duration

JOIN_EUI = "70B3D57ED0000001"
FIRST_GATEWAY_EUI = 0x0016C001FF100001
FIRST_DEV_EUI = 0x0004A30B00100001


def _world(context) -> LoRaWANWorld:
    return lorawan_world(context)


async def _api(context, method: str, path: str, body: dict | None = None) -> dict:
    """A call of the application API that must succeed: with its token, over HTTPS."""
    runtime = ota(context)
    url = _world(context).service.endpoints()["lorawan-app"] + path
    async with api_session(runtime, "lorawan-app") as http:
        async with http.request(method, url, json=body) as response:
            document = await response.json()
            assert response.status < 300, f"{method} {path}: HTTP {response.status} {document}"
            return document


def _api_call(context, method: str, path: str, body: dict | None = None) -> dict:
    return ota(context).run(_api(context, method, path, body))


def _device(context, name: str) -> LoRaWANDevice:
    devices = _world(context).field.devices
    assert name in devices, f"no LoRaWAN device {name!r} (known: {', '.join(devices) or 'none'})"
    return devices[name]


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.strip("`"))


# -- the network -----------------------------------------------------------------------------------


@given('a LoRaWAN gateway "{name}" at {x:g} m, {y:g} m')
def a_gateway(context, name, x, y):
    """A Basics Station with a radio at this position, registered with the LNS and connected."""
    world, runtime = _world(context), ota(context)
    eui = FIRST_GATEWAY_EUI + len(world.field.stations)
    world.service.register_station(eui)
    credentials = world.service.station_credentials(eui)
    if credentials is not None:  # CUPS and the LNS run TLS: the station's credential files
        home = StationHome(world.field.home_dir / name)
        for category in ("cups", "tc"):
            home.store_credentials(category, credentials)
    runtime.run(world.field.add_station(name, eui, (x, y)))
    runtime.devices[name] = world.field.stations[name]
    assert runtime.run_until(world.field.connected, timeout=600), f"gateway {name} did not connect to the LNS"


@given('a class {device_class} LoRaWAN device "{name}" at {x:g} m, {y:g} m')
def a_device(context, device_class, name, x, y):
    """An OTAA end device (EU868), registered with the network server through the application API."""
    world, runtime = _world(context), ota(context)
    dev_eui = FIRST_DEV_EUI + len(world.field.devices)
    app_key = runtime.rng(f"appkey:{name}").randbytes(16)
    _api_call(context, "PUT", f"/api/devices/{dev_eui:016X}",
              {"joinEui": JOIN_EUI, "appKey": app_key.hex(), "class": device_class})
    config = DeviceConfig(dev_eui=dev_eui, app_eui=int(JOIN_EUI, 16), app_key=app_key,
                          device_class=DeviceClass(device_class))
    device = world.field.add_device(name, config, (x, y), runtime.rng(f"device:{name}"))
    received = world.received.setdefault(name, [])
    device.on_downlink = lambda fport, payload, multicast: received.append(
        Received(runtime.clock.monotonic(), fport, payload, multicast))
    runtime.devices[name] = device


@given('the radio link of "{name}" loses {percent:g}% of frames')
def radio_loss(context, name, percent):
    """Every frame to or from the device is lost with this probability (the scenario's seeded rng)."""
    _world(context).field.medium.set_loss(name, FixedLoss(percent / 100))


@given('the radio link of "{name}" loses {percent:g}% of downlinks')
def radio_downlink_loss(context, name, percent):
    """Every frame to the device (unicast, multicast, fragments) is lost with this probability;
    its uplinks all arrive."""
    _world(context).field.medium.set_loss(name, FixedLoss(percent / 100), direction="downlink")


@given('the radio link of "{name}" loses {percent:g}% of uplinks')
def radio_uplink_loss(context, name, percent):
    """Every frame from the device is lost with this probability; downlinks to it all arrive."""
    _world(context).field.medium.set_loss(name, FixedLoss(percent / 100), direction="uplink")


# -- devices ---------------------------------------------------------------------------------------


@given('"{name}" has joined the network')
@when('"{name}" joins the network')
def joins(context, name):
    """OTAA join (join-request, join-accept in RX1/RX2 through the gateway)."""
    assert ota(context).run(_device(context, name).join()), f"{name} did not join"


@then('"{name}" cannot join the network')
def cannot_join(context, name):
    """Every join attempt of the device goes unanswered, and the network server has no session for it."""
    device = _device(context, name)
    assert not ota(context).run(device.join()), f"{name} joined"
    document = _api_call(context, "GET", f"/api/devices/{device.config.dev_eui:016X}")
    assert document["joined"] is False, document


@given('"{name}" sends `{payload}` on FPort {fport:d}')
@when('"{name}" sends `{payload}` on FPort {fport:d}')
def sends(context, name, payload, fport):
    """One unconfirmed uplink with its receive windows."""
    ota(context).run(_device(context, name).send(fport, _hex(payload)))


@when('"{name}" sends {count:d} uplinks on FPort {fport:d}')
def sends_many(context, name, count, fport):
    """``count`` unconfirmed uplinks one after the other (payload: the index as two octets)."""
    device = _device(context, name)

    async def send_all() -> None:
        for index in range(count):
            await device.send(fport, index.to_bytes(2, "big"))

    ota(context).run(send_all())


@when('someone replays the last uplink of "{name}"')
def replay(context, name):
    """A radio near the gateways sends the device's last frame again, bytes unchanged."""
    world, runtime = _world(context), ota(context)
    frame = world.uplinks[name][-1]
    replayer = world.field.medium.attach_device(f"replayer-{name}", _device(context, name).position,
                                                lambda reception: None, lambda *window: False)

    async def replay_once() -> None:
        sent = replayer.transmit(Transmission(EU868.default_channels_hz[0], EU868.data_rate(5), frame))
        await asyncio.sleep(sent.airtime + 2.0)
        world.field.medium.detach(replayer.name)

    runtime.run(replay_once())


@then('"{name}" received `{payload}` on FPort {fport:d}')
def received_downlink(context, name, payload, fport):
    """The device got this unicast downlink (MIC and counter checked by the device)."""
    got = [(r.fport, r.payload.hex()) for r in _world(context).received.get(name, []) if not r.multicast]
    assert (fport, _hex(payload).hex()) in got, f"{name} received {got}"


@then('"{name}" received the multicast `{payload}` on FPort {fport:d}')
def received_multicast(context, name, payload, fport):
    """The device decoded this payload (hex) from a multicast frame on the FPort."""
    got = [(r.fport, r.payload.hex()) for r in _world(context).received.get(name, []) if r.multicast]
    assert (fport, _hex(payload).hex()) in got, f"{name} received multicast {got}"


@then('"{name}" received no downlink')
def received_nothing(context, name):
    """The device decoded no downlink at all (unicast or multicast)."""
    got = _world(context).received.get(name, [])
    assert not got, f"{name} received {[(r.fport, r.payload.hex(), r.multicast) for r in got]}"


@then('the downlinks to "{name}" arrived at least {duration} apart')
def downlinks_apart(context, name, duration):
    """Consecutive downlinks of the device are separated by at least this much scenario time."""
    times = [r.at for r in _world(context).received.get(name, [])]
    assert len(times) >= 2, f"{name} received {len(times)} downlink(s)"
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert min(gaps) >= parse_duration(duration), f"gaps between downlinks: {[round(g, 2) for g in gaps]} s"


# -- the application -------------------------------------------------------------------------------


def _uplink_events(context, name: str, fport: int) -> list[dict]:
    dev_eui = f"{_device(context, name).config.dev_eui:016X}"
    return [event for event in _api_call(context, "GET", f"/api/uplinks/{fport}")["events"]
            if event["devEui"] == dev_eui]


@then('the application received `{payload}` from "{name}" on FPort {fport:d}')
def app_received(context, name, payload, fport):
    """The application API holds an uplink event with this payload (hex) from the device."""
    payloads = [event["payload"] for event in _uplink_events(context, name, fport)]
    assert _hex(payload).hex() in payloads, f"uplinks of {name} on FPort {fport}: {payloads}"


@then('the application received {count:d} uplink from "{name}" on FPort {fport:d}')
@then('the application received {count:d} uplinks from "{name}" on FPort {fport:d}')
def app_received_count(context, name, count, fport):
    """Exactly this many uplink events from the device on the FPort reached the application API."""
    events = _uplink_events(context, name, fport)
    assert len(events) == count, f"{len(events)} uplinks of {name} on FPort {fport}: {events}"


@then('the application received between {low:d} and {high:d} uplinks from "{name}" on FPort {fport:d}')
def app_received_between(context, name, low, high, fport):
    """The number of uplink events from the device on the FPort lies in this range (radio loss)."""
    count = len(_uplink_events(context, name, fport))
    assert low <= count <= high, f"{count} uplinks of {name} on FPort {fport}, expected {low}..{high}"


@given('the application queues `{payload}` for "{name}" on FPort {fport:d}')
@when('the application queues `{payload}` for "{name}" on FPort {fport:d}')
def app_queues(context, name, payload, fport):
    """A downlink in the device's queue: class A gets it after its next uplink, class C at once."""
    dev_eui = _device(context, name).config.dev_eui
    _api_call(context, "POST", f"/api/devices/{dev_eui:016X}/queue", {"fPort": fport, "payload": _hex(payload).hex()})


@when('the application queues {count:d} downlinks of {size:d} octets for "{name}" on FPort {fport:d}')
def app_queues_many(context, name, count, size, fport):
    """``count`` downlinks, the i-th made of ``size`` octets of value i."""
    dev_eui = _device(context, name).config.dev_eui
    for index in range(count):
        _api_call(context, "POST", f"/api/devices/{dev_eui:016X}/queue",
                  {"fPort": fport, "payload": (bytes([index]) * size).hex()})


@given('a multicast group "{group}" on {megahertz:g} MHz at DR{dr:d} with the members {members}')
def multicast_group(context, group, megahertz, dr, members):
    """A class C multicast group (McAddr and McKey from the scenario's rng) in the network server
    and, with an open session, in each member (the TS005 setup is the FUOTA flow's business)."""
    from otaharness.protocols.lorawan import derive_mc_session_keys

    runtime = ota(context)
    rng = runtime.rng(f"multicast:{group}")
    mc_addr = rng.getrandbits(31) | 0x01000000
    keys = derive_mc_session_keys(rng.randbytes(16), mc_addr)
    frequency = round(megahertz * 1_000_000)
    _api_call(context, "PUT", f"/api/multicast-groups/{group}",
              {"mcAddr": f"{mc_addr:08X}", "mcNwkSKey": keys.nwk_s_key.hex(), "mcAppSKey": keys.app_s_key.hex(),
               "frequency": frequency, "dr": dr})
    for name in (member.strip().strip('"') for member in members.replace(" and ", ",").split(",")):
        if not name:
            continue
        device = _device(context, name)
        device.add_multicast_group(0, mc_addr, keys)
        device.start_multicast_session(0, start_gps=device.clock.gps(), timeout_exponent=15,
                                       frequency_hz=frequency, data_rate=dr)


@when('the application sends `{payload}` to the multicast group "{group}" on FPort {fport:d}')
def app_multicast(context, group, payload, fport):
    """One multicast frame through every connected gateway; the step waits for its dntxed."""
    _api_call(context, "POST", f"/api/multicast-groups/{group}/queue", {"fPort": fport, "payload": _hex(payload).hex()})
    runtime = ota(context)

    def sent() -> bool:
        frames = _world(context).service.api.multicast_frames.get(group, [])
        return bool(frames) and frames[-1].transmitted.done()

    assert runtime.run_until(sent, timeout=120), f"multicast frame to {group} not transmitted"
    runtime.run_for(5)  # the frame's airtime


@then('the gateway "{name}" forwarded the frames as `updf` with the fields the real station sends')
def updf_fields(context, name):
    """Every updf on the LNS connection has the station's key order, signed DevAddr/MIC and upinfo."""
    import json

    world = _world(context)
    eui = world.field.stations[name].settings.eui
    texts = [t for session in world.service.stations.lns.history if session.eui == eui for t in session.texts]
    updfs = [json.loads(text) for text in texts if '"msgtype": "updf"' in text or '"msgtype":"updf"' in text]
    assert updfs, f"no updf from {format_eui(eui)}"
    for message in updfs:
        assert list(message)[:10] == ["msgtype", "MHdr", "DevAddr", "FCtrl", "FCnt", "FOpts", "FPort", "FRMPayload",
                                      "MIC", "RefTime"], list(message)
        assert -(1 << 31) <= message["DevAddr"] < (1 << 31) and -(1 << 31) <= message["MIC"] < (1 << 31)
        assert set(message["upinfo"]) == {"rctx", "xtime", "gpstime", "fts", "rssi", "snr", "rxtime"}
