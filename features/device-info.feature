@device-info
Feature: Device Info
  The device publishes its static info, retained, after it connects and on request.

  Background:
    Given a virtual board with config "flat-json.json"

  Scenario: Hardware, network and firmware version are retained after connect
    Then topic "device/info/firmware_version" is published
    And the JSON at "device/info/hardware" has "board.chip_model" = "ESP32C3"
    And the JSON at "device/info/network" has "ipv4_address" = the board's IP address

  Scenario: Device info is retained for late subscribers
    Then topic "device/info/firmware_version" is published
    And the topic tree under "device/info" matches snapshot "device-info-tree"

  Scenario: The hardware payload shape
    Then the JSON at "device/info/hardware" matches snapshot "device-info-hardware"

  @http
  Scenario: Device info is republished on REST request
    When I forget what was published
    And I request "/mqtt?task=publish_device_info" via HTTP
    Then the REST reply contains "002: Publication of device info topics scheduled"
    And topic "device/info/hardware" is published

  @http
  Scenario: The REST API names itself
    When I request "/mqtt?task=api_name" via HTTP
    Then the REST reply status is 200
    And the REST reply contains "mqtt:v2"

  # v17's handler reads the query into a 64-byte buffer (server_mqtt.cpp): none, or one too long, shows the usage.
  @http
  Scenario Outline: The REST handler's usage page
    When I request "<path>" via HTTP
    Then the REST reply status is 200
    And the REST reply contains "Handler usage:"

    Examples:
      | path                                                                            |
      | /mqtt                                                                           |
      | /mqtt?task=api_name&padding=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa |

  @http
  Scenario: An unknown REST task is answered as v17 answers it
    When I request "/mqtt?task=reboot_everything" via HTTP
    Then the REST reply status is 200
    And the REST reply contains "E90: Task not found"
