@gpio @wiring
Feature: GPIO control and status
  Outputs and PWM outputs take ctrl from MQTT; inputs publish their state; flashlights follow the process.

  Background:
    Given a virtual board with config "flat-json.json"

  @loopback
  Scenario: An output jumpered to an input is seen on the input
    Given GPIO 12 is jumpered to GPIO 14
    Then topic "device/gpio/door/state" is '{"state":0}' and not retained
    # Right after the jumper's own edge: inside the 200 ms debounce, accepted once the level has lasted.
    When I publish '{"state":1}' to "device/gpio/relay/ctrl"
    Then topic "device/gpio/door/state" is '{"state":1}' and not retained
    When I publish '{"state":0}' to "device/gpio/relay/ctrl"
    Then the history of "device/gpio/door/state" contains '{"state":1}'
    And topic "device/gpio/door/state" is '{"state":0}' and not retained

  Scenario: Switch an output on
    When I publish '{"state":1}' to "device/gpio/relay/ctrl"
    Then GPIO 12 is high
    And topic "device/gpio/relay/state" is '{"state":1}' and not retained

  Scenario: Switch an output off again
    When I publish '{"state":1}' to "device/gpio/relay/ctrl"
    And I publish '{"state":0}' to "device/gpio/relay/ctrl"
    Then GPIO 12 is low
    And topic "device/gpio/relay/state" is '{"state":0}'

  Scenario: Set a PWM duty
    When I publish '{"state":1,"pwm_duty":4096}' to "device/gpio/gpio13/ctrl"
    Then topic "device/gpio/gpio13/state" is '{"state":1,"pwm_duty":4096}'
    And GPIO 13 has PWM duty 4096

  Scenario: The largest duty at 5 kHz is 8191 (13 bits)
    When I publish '{"state":1,"pwm_duty":8191}' to "device/gpio/gpio13/ctrl"
    Then topic "device/gpio/gpio13/state" is '{"state":1,"pwm_duty":8191}'

  # The reference's duty resolution (gpioControl.cpp calcDutyResolution): log2(80 MHz / f) bits, integer division
  # first, at most 14 bits; a duty above 2^bits - 1 is refused (decision 54).
  Scenario Outline: The largest duty follows the PWM frequency
    Given the config "flat-json.json"
    And the config value "gpio.gpiopin[1].pwmfrequency" is <frequency>
    And the board is started
    When I publish '{"state":1,"pwm_duty":<max>}' to "device/gpio/gpio13/ctrl"
    Then topic "device/gpio/gpio13/state" is '{"state":1,"pwm_duty":<max>}'
    And GPIO 13 has PWM duty <max>
    When I publish '{"state":1,"pwm_duty":<over>}' to "device/gpio/gpio13/ctrl"
    Then the console shows an error containing 'out of range 0..<max>'
    And GPIO 13 has PWM duty <max>

    Examples:
      | frequency | max   | over  |
      | 1000      | 16383 | 16384 |
      | 4882      | 16383 | 16384 |
      | 4883      | 8191  | 8192  |
      | 20000     | 2047  | 2048  |
      | 40000     | 1023  | 1024  |
      | 100000    | 511   | 512   |

  # cJSON's valueint: a state is truncated toward zero, so 0.9 is off and -1 is on.
  Scenario Outline: A state that is not 0 or 1
    When I publish '{"state":1}' to "device/gpio/relay/ctrl"
    And I publish '{"state":<state>}' to "device/gpio/relay/ctrl"
    Then topic "device/gpio/relay/state" is '{"state":<level>}'
    And GPIO 12 is <pin>

    Examples:
      | state | level | pin  |
      | 0.9   | 0     | low  |
      | -0.5  | 0     | low  |
      | -1    | 1     | high |
      | 2     | 1     | high |

  Scenario: A GPIO ctrl over 4 KiB is refused and the pin stays as it was
    When I publish '{"state":1}' to "device/gpio/relay/ctrl"
    And I publish 5000 bytes to "device/gpio/relay/ctrl"
    Then the console shows an error containing "exceeds the 4 KiB limit"
    And GPIO 12 is high

  # Every mode of the reference's pin configuration, by the name the console reports.
  Scenario Outline: Every pin mode by its name
    Given the config "flat-json.json"
    And the config value "gpio.gpiopin[0].pinmode" is "<mode>"
    And the board is started
    When I type "status" on the console
    Then the console reply contains '"gpio":12,"mode":"<mode>"'

    Examples:
      | mode                |
      | input               |
      | input-pullup        |
      | input-pulldown      |
      | output              |
      | output-pwm          |
      | flashlight-default  |
      | flashlight-pwm      |
      | flashlight-smartled |
      | flashlight-digital  |
      | trigger-cycle-start |

  # An edge inside the debounce time of the last accepted one is held back until the level has lasted it (a bounce
  # back cancels it): here 1000 ms, so a second edge at once is not published for a while, then it is.
  Scenario: A second edge inside the debounce time is published once the level has lasted
    Given the config "flat-json.json"
    And the config value "gpio.gpiopin[2].inputdebouncetime" is 1000
    And the board is started
    When I set input GPIO 14 low
    Then topic "device/gpio/door/state" is '{"state":0}'
    When I set input GPIO 14 high
    Then topic "device/gpio/door/state" stays '{"state":0}' for 400 ms
    And topic "device/gpio/door/state" is '{"state":1}'

  # Network time arriving steps the board's clock: the held-back edge's time moves along, so it still waits out its
  # debounce time (and is published then, with nothing else waking the board).
  Scenario: Network time arriving while an input edge is held back does not cut its debounce time
    Given the config "flat-json.json"
    And the config value "gpio.gpiopin[2].inputdebouncetime" is 3000
    And the time server answers after 1500 ms
    And the board is started
    When I set input GPIO 14 low
    Then topic "device/gpio/door/state" is '{"state":0}'
    When I set input GPIO 14 high
    Then topic "device/gpio/door/state" stays '{"state":0}' for 2000 ms
    And topic "device/gpio/door/state" is '{"state":1}' within 2000 ms
    And the board has the time server's time within 2 s

  Scenario: An input that is not a cycle trigger starts no cycle
    When I set input GPIO 14 low
    Then topic "device/gpio/door/state" is '{"state":0}'
    When I wait 300 ms
    And I type "status" on the console
    Then the console reply contains '"cycle_counter":0'

  Scenario: An input publishes its level
    Then topic "device/gpio/door/state" is '{"state":1}'
    When I set input GPIO 14 low
    Then topic "device/gpio/door/state" is '{"state":0}'
    # The pin debounces for 200 ms (inputdebouncetime).
    When I wait 250 ms
    And I set input GPIO 14 high
    Then topic "device/gpio/door/state" is '{"state":1}'

  Scenario: The flashlight is off again after the image is taken
    When I trigger a cycle
    Then GPIO 4 is low
    And the console log contains "process state: Take Image"

  Scenario: A pin without a name is called gpio<N>
    Then topic "device/gpio/gpio13/state" is '{"state":0,"pwm_duty":0}'

  Scenario: A falling edge on a trigger pin starts a cycle
    Given a virtual board with config "ha-json-topics.json"
    Then topic "process/status/cycle_counter" is "1"
    When I set input GPIO 15 low
    Then topic "process/status/cycle_counter" is "2"
