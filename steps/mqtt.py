"""MQTT steps: generic clients on the scenario's broker, for checks at the message level."""

import json

from behave import given, then, when

from otaharness.bdd.support import ota, substitute
from otaharness.runtime.mqtt import MqttClient, MqttError
from otaharness.units import parse_duration

RECEIVE_TIMEOUT = 60.0


def _clients(context) -> dict:
    if not hasattr(context, "mqtt_clients"):
        context.mqtt_clients = {}
        context.mqtt_received = {}
    return context.mqtt_clients


def _client(context, name) -> MqttClient:
    try:
        return _clients(context)[name]
    except KeyError:
        raise KeyError(f"no MQTT client {name!r}: add `Given an MQTT client \"{name}\" connected "
                       "to the broker`") from None


async def _connect(context, name) -> MqttClient:
    runtime = ota(context)
    broker = await runtime.service("broker")
    host, port = await runtime.link(broker.endpoints()["mqtt"])
    client = MqttClient(name, host, port, bind_address=runtime.address_of(name))
    await client.connect()
    runtime.add_cleanup(client.disconnect)
    return client


@given('an MQTT client "{name}" connected to the broker')
def mqtt_client(context, name):
    """A plain MQTT 3.1.1 client on the scenario's broker, reaching it through the runtime's
    link (so link faults and captures apply to it as to any device)."""
    _clients(context)[name] = ota(context).run(_connect(context, name))


@when('an MQTT client "{name}" tries to connect to the broker')
def mqtt_client_tries(context, name):
    """Like the Given, but a refused connection is recorded instead of failing the step."""
    try:
        mqtt_client(context, name)
        context.mqtt_connect_error = None
    except (MqttError, OSError) as exc:
        context.mqtt_connect_error = exc


@then('the connection of "{name}" is refused')
def mqtt_refused(context, name):
    """The last `tries to connect` of this client was refused (no CONNACK or the link refused)."""
    error = getattr(context, "mqtt_connect_error", None)
    assert error is not None, f"{name} connected, but a refusal was expected"


@given('"{name}" subscribes to "{topic_filter}"')
def mqtt_subscribe(context, name, topic_filter):
    """Subscribe (QoS 1); what arrives is kept for the `receives` steps."""
    client = _client(context, name)
    received = context.mqtt_received.setdefault(name, [])
    client.add_handler(topic_filter, lambda topic, payload: received.append((topic, payload)))
    ota(context).run(client.subscribe(topic_filter, qos=1))


@when('"{name}" publishes to "{topic}"')
def mqtt_publish(context, name, topic):
    """Publish the doc string (with `${name}` values substituted), QoS 1."""
    payload = substitute(context.text or "", ota(context).values)
    ota(context).run(_client(context, name).publish(topic, payload.encode(), qos=1))


@when('"{name}" publishes {count:d} messages to "{topic}"')
def mqtt_publish_many(context, name, count, topic):
    """Publish `count` numbered JSON messages ({"n": 1} ...), QoS 1."""
    client = _client(context, name)

    async def publish_all():
        for n in range(1, count + 1):
            await client.publish(topic, json.dumps({"n": n}).encode(), qos=1)

    ota(context).run(publish_all())


def _received_on(context, name, topic):
    return [payload for got_topic, payload in context.mqtt_received.get(name, [])
            if got_topic == topic]


@then('"{name}" has received {count:d} messages on "{topic}"')
def mqtt_received_count(context, name, count, topic):
    """Within a minute of scenario time, exactly `count` messages arrived on the topic."""
    runtime = ota(context)
    runtime.run_until(lambda: len(_received_on(context, name, topic)) >= count,
                      timeout=RECEIVE_TIMEOUT)
    got = _received_on(context, name, topic)
    assert len(got) == count, f"{name} received {len(got)} messages on {topic}, expected {count}"


@then('"{name}" receives on "{topic}"')
def mqtt_receives(context, name, topic):
    """Within a minute of scenario time, the doc string's JSON arrives on the topic."""
    expected = json.loads(substitute(context.text, ota(context).values))

    def arrived():
        return any(_json_or_none(p) == expected for p in _received_on(context, name, topic))

    assert ota(context).run_until(arrived, timeout=RECEIVE_TIMEOUT), (
        f"{name} did not receive {expected!r} on {topic}; got "
        f"{[p[:200] for p in _received_on(context, name, topic)]}")


@then('"{name}" receives nothing on "{topic}" for {duration}')
def mqtt_receives_nothing(context, name, topic, duration):
    """Let the time pass and check that no message arrived on the topic meanwhile."""
    before = len(_received_on(context, name, topic))
    ota(context).run_for(parse_duration(duration))
    assert len(_received_on(context, name, topic)) == before, f"{name} received on {topic}"


def _json_or_none(payload: bytes):
    try:
        return json.loads(payload)
    except ValueError:
        return None
