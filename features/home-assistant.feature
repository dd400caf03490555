@home-assistant
Feature: Home Assistant discovery
  Every entity is announced with valid, consistent discovery configs; HA coming online gets them again.

  Background:
    Given a virtual board with config "ha-json-topics.json"

  Scenario: Discovery is consistent and every button works
    Then topic "process/status/cycle_counter" is "1"
    And the Home Assistant discovery is consistent

  Scenario: Every discovery config
    Then topic "process/status/cycle_counter" is "1"
    And the discovery configs match snapshot "ha-discovery"

  Scenario: The actual value entity of a water meter
    Then the discovery config "sensor/main_actual_value" matches snapshot "ha-main-actual-value"

  Scenario: The cycle start button
    Then the discovery config "button/cycle_start" matches snapshot "ha-cycle-start"

  Scenario: Home Assistant coming online gets the configs again
    Then the discovery config "button/cycle_start" is published
    When I forget what was published
    And I publish "online" to the absolute topic "homeassistant/status"
    Then the discovery config "button/cycle_start" is published
    And the discovery config "sensor/connection" is published

  # Decision 53: states are not retained, so HA coming online gets them again (past the second birth's repeat).
  Scenario: Home Assistant coming online gets the states again
    When I wait 2100 ms
    And I forget what was published
    And I publish "online" to the absolute topic "homeassistant/status"
    Then topic "device/gpio/valve/state" is published
    And topic "device/status/device_uptime" is published

  @http
  Scenario: Discovery on request via REST
    When I forget what was published
    And I request "/mqtt?task=publish_ha_discovery" via HTTP
    Then the REST reply contains "001: Publication of HA discovery topics scheduled"
    And the discovery config "sensor/main_raw_value" is published

  Scenario: No discovery when it is off
    Given a virtual board with config "flat-json.json"
    Then no discovery config is published
