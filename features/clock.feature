@network-time
Feature: The board's clock in any zone and across resets
  Timestamps carry the configured zone's offset, also west of UTC and with minutes, and the time is right however
  the board got its clock: a soft reboot keeps the clock (an ESP32's RTC) and the board asks the time server again at
  once, with a clock that is already right.

  Scenario Outline: Timestamps in a zone of a fixed offset
    Given the config "flat-json.json"
    And the config value "network.time.timezone" is "<zone>"
    And the board is started
    When I trigger a cycle
    Then the JSON at "process/data/0/json" has "timestamp_processed" within 5 s of now at UTC offset "<offset>"

    Examples:
      | zone     | offset |
      | UTC0     | +0000  |
      | EST5     | -0500  |
      | IST-5:30 | +0530  |
      | NPT-5:45 | +0545  |
      | NST3:30  | -0330  |

  Scenario: After a reboot the board's clock still tells the rig's time
    Given a virtual board with config "flat-json.json"
    Then the console shows the time of the rig within 2 s
    When the board reboots from its console and asks the rig for the time again
    Then the console shows the time of the rig within 2 s
    And the device is online
    When I trigger a cycle
    Then the JSON at "process/data/0/json" has "timestamp_processed" within 5 s of now in Central European time
