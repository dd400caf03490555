@network-time
Feature: The board's clock in any zone and across resets
  Timestamps carry the configured zone's offset, also west of UTC and with minutes, and the time is right however
  the board got its clock: a soft reboot keeps the clock (an ESP32's RTC) and the board asks the time server again at
  once, with a clock that is already right.

  Scenario Outline: Timestamps in a zone of a fixed offset
    Given the config "flat-json.json"
    And the config value "network.time.timezone" is "<zone>"
    And the board is started
    # A cycle before the first sync is stamped 1970 (decision 52): the time comes first.
    And the console shows the time of the rig within 2 s
    When I trigger a cycle
    Then the JSON at "process/data/0/json" has "timestamp_processed" within 5 s of now at UTC offset "<offset>"

    Examples:
      | zone     | offset |
      | UTC0     | +0000  |
      | EST5     | -0500  |
      | IST-5:30 | +0530  |
      | NPT-5:45 | +0545  |
      | NST3:30  | -0330  |
      | XST-24   | +2400  |

  Scenario: After a reboot the board's clock still tells the rig's time
    Given a virtual board with config "flat-json.json"
    Then the console shows the time of the rig within 2 s
    When the board reboots from its console and asks the rig for the time again
    Then the console shows the time of the rig within 2 s
    And the device is online
    When I trigger a cycle
    Then the JSON at "process/data/0/json" has "timestamp_processed" within 5 s of now in Central European time

  # Where the zone's daylight saving rule puts the change, as the IANA database has it for the same places
  # (Europe/Berlin, America/New_York, Australia/Sydney: Python's zoneinfo); the time server tells the date.
  Scenario Outline: Daylight saving time starts and ends where the zone's rule says
    Given the config "flat-json.json"
    And the config value "network.time.timezone" is "<zone>"
    And the time server tells the time as of "<utc>"
    And the board is started
    And the board has the time server's time within 2 s
    When I trigger a cycle
    Then the JSON at "process/data/0/json" has "timestamp_processed" within 5 s of now at UTC offset "<offset>"

    Examples:
      | zone                           | utc                  | offset |
      | CET-1CEST,M3.5.0,M10.5.0/3     | 2027-03-28T00:59:00Z | +0100  |
      | CET-1CEST,M3.5.0,M10.5.0/3     | 2027-03-28T01:01:00Z | +0200  |
      | CET-1CEST,M3.5.0,M10.5.0/3     | 2027-10-31T00:59:00Z | +0200  |
      | CET-1CEST,M3.5.0,M10.5.0/3     | 2027-10-31T01:01:00Z | +0100  |
      | CET-1CEST,M3.5.0,M10.5.0/3     | 2028-07-01T12:00:00Z | +0200  |
      # The next century (2100 is no leap year), past the NTP era of 2036.
      | CET-1CEST,M3.5.0,M10.5.0/3     | 2101-03-27T00:59:00Z | +0100  |
      | CET-1CEST,M3.5.0,M10.5.0/3     | 2101-03-27T01:01:00Z | +0200  |
      | EST5EDT,M3.2.0,M11.1.0         | 2027-03-14T06:59:00Z | -0500  |
      | EST5EDT,M3.2.0,M11.1.0         | 2027-03-14T07:01:00Z | -0400  |
      | EST5EDT,M3.2.0,M11.1.0         | 2027-11-07T05:59:00Z | -0400  |
      | EST5EDT,M3.2.0,M11.1.0         | 2027-11-07T06:01:00Z | -0500  |
      | AEST-10AEDT,M10.1.0,M4.1.0/3   | 2027-01-15T00:00:00Z | +1100  |
      | AEST-10AEDT,M10.1.0,M4.1.0/3   | 2027-07-15T00:00:00Z | +1000  |
      | AEST-10AEDT,M10.1.0,M4.1.0/3   | 2027-04-03T15:59:00Z | +1100  |
      | AEST-10AEDT,M10.1.0,M4.1.0/3   | 2027-04-03T16:01:00Z | +1000  |
      # A rule on the last Sunday of February: the 22nd in 2026 (28 days), the 27th in 2028 (29 days).
      | XST-1XDT,M2.5.0,M10.5.0        | 2026-02-25T12:00:00Z | +0200  |
      | XST-1XDT,M2.5.0,M10.5.0        | 2028-02-27T00:59:00Z | +0100  |
      | XST-1XDT,M2.5.0,M10.5.0        | 2028-02-27T01:01:00Z | +0200  |
      # The last Tuesday of February 2028 is the 29th; the last Monday of February 2100 (no leap year) the 22nd.
      | XST-1XDT,M2.5.2,M10.5.0        | 2028-02-28T12:00:00Z | +0100  |
      | XST-1XDT,M2.5.2,M10.5.0        | 2028-02-29T01:01:00Z | +0200  |
      | XST-1XDT,M2.5.1,M10.5.0        | 2100-02-25T12:00:00Z | +0200  |
      # 2000 is a leap year (divisible by 400): its last Tuesday of February is the 29th.
      | XST-1XDT,M2.5.2,M10.5.0        | 2000-02-28T12:00:00Z | +0100  |
      | XST-1XDT,M2.5.2,M10.5.0        | 2000-02-29T01:01:00Z | +0200  |
