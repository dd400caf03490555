@faults @virtual-only @slow
Feature: Network faults
  A board on Wi-Fi sees its link to the broker slow down, go silent, break in the middle of a packet, or lead to a
  broker that takes the connection and never answers. Each scenario's board reaches the broker through a cable of
  its own (virtual boards only: a real board has no rig cable), which the rig breaks the way Wi-Fi breaks. The
  board's keepalive is 2 s here (mqtt.keepalive): it pings after 1 s without sending and waits up to a keepalive for
  the answer, so it must find a dead connection within 1.5 keepalives; a CONNECT nobody answers costs it one.

  Scenario: Latency and jitter slow the board down but never cost it the connection
    Given the config "flat-json.json"
    And the config value "mqtt.keepalive" is 2
    And the link adds 150 ms latency and 100 ms jitter
    And the board is started
    Then a cycle round trip takes between 300 and 2000 ms
    # Longer than a keepalive: the board's pings cross the slow link and their answers come back in time.
    When I wait 2500 ms
    Then a cycle round trip takes between 300 and 2000 ms
    And the board never lost its connection

  Scenario: A slow link holds the board's publishes back and loses none of them
    Given the config "ha-json-topics.json"
    And the config value "mqtt.keepalive" is 2
    And the link carries at most 16000 bytes per second
    And the board is started
    When I trigger a cycle
    Then the Home Assistant discovery is consistent
    And the board's publishes crossed the link at no more than 16000 bytes per second
    And the board never lost its connection

  Scenario: A black hole: the board's keepalive finds the half-open connection and it reconnects
    Given the config "flat-json.json"
    And the config value "mqtt.keepalive" is 2
    And the board is started
    When the link becomes a black hole
    Then the board detects the dead connection within 1.5 keepalives
    And the board is back online within 2 keepalives of the fault
    When I trigger a cycle
    Then topic "process/status/cycle_counter" is "1"
    And topic "device/status/connection" is "online"

  Scenario: A broker that takes the connection and never sends CONNACK
    Given the config "flat-json.json"
    And the config value "mqtt.keepalive" is 2
    And the board is started
    When the broker stops answering CONNECT
    Then the board gives up waiting for CONNACK within 1 keepalive
    When the broker answers CONNECT again
    Then the board is back online within 1.5 keepalives of the fault
    When I trigger a cycle
    Then topic "process/status/cycle_counter" is "1"

  Scenario: The link breaks in the middle of a publish: the board sends it again, whole
    Given the config "flat-json.json"
    And the config value "mqtt.keepalive" is 2
    And the board is started
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And the link cuts the board's next publish to "process/data/0/json" in the middle
    And I trigger a cycle
    Then the link cut a publish to "process/data/0/json" in the middle
    And the board is back online within 1 keepalive of the fault
    And the JSON at "process/data/0/json" has "actual_value" = "16.98"
