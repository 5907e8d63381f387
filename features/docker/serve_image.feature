@docker @docker-target:otaharness-serve
Feature: `otaharness serve` packaged as an image, as a user's back end
  The harness builds an image of this project (Debian's python3 and mosquitto, the project's
  wheel) and runs `otaharness serve --json` in it as the broker's docker target: the endpoints are
  those the server prints, and nothing in these scenarios reaches inside it. They need no
  server-side control, so they run against any back end, on the virtual clock
  (fixtures/docker/otaharness-serve/otaharness.toml; `features/harness/` runs against it the same
  way with OTAHARNESS_CONFIG pointing at that file).

  Scenario: Messages cross the served broker while no scenario time passes
    Given the time is 2026-03-02T02:00:00Z
    And an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "demo/#"
    When "sender" publishes 20 messages to "demo/readings"
    Then "receiver" has received 20 messages on "demo/readings"
    And the time is 2026-03-02T02:00:00Z
    And the broker container is running

  Scenario: A delayed link to the served broker holds a message back until its time has come
    Given an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "slow/#"
    And the link between "receiver" and the MQTT endpoint is delayed by 90 seconds
    When "sender" publishes to "slow/reading"
      """
      {"value": 7}
      """
    Then "receiver" receives nothing on "slow/reading" for 80 seconds
    And soon "receiver" receives on "slow/reading"
      """
      {"value": 7}
      """

  Scenario: A restarted served broker prints new endpoints, and clients reach it there
    Given an MQTT client "before" connected to the broker
    When the broker container is restarted
    Then the broker container is running
    Given an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "again/#"
    When "sender" publishes 5 messages to "again/readings"
    Then "receiver" has received 5 messages on "again/readings"

  Scenario: A client waits out a pause of the served broker on the scenario clock
    Given the time is 2026-03-02T02:00:00Z
    And an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "held/#"
    When the broker container is paused for 20 seconds
    # QoS 1: the PUBACK comes once the broker is thawed, 20 s later on the scenario clock (the
    # client gives up after 30 s)
    And "sender" publishes to "held/reading"
      """
      {"value": 30}
      """
    Then the time is 2026-03-02T02:00:20Z
    And "receiver" receives on "held/reading"
      """
      {"value": 30}
      """
    And the broker container is running
