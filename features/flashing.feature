@flashing @virtual-only @slow
Feature: Flashing over serial
  The rig flashes the board the way a firmware team does: it resets the chip into its ROM serial loader (BOOT held),
  writes an ESP32-C3 app image with espflash over the serial port and resets it. What was flashed decides what
  boots: the bootloader checks the image and the app reports the version of its app descriptor.
  Virtual boards only: the rig's synthetic images boot on the virtual board alone (a real board gets the real
  firmware image from ci/esp32c3-hil.yml before the suite runs).

  Background:
    Given a virtual board with config "flat-json.json"

  Scenario: A flashed image boots and reports its version
    When the board is flashed with an app image of version "v17.3.0-rc1"
    Then the device is online
    And topic "device/info/firmware_version" is "v17.3.0-rc1"
    And the console log contains "App version:      v17.3.0-rc1"

  Scenario: An image file is flashed as it is
    When the board is flashed with "fixtures/images/meterrig-v17.9.0-fixture.bin"
    Then the device is online
    And topic "device/info/firmware_version" is "v17.9.0-fixture"

  Scenario: Flashing through the ROM loader alone, without the flasher stub
    When the board is flashed through the ROM loader only with an app image of version "v17.3.1"
    Then the device is online
    And topic "device/info/firmware_version" is "v17.3.1"

  Scenario: A corrupted image never comes online and the console says why
    When the board is flashed, checks bypassed, with a corrupted app image of version "v17.3.2"
    Then the console log contains "esp_image: Checksum failed"
    And the console log contains "No bootable app partitions"
    And the board stays offline for 1500 ms
    And the board does not answer on the console
    And the console log contains "rst:0x3 (RTC_SW_SYS_RST)"

  Scenario: Power loss in the middle of flashing, then a re-flash
    When the board loses power while being flashed with an app image of version "v17.4.0"
    And the board is powered on
    Then the console log contains "Factory app partition is not bootable"
    And the board stays offline for 500 ms
    When the board is flashed with an app image of version "v17.4.0"
    Then the device is online
    And topic "device/info/firmware_version" is "v17.4.0"

  Scenario: An image for another chip is refused before anything is written
    When I flash the board with an esp32s3 app image of version "v17.5.0"
    Then flashing is refused with "wrong chip"
    And flashing is refused with "built for esp32s3"
    And the board is still running
