"""The scenario runtime on real sockets: clock vs. broker, lifecycle, leftovers, links, capture."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scapy.all import TCP, rdpcap

from otaharness.runtime.broker import find_mosquitto
from otaharness.runtime.faults import Refuse
from otaharness.runtime.mqtt import MqttClient, MqttError
from otaharness.runtime.runtime import Runtime
from otaharness.runtime.targets import ConfigError, HarnessConfig, load_config

needs_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None and os.environ.get("CI") != "true",
    reason="Debian mosquitto is not installed (CI installs it)")


@pytest.fixture
def runtime(tmp_path):
    created = []

    def make(**config):
        config.setdefault("broker", "mosquitto")
        config.setdefault("artifacts_dir", tmp_path / "artifacts")
        made = Runtime(HarnessConfig(**config), name="test scenario")
        created.append(made)
        return made

    yield make
    for made in created:
        if not made.loop.is_closed():
            made.close()


async def _pair(runtime: Runtime, via_link: bool = True):
    broker = await runtime.service("broker")
    url = broker.endpoints()["mqtt"]
    clients = []
    for name in ("sender", "receiver"):
        host, port = await runtime.link(url) if via_link else (broker.broker.host,
                                                                  broker.broker.port)
        client = MqttClient(name, host, port, bind_address=runtime.address_of(name))
        await client.connect()
        runtime.add_cleanup(client.disconnect)
        clients.append(client)
    return clients


@needs_mosquitto
def test_no_timer_fires_while_messages_cross_the_broker(runtime):
    """20 messages cross mosquitto (through the link proxy) while a 60 s timeout is armed: the
    timeout never fires and scenario time does not move."""
    rt = runtime()

    async def exchange():
        sender, receiver = await _pair(rt)
        got = []
        done = asyncio.get_running_loop().create_future()

        def on_message(topic, payload):
            got.append(payload)
            if len(got) == 20 and not done.done():
                done.set_result(None)

        receiver.add_handler("load/#", on_message)
        await receiver.subscribe("load/#")
        for n in range(20):
            await sender.publish("load/x", b"m%d" % n, qos=0)
        async with asyncio.timeout(60):
            await done
        return len(got)

    assert rt.run(exchange()) == 20
    assert rt.clock.monotonic() == 0
    assert rt.clock.stats.probes > 0
    assert rt.close() == []


@needs_mosquitto
def test_a_stalled_broker_holds_the_clock(runtime):
    """The broker process is stopped (SIGSTOP) while a message is inside it: time must not jump
    to the 60 s timeout before the broker resumes and delivers."""
    rt = runtime(real_time_limit=30)

    async def stalled_exchange():
        sender, receiver = await _pair(rt, via_link=False)
        arrived = asyncio.get_running_loop().create_future()
        receiver.add_handler("stall", lambda t, p: arrived.done() or arrived.set_result(p))
        await receiver.subscribe("stall")
        broker = (await rt.service("broker")).broker
        os.kill(broker.pid, signal.SIGSTOP)
        threading.Timer(0.5, os.kill, (broker.pid, signal.SIGCONT)).start()
        await sender.publish("stall", b"late but delivered", qos=0)
        async with asyncio.timeout(60):
            return await arrived

    assert rt.run(stalled_exchange()) == b"late but delivered"
    assert rt.clock.monotonic() == 0
    assert rt.close() == []


@needs_mosquitto
def test_without_the_broker_probe_the_timeout_would_fire(runtime):
    """The control case: with the flush probe removed, the same stall lets time jump."""
    rt = runtime(real_time_limit=30)

    async def stalled_exchange():
        sender, receiver = await _pair(rt, via_link=False)
        arrived = asyncio.get_running_loop().create_future()
        receiver.add_handler("stall", lambda t, p: arrived.done() or arrived.set_result(p))
        await receiver.subscribe("stall")
        broker = (await rt.service("broker")).broker
        rt.clock.remove_quiet_probe(broker.flush)
        os.kill(broker.pid, signal.SIGSTOP)
        resume = threading.Timer(0.5, os.kill, (broker.pid, signal.SIGCONT))
        resume.start()
        await sender.publish("stall", b"late", qos=0)
        try:
            async with asyncio.timeout(60):
                await arrived
            return "delivered"
        except TimeoutError:
            return "timed out"
        finally:
            with rt.clock.busy("waiting for the broker to resume"):
                await asyncio.get_running_loop().run_in_executor(None, resume.join)

    assert rt.run(stalled_exchange()) == "timed out"
    assert rt.clock.monotonic() >= 60
    rt.close()


@needs_mosquitto
def test_close_stops_services_and_reports_nothing_left(runtime):
    rt = runtime()
    rt.run(_pair(rt))
    broker = rt.run(rt.service("broker")).broker
    pid = broker.pid
    assert rt.close() == []
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_leftovers_are_reported(runtime):
    rt = runtime()

    async def leave_things_behind():
        asyncio.ensure_future(asyncio.sleep(3600))
        asyncio.get_running_loop().call_later(7200, print)

    rt.run(leave_things_behind())
    stop = threading.Event()
    threading.Thread(target=stop.wait, name="forgotten-worker").start()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        leftovers = rt.close()
    finally:
        stop.set()
        process.kill()
        process.wait()
    kinds = {entry.split(" ", 1)[0] for entry in leftovers}
    assert kinds == {"task", "timer", "thread", "process"}, leftovers
    assert any("forgotten-worker" in entry for entry in leftovers)


@needs_mosquitto
def test_a_refused_link_applies_to_one_device_only(runtime):
    rt = runtime()

    async def connect_both():
        broker = await rt.service("broker")
        url = broker.endpoints()["mqtt"]
        await rt.set_link_fault("blocked", url, Refuse())
        results = {}
        for name in ("blocked", "allowed"):
            host, port = await rt.link(url)
            client = MqttClient(name, host, port, bind_address=rt.address_of(name))
            try:
                await client.connect(timeout=5)
                results[name] = "connected"
                await client.disconnect()
            except (MqttError, OSError):
                results[name] = "refused"
        return results

    assert rt.run(connect_both()) == {"blocked": "refused", "allowed": "connected"}
    assert rt.close() == []


@needs_mosquitto
def test_capture_holds_the_scenario_mqtt_traffic(runtime, tmp_path):
    rt = runtime(capture_dir=tmp_path / "captures")

    async def exchange():
        sender, receiver = await _pair(rt)
        await receiver.subscribe("cap/#")
        await sender.publish("cap/topic", b"captured payload", qos=1)

    rt.run(exchange())
    assert rt.close() == []
    packets = rdpcap(str(tmp_path / "captures" / "test-scenario.pcapng"))
    mqtt = [p for p in packets if TCP in p and 1883 in (p[TCP].sport, p[TCP].dport)]
    assert mqtt, "no MQTT packets on port 1883"
    sources = {p["IP"].src for p in mqtt if p[TCP].dport == 1883}
    assert sources == {rt.address_of("sender"), rt.address_of("receiver")}
    payload = b"".join(bytes(p[TCP].payload) for p in mqtt)
    assert b"captured payload" in payload and b"cap/topic" in payload


def test_device_addresses_and_seeded_randomness():
    rt_a = Runtime(HarnessConfig(seed=7), name="a")
    rt_b = Runtime(HarnessConfig(seed=7), name="b")
    try:
        assert rt_a.address_of("t1") == "127.1.0.1"
        assert rt_a.address_of("t2") == "127.1.0.2"
        assert rt_a.address_of("t1") == "127.1.0.1"
        assert rt_a.device_of("127.1.0.2") == "t2"
        assert rt_a.rng("radio").random() == rt_b.rng("radio").random()
        assert rt_a.rng("radio").random() != rt_a.rng("jitter").random()
    finally:
        assert rt_a.close() == [] and rt_b.close() == []
    assert Runtime(HarnessConfig(), name="x").seed == Runtime(HarnessConfig(), name="x").seed


def test_targets_from_toml_and_defines(tmp_path):
    toml = tmp_path / "otaharness.toml"
    toml.write_text('[harness]\nbroker = "amqtt"\ncapture = "caps"\nseed = 5\n'
                    '[targets.aws-iot]\ntarget = "external"\nmqtt = "mqtt://10.0.0.1:1883"\n')
    config = load_config({"seed": "9", "target.aws-iot.aws": "https://iot.example"}, path=toml,
                         environ={"CI": "true"})
    assert config.broker == "amqtt" and config.seed == 9 and config.ci
    assert config.capture_dir == Path("caps")
    assert not config.target("aws-iot").embedded
    # -D adds to (and would override) what the file's section says
    assert config.target("aws-iot").endpoints == {"mqtt": "mqtt://10.0.0.1:1883", "aws": "https://iot.example"}
    assert config.target("tr069").embedded
    assert config.any_external
    with pytest.raises(ConfigError, match="cups has no external target"):
        load_config({"target.cups": "external", "target.cups.cups": "https://cups.example"}, path=toml)
    with pytest.raises(ConfigError, match="names no endpoint"):
        load_config({"target.aws-iot": "external"})
    with pytest.raises(ConfigError, match="must be one of embedded, external, docker, not 'remote'"):
        load_config({"target.olt": "remote"}, path=toml)
    with pytest.raises(ConfigError, match="seed: must be an integer"):
        load_config({"seed": "abc"}, path=toml)


def test_servers_see_each_device_s_own_address_through_the_link(runtime):
    """The proxy is transparent on loopback: upstream, a device's connection comes from its own
    127.1.x.y address, as it would without the proxy."""
    rt = runtime()

    async def peers():
        seen = []

        async def accept(reader, writer):
            seen.append(writer.get_extra_info("peername")[0])
            writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        for name in ("cpe1", "cpe2"):
            host, port = await rt.link(url)
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(rt.address_of(name), 0))
            await reader.read()
            writer.close()
        server.close()
        await server.wait_closed()
        return seen

    assert rt.run(peers()) == [rt.address_of("cpe1"), rt.address_of("cpe2")]
    assert rt.close() == []


def test_scenarios_with_a_long_common_beginning_keep_their_own_artifacts():
    from otaharness.runtime.runtime import slug

    common = "A Basics Station recovers from interrupted upgrades and LNS trouble -- A download cut "
    first, second = slug(common + "while on the LNS"), slug(common + "before it ever joined")
    assert first != second and len(first) == len(second) == 80
    assert slug("test scenario") == "test-scenario"
