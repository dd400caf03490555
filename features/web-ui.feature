@browser @web-config @http
Feature: The web interface in a real browser
  A person opens Settings > Configuration, changes values, saves, and sees the result or the validation message.

  Background:
    Given a virtual board with config "flat-json.json"
    When I open the web interface

  Scenario: The page shows the running configuration
    Then the web interface field "mqtt.maintopic" shows the main topic

  Scenario: Changing the main topic in the browser moves the MQTT tree
    When I move the main topic to "fromweb" below it in the web interface
    And I save in the web interface
    Then the web interface says "Saved."
    And topic "fromweb/device/status/connection" is "online"
    And topic "device/status/connection" is "offline" and retained

  Scenario: Renaming a GPIO pin in the browser
    When I enter "pump" into "gpio.gpiopin[0].pinname" in the web interface
    And I save in the web interface
    Then the web interface says "Saved."
    And topic "device/gpio/pump/state" is '{"state":0}'

  Scenario: Changing a pin mode in the browser
    When I choose "input-pulldown" for "gpio.gpiopin[0].pinmode" in the web interface
    And I save in the web interface
    Then the web interface says "Saved."
    And the board config has "gpio.gpiopin[0].pinmode" = "input-pulldown"

  Scenario: A bad value shows its message next to the field and changes nothing
    When I enter "water//bad" into "mqtt.maintopic" in the web interface
    And I save in the web interface
    Then the web interface shows "must not contain empty levels" next to "mqtt.maintopic"
    And the web interface says "Not saved"
    And topic "device/status/connection" is "online"

  Scenario: Keys the form does not show survive a save
    When I enter "3" into "operationmode.automaticprocessinterval" in the web interface
    And I save in the web interface
    Then the web interface says "Saved."
    And the board config has "postprocessing.sequence[1].decimalshift" = -1
