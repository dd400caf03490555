@migration-notes
Feature: Migration notes v16 -> v17
  Every replacement topic named in fixtures/migration/v16-v17.toml is published by the running firmware, no v16
  topic is.

  Scenario Outline: The notes hold for every notation
    Given a virtual board with config "<config>"
    When I trigger a cycle
    Then the migration notes hold for this device

    Examples:
      | config              |
      | flat-json.json      |
      | nested-topics.json  |
      | ha-json-topics.json |

  Scenario Outline: No v16 topic is published
    Given a virtual board with config "flat-json.json"
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    Then topic "<v16>" is not published

    Examples:
      | v16              |
      | Connection       |
      | Uptime           |
      | main/value       |
      | main/json        |
      | main/raw         |
