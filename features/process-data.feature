@process-data
Feature: Process Data
  Number sequences as JSON, as single topics, or both; several sequences; nested main topics.

  Scenario Outline: Digits and pointers become the actual value
    Given a virtual board with config "flat-json.json"
    When the meter shows digits <digits> and pointers <pointers>
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "actual_value" = "<value>"

    Examples:
      | digits  | pointers | value |
      | 1.2,6.7 | 9.5,8.4  | 16.98 |
      | 1.2,6.8 | 0.1,0.4  | 17.00 |
      | 0,0     | 0,0      | 0.00  |
      | 9.9,9.9 | 9.9,9.9  | 99.99 |
      | 4.9,0.2 | 1.0,2.0  | 50.12 |

  Scenario: Frames typed on the console queue up
    Given a virtual board with config "flat-json.json"
    When I type "frame main digits=1,2 analogs=3,4" on the console
    Then the console reply is "ok queued frame for main (1 queued)"
    When I type "frame main digits=1,3 analogs=3,4" on the console
    Then the console reply is "ok queued frame for main (2 queued)"

  Scenario: The JSON payload of a sequence
    Given a virtual board with config "flat-json.json"
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" matches snapshot "process-data-json"

  Scenario: An unreadable digit without fallback value
    Given a virtual board with config "flat-json.json"
    When the meter shows digits 1.2,N and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" starting with "E90 No data to substitute N"
    And the JSON at "process/data/0/json" has "actual_value" = ""

  Scenario: Two sequences in JSON notation
    Given a virtual board with config "flat-json.json"
    When sequence "gas" shows digits 3,4,5
    And I trigger a cycle
    Then topic "process/data/number_sequences" is "2"
    And the JSON at "process/data/1/json" has "sequence_name" = "gas"
    And the JSON at "process/data/1/json" has "actual_value" = "34.5"
    And topic "process/data/1/actual_value" is not published

  Scenario: Topics notation under a nested main topic
    Given a virtual board with config "nested-topics.json"
    When the meter shows digits 1,9,9.6
    And I trigger a cycle
    Then topic "process/data/0/actual_value" is "199.6"
    And topic "process/data/0/raw_value" is "199.6"
    And topic "process/data/0/json" is not published

  Scenario: A sequence id other than its position
    Given a virtual board with config "nested-topics.json"
    When sequence "hot" shows digits 4,5.9 and pointers 0.2
    And I trigger a cycle
    Then topic "process/data/7/actual_value" is "46.0"
    And topic "process/data/7/sequence_name" is "hot"

  Scenario: JSON and topics together, with the HA rate
    Given a virtual board with config "ha-json-topics.json"
    When the meter shows digits 0,1,2,3 and pointers 4.4,5.5
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "actual_value" = "123.45"
    And topic "process/data/0/actual_value" is "123.45"
    And the JSON at "process/data/0/json" has "rate_per_time_unit" = "0.00"

  Scenario: Retained process data
    Given a virtual board with config "flat-json.json"
    When I trigger a cycle
    Then topic "process/data/number_sequences" is "2" and retained

  Scenario: Process data not retained
    Given a virtual board with config "nested-topics.json"
    When I trigger a cycle
    Then topic "process/data/number_sequences" is "2" and not retained

  Scenario: Timestamps carry the configured zone
    Given the config "nested-topics.json"
    And the config value "mqtt.processdatanotation" is 0
    And the board is started
    When the meter shows digits 1,2,3
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "timestamp_processed" ending with "+0000"
