@home-assistant @live-home-assistant @slow
Feature: A real Home Assistant discovers the meter
  Home Assistant 2024.3.3 itself (ci/home-assistant/install.sh) joins the scenario's broker, discovers the board and
  shows its entities; the steps read what a user of HA sees: states, units, availability, the cycle start button and
  HA's log. One HA serves the scenarios (each board has its own main topic, hence its own HA device), under a
  discovery prefix of its own; the scenario that restarts HA has an HA of its own. Without HA installed these
  scenarios are skipped (hil run --require-home-assistant fails instead).

  # First: its own HA's start and restart are the group's longest path.
  Scenario: GPIO entities are right after Home Assistant restarts
    Given a virtual board with config "ha-json-topics.json" that a Home Assistant of its own discovers
    Then Home Assistant has an entity for every discovery config of the board
    When I publish '{"state":1}' to "device/gpio/valve/ctrl"
    And I publish '{"state":1,"pwm_duty":4096}' to "device/gpio/dimmer/ctrl"
    Then topic "device/gpio/valve/state" is '{"state":1}' and not retained
    And topic "device/gpio/dimmer/state" is '{"state":1,"pwm_duty":4096}' and not retained
    # GPIO states are not retained: the restarted HA has them only if the board publishes them again when HA's
    # birth message says `online`.
    When Home Assistant restarts
    Then Home Assistant shows "valve_state" as "on"
    And Home Assistant shows "dimmer_state" as "on"
    And Home Assistant shows "dimmer_pwm_duty" as "4096"
    And Home Assistant shows "connection" as "online"
    And Home Assistant logged no error or warning about the board

  # HA subscribes to a new entity's state topic after its config arrives: the board publishes its states again 2 s
  # after connecting, so they are not `unknown` until the first change (decision 53).
  Scenario: A newly discovered meter's GPIO entities show their states at once
    Given a virtual board with config "ha-json-topics.json" that Home Assistant discovers
    Then Home Assistant has an entity for every discovery config of the board
    And Home Assistant shows "valve_state" as "off"
    And Home Assistant shows "dimmer_state" as "off"
    And Home Assistant shows "connection" as "online"

  Scenario: The meter's value after a cycle
    Given a virtual board with config "ha-json-topics.json" that Home Assistant discovers
    Then Home Assistant has an entity for every discovery config of the board
    When the meter shows digits 0,1,2,3 and pointers 4.4,5.5
    And I trigger a cycle
    Then Home Assistant shows "main_actual_value" as "123.45"
    And the unit of "main_actual_value" in Home Assistant is "m³"
    And Home Assistant shows "main_value_status" as "000 Valid"
    And Home Assistant shows "connection" as "online"
    And Home Assistant logged no error or warning about the board

  Scenario: An unreadable digit: no error in Home Assistant's log
    Given a virtual board with config "ha-json-topics.json" that Home Assistant discovers
    When the meter shows digits 0,1,2,3 and pointers 4.4,5.5
    And I trigger a cycle
    Then Home Assistant shows "main_raw_value" as "0123.45"
    When the meter shows digits 0,1,N,3 and pointers 4.4,5.5
    And I trigger a cycle
    Then Home Assistant shows "main_raw_value" as "unknown"
    And Home Assistant logged no error or warning about the board

  @virtual-only
  Scenario: The board's entities are unavailable while it has no power
    Given a virtual board with config "ha-json-topics.json" that Home Assistant discovers
    When the meter shows digits 0,1,2,3 and pointers 4.4,5.5
    And I trigger a cycle
    Then every entity of the board is available in Home Assistant
    And Home Assistant shows "main_actual_value" as "123.45"
    When the board loses power
    Then every entity of the board is unavailable in Home Assistant
    When the board is powered on
    Then every entity of the board is available in Home Assistant
    And Home Assistant shows "main_actual_value" as "123.45"
    And Home Assistant logged no error or warning about the board

  Scenario: The cycle start button in Home Assistant runs a cycle
    Given a virtual board with config "ha-json-topics.json" that Home Assistant discovers
    Then topic "process/status/cycle_counter" is "1"
    When the meter shows digits 0,1,2,3 and pointers 4.4,5.5
    And I press "cycle_start" in Home Assistant
    Then topic "process/status/cycle_counter" is "2"
    And Home Assistant shows "main_actual_value" as "123.45"
    # A cycle a moment later: the rate check keeps the actual value (E93), the raw value is the new reading.
    When the meter shows digits 0,1,2,4 and pointers 1.1,2.2
    And I press "cycle_start" in Home Assistant
    Then topic "process/status/cycle_counter" is "3"
    And Home Assistant shows "main_raw_value" as "0124.12"
    And Home Assistant logged no error or warning about the board
