@faults @virtual-only @slow
Feature: Broker state loss
  A broker restarted without persistence has forgotten everything: retained messages, the board's session and its
  subscriptions. The board learns it only from CONNACK (session present 0), and every connect brings its whole
  retained tree back (decision 1): the connection, device info, Home Assistant discovery and retained process data.
  Each scenario runs a broker of its own behind the board's cable, so the rig restarts it without touching the other
  scenarios' broker (the embedded one cannot be stopped inside the rig: a fresh one takes its place; mosquitto is
  killed and started again on its port).

  Background:
    Given the config "ha-json-topics.json"
    And the board is started

  Scenario: The embedded broker restarts without persistence: the whole retained tree comes back
    Given the board reaches its own embedded broker
    When I trigger a cycle
    And the broker restarts without persistence
    Then the board started a new session on the restarted broker
    And the whole retained tree is back within 5 s
    # Its subscriptions are back too: a cycle start reaches it.
    When I trigger a cycle

  # Skipped, with the install command, where mosquitto is not installed.
  @mosquitto
  Scenario: Mosquitto restarts without persistence: the whole retained tree comes back
    Given the board reaches its own mosquitto broker
    When I trigger a cycle
    And the broker restarts without persistence
    Then the board started a new session on the restarted broker
    And the whole retained tree is back within 5 s
    # Its subscriptions are back too: a cycle start reaches it.
    When I trigger a cycle
