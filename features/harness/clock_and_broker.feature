Feature: Scenario time, the broker and link faults
  Every scenario has its own broker, its own clock and its own links. Time passes only when a
  step lets it, and then jumps from timer to timer as soon as nothing is in flight, so days of
  scenario time cost no real waiting and no timeout fires while a message crosses the broker.

  Scenario: Messages cross the broker while no scenario time passes
    Given the time is 2026-03-02T02:00:00Z
    And an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "demo/#"
    When "sender" publishes 20 messages to "demo/readings"
    Then "receiver" has received 20 messages on "demo/readings"
    And the time is 2026-03-02T02:00:00Z

  Scenario: Days of scenario time pass in moments
    Given the time is 2026-03-02T02:00:00Z
    When 3 days pass
    Then the time is 2026-03-05T02:00:00Z

  Scenario: A client whose link is refused cannot reach the broker
    Given an MQTT client "watcher" connected to the broker
    And the link between "late" and the MQTT endpoint is refused
    When an MQTT client "late" tries to connect to the broker
    Then the connection of "late" is refused

  Scenario: A message with values substituted arrives as sent
    Given `site` is `plant-7`
    And an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "sites/+/status"
    When "sender" publishes to "sites/plant-7/status"
      """
      {"site": "${site}", "state": "up"}
      """
    Then "receiver" receives on "sites/plant-7/status"
      """
      {"site": "plant-7", "state": "up"}
      """

  Scenario: A delayed link holds a message back until its time has come
    Given an MQTT client "sender" connected to the broker
    And an MQTT client "receiver" connected to the broker
    And "receiver" subscribes to "slow/#"
    And the link between "receiver" and the MQTT endpoint is delayed by 90 seconds
    When "sender" publishes to "slow/reading"
      """
      {"value": 42}
      """
    Then "receiver" receives nothing on "slow/reading" for 80 seconds
    And soon "receiver" receives on "slow/reading"
      """
      {"value": 42}
      """
