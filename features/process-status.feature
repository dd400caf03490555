@process-status
Feature: Process Status
  Operation modes, the process state, and process_error escalation (-1/-2 errors, 1/2 deviations).

  Scenario: Manual mode after a cycle
    Given a virtual board with config "flat-json.json"
    When I trigger a cycle
    Then topic "process/status/process_status" is "Processing (Triggered Only)"
    And topic "process/status/process_state" is "Idle - No Autostart"
    And topic "process/status/process_interval" is "1.0"
    And topic "process/status/process_error" is "0"
    And topic "process/status/cycle_counter" is "1" and not retained

  Scenario: Automatic mode runs cycles by itself
    Given a virtual board with config "ha-json-topics.json"
    Then topic "process/status/cycle_counter" is "1"
    And topic "process/status/process_status" is "Processing (Automatic)"
    And topic "process/status/process_interval" is "5.0"

  @http
  Scenario: A new processing interval takes effect at once
    Given the config "flat-json.json"
    And the config value "operationmode.opmode" is 1
    And the config value "operationmode.automaticprocessinterval" is 10
    And the board is started
    Then topic "process/status/cycle_counter" is "1"
    When I change "operationmode.automaticprocessinterval" to 5 via the REST API
    Then topic "process/status/cycle_counter" is "2"

  Scenario: Every state of a cycle is published, in v17's order
    Given a virtual board with config "flat-json.json"
    When I trigger a cycle
    Then topic "process/status/process_state" went through, in this order:
      | Take Image              |
      | Image Alignment         |
      | ROI Processing - Digit  |
      | ROI Processing - Analog |
      | Post-Processing         |
      | Publish to MQTT         |
      | Publish to MQTT         |
      | Additional Tasks        |
      | Idle - No Autostart     |

  Scenario: A cycle with an error handles its events before the additional tasks
    Given a virtual board with config "flat-json.json"
    When the image alignment fails
    And I trigger a cycle
    Then topic "process/status/process_state" went through, in this order:
      | Take Image                  |
      | Image Alignment             |
      | Publish to MQTT             |
      | Publish to MQTT             |
      | Post Process Event Handling |
      | Additional Tasks            |
      | Idle - No Autostart         |

  Scenario: A clean cycle after an error says the old error, then 0
    Given a virtual board with config "flat-json.json"
    When the image alignment fails
    And I trigger a cycle
    And I forget what was published
    And I trigger a cycle
    Then topic "process/status/process_error" went through, in this order:
      | -1 |
      | 0  |

  Scenario: One failed alignment is an error
    Given a virtual board with config "flat-json.json"
    When the image alignment fails
    And I trigger a cycle
    Then topic "process/status/process_error" is "-1"

  Scenario: Three failed alignments in a row escalate
    Given a virtual board with config "flat-json.json"
    When the image alignment fails
    And I trigger a cycle
    And the image alignment fails
    And I trigger a cycle
    Then topic "process/status/process_error" is "-1"
    When the image alignment fails
    And I trigger a cycle
    Then topic "process/status/process_error" is "-2"

  Scenario: A good cycle clears the error
    Given a virtual board with config "flat-json.json"
    When the image alignment fails
    And I trigger a cycle
    And I trigger a cycle
    Then topic "process/status/process_error" is "0"

  Scenario: A rate too high is a deviation, three in a row escalate
    Given a virtual board with config "nested-topics.json"
    When sequence "hot" shows digits 4,5.9 and pointers 0.2
    And I trigger a cycle
    And sequence "hot" shows digits 9,0 and pointers 0.5
    And I trigger a cycle
    Then topic "process/status/process_error" is "1"
    And topic "process/data/7/value_status" is "E93 Rate too high (>) | Value: 90.0, Fallback: 46.0, Rate: 44.0"
    When I trigger 2 cycles
    Then topic "process/status/process_error" is "2"
    And topic "process/data/7/actual_value" is "46.0"
