@process-control
Feature: Process Control
  cycle_start triggers a cycle in any mode; set_fallbackvalue presets the fallback value.

  Scenario Outline: Any non-empty payload starts a cycle
    Given a virtual board with config "flat-json.json"
    When I publish "<payload>" to "process/ctrl/cycle_start"
    Then topic "process/status/cycle_counter" is "1"

    Examples:
      | payload |
      | 1       |
      | go      |
      | {}      |

  Scenario: An empty payload starts nothing
    Given a virtual board with config "flat-json.json"
    When I publish an empty payload to "process/ctrl/cycle_start"
    Then the console shows an error containing "cycle_start: empty payload ignored"
    And topic "process/status/cycle_counter" is not published

  Scenario: cycle_start works in setup mode
    Given the config "flat-json.json"
    And the config value "operationmode.opmode" is -1
    And the board is started
    When I trigger a cycle
    Then topic "process/status/process_status" is "Not Processing / Not Ready"

  Scenario: The fallback value fills an unreadable digit
    Given a virtual board with config "flat-json.json"
    When I publish '{"sequence":"main","value":16.98}' to "process/ctrl/set_fallbackvalue"
    And the meter shows digits 1.2,N and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "raw_value" = "1N.98"
    And the JSON at "process/data/0/json" has "actual_value" = "16.98"
    And the JSON at "process/data/0/json" has "value_status" = "000 Valid"

  Scenario: A negative value takes the current raw value
    Given a virtual board with config "flat-json.json"
    And the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    When I publish '{"sequence":"main","value":-1}' to "process/ctrl/set_fallbackvalue"
    Then the console log contains "set_fallbackvalue: 'main' = 16.980"
    When I type "status" on the console
    Then the console reply contains '"fallback_value":"16.980"'

  # Beyond 15 significant digits or an exponent of 22 the board reads these numbers as a C library's strtod does
  # (the expected text is Python's float() printed with '%.3f', as printf prints the binary value); others there can
  # differ in the last place (decision 39: 7e23 reads as 700000000000000041943040, strtod's is 699999999999999907725312).
  Scenario Outline: A fallback value of many digits or a large exponent
    Given a virtual board with config "flat-json.json"
    When I publish '{"sequence":"main","value":<value>}' to "process/ctrl/set_fallbackvalue"
    Then the console log contains "set_fallbackvalue: 'main' = <printed>"

    Examples:
      | value                | printed                            |
      | 1e25                 | 10000000000000000905969664.000     |
      | 12345678901234567.89 | 12345678901234568.000              |
      | 2.5e-2               | 0.025                              |
      | 2.5e3                | 2500.000                           |
      | 5e23                 | 499999999999999991611392.000       |
      | 9e27                 | 8999999999999999844710088704.000   |

  Scenario: A cycle_start of exactly 4096 bytes starts a cycle
    Given a virtual board with config "flat-json.json"
    When I publish 4096 bytes to "process/ctrl/cycle_start"
    Then topic "process/status/cycle_counter" is "1"

  Scenario: A set_fallbackvalue of exactly 4096 bytes is taken
    Given a virtual board with config "flat-json.json"
    When I publish '{"sequence":"gas","value":12.3}' padded with spaces to 4096 bytes to "process/ctrl/set_fallbackvalue"
    Then the console log contains "set_fallbackvalue: 'gas' = 12.30"

  # A JSON escape makes the parser hand over an owned string: the name still counts.
  Scenario: A sequence name written with a JSON escape
    Given a virtual board with config "flat-json.json"
    When I publish '{"sequence":"g\u0061s","value":12.3}' to "process/ctrl/set_fallbackvalue"
    Then the console log contains "set_fallbackvalue: 'gas' = 12.30"

  Scenario: The fallback value of another sequence
    Given a virtual board with config "flat-json.json"
    When I publish '{"sequence":"gas","value":12.3}' to "process/ctrl/set_fallbackvalue"
    Then the console log contains "set_fallbackvalue: 'gas' = 12.30"
    When I type "status" on the console
    Then the console reply contains '"fallback_value":"12.30"'
