@faults
Feature: Faults
  Broker loss, power loss and resets: the board comes back by itself and loses nothing it had saved.

  Background:
    Given a virtual board with config "flat-json.json"

  @virtual-only
  Scenario: The broker restarts mid-run
    When I trigger a cycle
    And the broker restarts
    Then the history of "device/status/connection" contains "offline"
    When I trigger a cycle
    Then topic "process/status/cycle_counter" is "2"
    And topic "device/status/connection" is "online"

  @virtual-only
  Scenario: A control message sent while the broker is away is not lost
    When the broker goes away and I publish "1" to "process/ctrl/cycle_start" meanwhile
    Then topic "process/status/cycle_counter" is "1"

  @virtual-only
  Scenario: Power loss mid-cycle, then the board boots again
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I publish "1" to "process/ctrl/cycle_start"
    And the board loses power
    And the board is powered on
    Then topic "device/status/connection" is "online"
    When the meter shows digits 1.2,6.8 and pointers 0.1,0.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "actual_value" = "17.00"

  @virtual-only
  Scenario: Power loss during a config save leaves a bootable config
    When I change "operationmode.automaticprocessinterval" to 4 via the REST API
    And the board loses power
    And the board is powered on
    Then the board is still running
    And the board config has "operationmode.automaticprocessinterval" = 4

  Scenario: The fallback value survives a reset
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    And the board is reset
    And the meter shows digits 1.2,N and pointers 9.5,8.4
    And I publish "1" to "process/ctrl/cycle_start"
    Then the JSON at "process/data/0/json" has "actual_value" = "16.98"

  @virtual-only
  Scenario: Reconnects after repeated broker loss
    When the broker goes away for 300 ms
    And the broker goes away for 300 ms
    And I trigger a cycle
    Then topic "process/status/cycle_counter" is "1"

  # Stored fallback values come back with the first cycle after boot; a value set before that is saved with the
  # others still waiting, not instead of them.
  @virtual-only
  Scenario: A fallback value set before the first cycle after a power loss keeps the other sequence's stored one
    When I publish '{"sequence":"gas","value":12.3}' to "process/ctrl/set_fallbackvalue"
    Then the console log contains "set_fallbackvalue: 'gas' = 12.30"
    When I wait 300 ms
    And the board loses power
    And the board is powered on
    And I publish '{"sequence":"main","value":16.98}' to "process/ctrl/set_fallbackvalue"
    Then the console log contains "set_fallbackvalue: 'main' = 16.98"
    When I wait 300 ms
    And the board loses power
    And the board is powered on
    Then the board has the time server's time within 2 s
    When sequence "gas" reads digits "1,2,N" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/1/json" has "actual_value" = "12.3"
