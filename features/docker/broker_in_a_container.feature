@docker @docker-target:mosquitto
Feature: The broker as a docker target
  Debian's Eclipse Mosquitto runs in a container the harness builds from the base image, starts on
  the host's network on a free loopback port, waits for and removes after the run
  (fixtures/docker/mosquitto/otaharness.toml: the one target section a user writes for their own
  broker image). Clients reach it as they reach the embedded broker; the run is on real time.

  Scenario: Messages cross mosquitto in a container
    Given an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "demo/#"
    When "sender" publishes 20 messages to "demo/readings"
    Then "receiver" has received 20 messages on "demo/readings"
    And the broker container is running

  Scenario: A paused broker holds a message until it is thawed, and loses none
    Given an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "held/#"
    When the broker container is paused for 3 seconds
    Then the broker container is paused
    # QoS 1: the publish waits for its PUBACK, which the frozen broker cannot send yet
    When "sender" publishes to "held/reading"
      """
      {"value": 21}
      """
    Then "receiver" receives on "held/reading"
      """
      {"value": 21}
      """
    And the broker container is running

  Scenario: A killed broker refuses clients until it is started again
    Given an MQTT client "watcher" connected to the broker
    When the broker container is killed
    Then the broker container is exited
    When an MQTT client "late" tries to connect to the broker
    Then the connection of "late" is refused
    When the broker container is started again
    Then the broker container is running
    Given an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "after/#"
    When "sender" publishes 3 messages to "after/reading"
    Then "receiver" has received 3 messages on "after/reading"

  Scenario: A restarted broker without persistence forgets its subscribers
    Given an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "kept/#"
    When the broker container is restarted
    Then the broker container is running
    Given an MQTT client "fresh" connected to the broker
    When "fresh" publishes to "kept/reading"
      """
      {"value": 1}
      """
    Then "receiver" receives nothing on "kept/reading" for 2 seconds
