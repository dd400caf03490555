@web-config @http
Feature: Configuration through the web interface and REST API
  A valid change is saved and applied; an invalid one is refused with the path of the bad key and changes nothing.

  Background:
    Given a virtual board with config "flat-json.json"

  Scenario: The configuration page is served without anything from the internet
    When I request "/" via HTTP
    Then the REST reply status is 200
    And the REST reply contains "Settings &gt; Configuration"
    And the REST reply does not contain "https://"

  Scenario: The configuration page shows each sequence's effective value of a key its entry leaves out
    # flat-json.json: entry 0 names no decimalshift, entry 1 names -1; neither names maxrate or usefallbackvalue.
    Then the configuration page shows "postprocessing.sequence[0].decimalshift" = 0
    And the configuration page shows "postprocessing.sequence[1].decimalshift" = -1
    And the configuration page shows "postprocessing.sequence[0].maxrate" = 0.15
    And the configuration page shows "postprocessing.sequence[1].usefallbackvalue" = true

  Scenario: Moving the main topic moves the whole tree
    When I move the main topic to "moved" below it
    Then topic "moved/device/status/connection" is "online"
    And topic "moved/device/info/hardware" is published
    And topic "device/status/connection" is "offline" and retained

  Scenario: An invalid value is refused and nothing changes
    When I change "operationmode.opmode" to 7 via the REST API
    Then the REST reply status is 400
    And the REST reply contains "operationmode.opmode"
    And the board config has "operationmode.opmode" = 0

  Scenario: A valid change is applied at once
    When I change "operationmode.opmode" to 1 via the REST API
    Then the REST reply status is 200
    And topic "process/status/process_status" is "Processing (Automatic)"
    And the board config has "operationmode.opmode" = 1

  Scenario: Secrets are never shown
    When I change "mqtt.password" to "s3cret" via the REST API
    And I request "/api/config" via HTTP
    Then the REST reply contains '"password":"******"'
    And the REST reply does not contain "s3cret"

  # The page shows secrets redacted; a client that saves the whole form sends them back so. The broker of the
  # scenario's own sits at the end of the virtual board's cable.
  @virtual-only
  Scenario: Saving the page's document back keeps the broker password it shows redacted
    Given the board reaches its own embedded broker that admits only "meter" with password "s3cret"
    When I post the configuration page's document to the REST config
    Then the REST reply status is 200
    When I forget what was published
    And the board is reset
    Then topic "device/status/connection" is "online"

  Scenario: The console changes the config too
    When I type 'config set operationmode.automaticprocessinterval "2.5"' on the console
    Then the console reply is "ok operationmode.automaticprocessinterval saved"
    When I trigger a cycle
    Then topic "process/status/process_interval" is "2.5"

  # The reference's web UI writes numbers as strings; any decimal notation is a number. The printed interval is the
  # value to one decimal, as Python's float() and '%.1f' make it (more than 19 digits, and exponents past 22, take
  # the parser's slow path).
  Scenario Outline: A config number written as a string, in any decimal notation
    When I type 'config set operationmode.automaticprocessinterval "<text>"' on the console
    Then the console reply is "ok operationmode.automaticprocessinterval saved"
    When I trigger a cycle
    Then topic "process/status/process_interval" is "<printed>"

    Examples:
      | text                          | printed |
      | 15e1                          | 150.0   |
      | 25E-1                         | 2.5     |
      | 12345678901234567890e-17      | 123.5   |
      | 1234567890123456789012345e-23 | 12.3    |

  Scenario: Every bad key of a config is named in the console's one err line
    When I type 'config merge {"operationmode":{"opmode":9},"mqtt":{"clientid":""}}' on the console
    Then the console reply starts with "err invalid-config "
    And the console reply contains "operationmode.opmode: "
    And the console reply contains "; mqtt.clientid: must be 1..64 characters without spaces"
    And the board config has "operationmode.opmode" = 0

  Scenario: A new config survives a reset
    When I change "operationmode.automaticprocessinterval" to 3 via the REST API
    And the board is reset
    Then the board config has "operationmode.automaticprocessinterval" = 3

  Scenario: The REST status shows the running device
    When I request "/api/status" via HTTP
    Then the REST reply contains '"mqtt_connected":true'

  # Arrays are replaced whole (objects merge key by key): renaming a sequence through REST posts the list.
  Scenario: A sequence renamed through REST publishes under its new name
    When I post '{"numbersequences":{"sequence":[{"sequenceid":0,"sequencename":"main"},{"sequenceid":1,"sequencename":"heat"}]}}' to the REST config
    Then the REST reply status is 200
    When I trigger a cycle
    Then the JSON at "process/data/1/json" has "sequence_name" = "heat"
    And the board config has "numbersequences.sequence[1].sequencename" = "heat"

  Scenario: The console sets a value inside a list
    When I type 'config set numbersequences.sequence[1].sequencename "heat"' on the console
    Then the console reply is "ok numbersequences.sequence[1].sequencename saved"
    When I trigger a cycle
    Then the JSON at "process/data/1/json" has "sequence_name" = "heat"
