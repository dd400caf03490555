@postprocessing
Feature: Digitization and post-processing
  What the ROI results of a meter become on MQTT, as the reference firmware reads them: digits (class-100, class-11)
  and analog pointers, the last digit's hand-over from the pointer (sync value), extended resolution, decimal shift,
  leading N; then post-processing against the fallback value: N substituted, digit-increase consistency, the max-rate
  checks per minute and per interval, negative rates, and the fallback value's age when the board starts.

  Scenario Outline: The spec's digitization examples read as the reference reads them
    Given a virtual board set up for example <example> of "fixtures/digitization-examples.toml"
    When the meter shows the ROI results of example <example> of "fixtures/digitization-examples.toml"
    And I trigger a cycle
    Then the actual value is the expected value of example <example> of "fixtures/digitization-examples.toml"

    Examples:
      | example |
      | 1       |
      | 2       |
      | 3       |
      | 4       |
      | 5       |
      | 6       |
      | 7       |
      | 8       |

  # Worked through the reference algorithm (evalDigitNumber, evalAnalogNumber, evalAnalogToDigitTransition,
  # shiftDecimal, setDecimalShift), as firmware/core/tests/digitization.rs has them.
  Scenario Outline: Digits and pointers read as the reference reads them
    Given the config "flat-json.json"
    And sequence "main" has <d> digits and <p> pointers
    And the config value "digit.cnntype" is "<model>"
    And sequence "main" has post-processing "extendedresolution" = <ext>
    And sequence "main" has post-processing "decimalshift" = <shift>
    And sequence "main" has post-processing "analogdigitsyncvalue" = "<sync>"
    And the board is started
    When sequence "main" reads digits "<digits>" and pointers "<pointers>"
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "actual_value" = "<value>"
    And the JSON at "process/data/0/json" has "value_status" = "000 Valid"

    Examples:
      | d | digits      | p | pointers | model    | ext   | shift | sync | value |
      | 3 | 1,2,3       | 0 |          | class100 | false | 0     | 9.2  | 123   |
      | 3 | 1,2,3.5     | 0 |          | class100 | false | 0     | 9.2  | 123   |
      | 3 | 1,2,3.5     | 0 |          | class100 | true  | 0     | 9.2  | 123.5 |
      | 3 | 1,2.8,0.1   | 0 |          | class100 | false | 0     | 9.2  | 130   |
      | 3 | 1,2.8,5     | 0 |          | class100 | false | 0     | 9.2  | 135   |
      | 3 | 1,2.2,5     | 0 |          | class100 | false | 0     | 9.2  | 125   |
      | 3 | 1,3.1,9.9   | 0 |          | class100 | false | 0     | 9.2  | 129   |
      | 2 | 1,2         | 0 |          | class100 | false | 2     | 9.2  | 1200  |
      | 2 | 1,2         | 0 |          | class100 | false | -3    | 9.2  | 0.012 |
      | 4 | 0,0,4,2     | 0 |          | class100 | false | 0     | 9.2  | 42    |
      | 3 | 1,0.2,9.8   | 0 |          | class100 | false | 0     | 9.2  | 99    |
      | 3 | 1,0.5,1.5   | 0 |          | class100 | false | 0     | 9.2  | 101   |
      | 0 |             | 2 | 3.3,7.8  | class100 | false | 0     | 9.2  | 37    |
      | 0 |             | 2 | 0.1,8.0  | class100 | false | 0     | 9.2  | 98    |
      | 0 |             | 2 | 0.1,2.0  | class100 | false | 0     | 9.2  | 2     |
      | 0 |             | 2 | 9.8,8.0  | class100 | false | 0     | 9.2  | 98    |
      | 0 |             | 2 | 9.8,1.0  | class100 | false | 0     | 9.2  | 1     |
      | 0 |             | 2 | 3.3,7.8  | class100 | true  | 0     | 9.2  | 37.8  |
      | 0 |             | 2 | 3.3,7.8  | class100 | false | -2    | 9.2  | 0.37  |
      | 1 | 5           | 2 | 2.9,0.1  | class100 | false | 0     | 9.2  | 5.30  |
      | 2 | 1,4.9       | 1 | 9.5      | class100 | false | 0     | 9.2  | 14.9  |
      | 2 | 1,4.9       | 1 | 0.2      | class100 | false | 0     | 9.2  | 15.0  |
      | 3 | 4,0,7       | 0 |          | class11  | true  | 0     | 9.2  | 407   |
      | 3 | 4,0,7       | 1 | 5.5      | class11  | false | 0     | 9.2  | 407.5 |
      | 3 | 4,0,7       | 0 |          | class11  | false | -2    | 9.2  | 4.07  |
      | 1 | 2           | 2 | 4.4,6.6  | class100 | true  | 0     | 9.2  | 2.466 |
      | 1 | 3.9         | 1 | 8.0      | class100 | false | 0     | 7.7  | 3.8   |
      | 2 | 1,4.6       | 1 | 1.0      | class100 | false | 0     | 9.2  | 15.1  |
      | 2 | 1,4.6       | 1 | 6.0      | class100 | false | 0     | 9.2  | 14.6  |
      | 2 | 1,4.9       | 1 | 6.0      | class100 | false | 0     | 9.2  | 15.6  |

  # A meter of three digits and no pointers (0 decimal places): the first reading becomes the fallback value, the
  # second is checked against it.
  Scenario Outline: A second reading is checked against the first
    Given the config "flat-json.json"
    And sequence "main" has 3 digits and 0 pointers
    And the config value "digit.cnntype" is "<model>"
    And sequence "main" has post-processing "maxratechecktype" = <check>
    And sequence "main" has post-processing "maxrate" = "<max>"
    And sequence "main" has post-processing "allownegativerate" = <negative>
    And sequence "main" has post-processing "checkdigitincreaseconsistency" = <consistency>
    And the board is started
    When sequence "main" reads digits "<first>" and pointers ""
    And I trigger a cycle
    And sequence "main" reads digits "<second>" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" starting with "<status>"
    And the JSON at "process/data/0/json" has "value_status" ending with "<detail>"
    And the JSON at "process/data/0/json" has "actual_value" = "<value>"
    And the JSON at "process/data/0/json" has "raw_value" = "<raw>"
    And the JSON at "process/data/0/json" has "fallback_value" = "<value>"
    And the JSON at "process/data/0/json" has "rate_per_interval" = "<rate>"

    Examples: negative rates and the max rate per interval
      | model    | check | max | negative | consistency | first | second | raw | status                | detail                               | value | rate |
      | class100 | 0     | 5   | false    | false       | 1,2,3 | 1,2,0  | 120 | E91 Rate negative     |                                      | 123   | 0    |
      | class100 | 0     | 5   | true     | false       | 1,2,3 | 1,2,0  | 120 | 000 Valid             |                                      | 120   | -3   |
      | class100 | 0     | 5   | false    | false       | 1,2,3 | 1,2,3  | 123 | 000 Valid             |                                      | 123   | 0    |
      | class100 | 0     | 5   | false    | false       | 1,2,3 | 9,9,9  | 999 | 000 Valid             |                                      | 999   | 876  |
      | class100 | 2     | 5   | false    | false       | 1,2,3 | 1,2,7  | 127 | 000 Valid             |                                      | 127   | 4    |
      | class100 | 2     | 5   | false    | false       | 1,2,3 | 1,2,8  | 128 | 000 Valid             |                                      | 128   | 5    |
      | class100 | 2     | 5   | false    | false       | 1,2,3 | 1,3,0  | 130 | E93 Rate too high (>) | Value: 130, Fallback: 123, Rate: 7   | 123   | 0    |
      | class100 | 2     | 5   | true     | false       | 1,2,3 | 1,1,0  | 110 | E92 Rate too high (<) | Value: 110, Fallback: 123, Rate: -13 | 123   | 0    |
      | class100 | 2     | 5   | false    | false       | 1,2,3 | 1,2,1  | 121 | E91 Rate negative     |                                      | 123   | 0    |
      | class100 | 2     | 5   | true     | false       | 1,2,3 | 1,1,8  | 118 | 000 Valid             |                                      | 118   | -5   |

    Examples: digit-increase consistency (class-11 only)
      | model    | check | max | negative | consistency | first | second | raw | status    | detail | value | rate |
      | class11  | 0     | 5   | false    | true        | 1,2,3 | 1,3,4  | 134 | 000 Valid |        | 124   | 1    |
      | class11  | 0     | 5   | false    | true        | 1,0,2 | 1,1,1  | 111 | 000 Valid |        | 111   | 9    |
      | class11  | 0     | 5   | false    | true        | 1,2,9 | 1,2,0  | 120 | 000 Valid |        | 130   | 1    |
      | class11  | 0     | 5   | false    | true        | 1,2,9 | 1,3,0  | 130 | 000 Valid |        | 130   | 1    |
      | class11  | 0     | 5   | false    | false       | 1,2,3 | 1,3,4  | 134 | 000 Valid |        | 134   | 11   |
      | class100 | 0     | 5   | false    | true        | 1,2,3 | 1,3,4  | 134 | 000 Valid |        | 134   | 11   |

  # A sequence keeps what it knew (its fallback value) across a config change, unless its shape or its decimal
  # places change: a fallback value with other decimal places would be read wrong.
  Scenario: A new decimal shift starts the sequence without its old fallback value
    Given a virtual board with config "flat-json.json"
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "fallback_value" = "16.98"
    When I type 'config set postprocessing.sequence[0].decimalshift 1' on the console
    Then the console reply is "ok postprocessing.sequence[0].decimalshift saved"
    When the meter shows digits 1.2,N and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" starting with "E90 No data to substitute N"

  Scenario: A config change that leaves the sequence's shape and decimal places keeps its fallback value
    Given a virtual board with config "flat-json.json"
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "fallback_value" = "16.98"
    When I type 'config set postprocessing.sequence[0].maxrate 5' on the console
    Then the console reply is "ok postprocessing.sequence[0].maxrate saved"
    When the meter shows digits 1.2,N and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" = "000 Valid"
    And the JSON at "process/data/0/json" has "actual_value" = "16.98"

  Scenario: The max rate per minute refuses a step too fast for the time between the readings
    Given the config "flat-json.json"
    And sequence "main" has 3 digits and 0 pointers
    And sequence "main" has post-processing "maxratechecktype" = 1
    And sequence "main" has post-processing "maxrate" = "0.5"
    And the board is started
    When sequence "main" reads digits "1,2,3" and pointers ""
    And I trigger a cycle
    # Timestamps are whole seconds: at least one passes, so the rate is 1 per 1 or 2 s, 30 to 60 per minute.
    And I wait 1100 ms
    And sequence "main" reads digits "1,2,4" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" starting with "E93 Rate too high (>) | Value: 124, Fallback: 123, Rate: "
    And the JSON at "process/data/0/json" has "actual_value" = "123"

  Scenario: The max rate per minute takes a step slow enough
    Given the config "flat-json.json"
    And sequence "main" has 3 digits and 0 pointers
    And sequence "main" has post-processing "maxratechecktype" = 1
    And sequence "main" has post-processing "maxrate" = "100"
    And the board is started
    When sequence "main" reads digits "1,2,3" and pointers ""
    And I trigger a cycle
    # Timestamps are whole seconds: 2 to 4 s pass, so the rate is 1 per 2 to 4 s, 15 to 30 per minute.
    And I wait 2100 ms
    And sequence "main" reads digits "1,2,4" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" = "000 Valid"
    And the JSON at "process/data/0/json" has "actual_value" = "124"
    And the JSON at "process/data/0/json" has "rate_per_minute" as a number from 15 to 30

  Scenario Outline: Leading N of class-11 digits
    Given the config "flat-json.json"
    And sequence "main" has 3 digits and 0 pointers
    And the config value "digit.cnntype" is "<model>"
    And sequence "main" has post-processing "ignoreleadingnan" = <ignore>
    And the board is started
    When sequence "main" reads digits "<digits>" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "raw_value" = "<raw>"
    And the JSON at "process/data/0/json" has "value_status" starting with "<status>"
    And the JSON at "process/data/0/json" has "value_status" ending with "<detail>"
    And the JSON at "process/data/0/json" has "actual_value" = "<value>"

    Examples:
      | model    | ignore | digits | raw | status                      | detail   | value |
      | class11  | true   | N,2,3  | 23  | 000 Valid                   |          | 23    |
      | class11  | true   | N,N,3  | 3   | 000 Valid                   |          | 3     |
      | class11  | false  | N,2,3  | N23 | E90 No data to substitute N | Raw: N23 |       |
      | class100 | true   | N,2,3  | N23 | E90 No data to substitute N | Raw: N23 |       |
      | class11  | true   | N,N,N  | N   | E90 No data to substitute N | Raw: N   |       |

  @virtual-only
  Scenario: A fallback value newer than the board's clock is not used after a power loss
    Given a virtual board with config "flat-json.json"
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "fallback_value" = "16.98"
    Given the time server does not answer
    When the board loses power
    And the board is powered on
    And the meter shows digits 1.2,N and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" = "E90 No data to substitute N | Raw: 1N.98"

  # The fallback value is kept in flash with its time; at start it is used when it is not older than
  # fallbackvalueagestartup minutes (default 720), and never when it is newer than the clock.
  @virtual-only
  Scenario: The fallback value comes back after a power loss
    Given a virtual board with config "flat-json.json"
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "fallback_value" = "16.98"
    When the board loses power
    And the board is powered on
    # The fallback value is restored with the first cycle, against the clock: wait for the network time (a manual
    # start would not, decision 52, and would find the stored value newer than the clock).
    Then the board has the time server's time within 2 s
    When the meter shows digits 1.2,N and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" = "000 Valid"
    And the JSON at "process/data/0/json" has "actual_value" = "16.98"

  @virtual-only
  Scenario Outline: A fallback value older than its startup age is not used after a power loss
    Given the config "flat-json.json"
    And sequence "main" has post-processing "fallbackvalueagestartup" = 60
    And the board is started
    When the meter shows digits 1.2,6.7 and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "fallback_value" = "16.98"
    When the board loses power
    And the time server's clock jumps <minutes> minutes ahead
    And the board is powered on
    Then the board has the time server's time within 2 s
    When the meter shows digits 1.2,N and pointers 9.5,8.4
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "value_status" starting with "<status>"

    Examples:
      | minutes | status                      |
      | 59      | 000 Valid                   |
      | 61      | E90 No data to substitute N |

  # With Home Assistant discovery on, process data carries `rate_per_time_unit`: per hour for the meter types whose
  # rate is per hour (v17 HAMeterType: 1 water m³, 2 water L, 8 energy kWh), per minute for the others (3 water ft³).
  Scenario Outline: The rate per time unit of the meter type
    Given the config "flat-json.json"
    And the config value "mqtt.homeassistant.discoveryenabled" is true
    And the config value "mqtt.homeassistant.metertype" is <type>
    And sequence "main" has 3 digits and 0 pointers
    And the board is started
    When sequence "main" reads digits "1,2,3" and pointers ""
    And I trigger a cycle
    And I wait 1100 ms
    And sequence "main" reads digits "1,2,9" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "actual_value" = "129"
    And the JSON at "process/data/0/json" has "rate_per_time_unit" = <factor> times "rate_per_minute"

    Examples:
      | type | factor |
      | 1    | 60     |
      | 2    | 60     |
      | 3    | 1      |
      | 8    | 60     |

  # A new digit model takes effect when the config is saved (the sequences are rebuilt with it): class-11 reads a
  # leading N as nothing, class-100 cannot.
  @http
  Scenario: Changing only the digit model through REST rebuilds the sequences
    Given the config "flat-json.json"
    And sequence "main" has 3 digits and 0 pointers
    And sequence "main" has post-processing "ignoreleadingnan" = true
    And the board is started
    When I post '{"digit":{"cnntype":"class11"}}' to the REST config
    Then the REST reply status is 200
    When sequence "main" reads digits "N,2,3" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "raw_value" = "23"
    And the JSON at "process/data/0/json" has "value_status" = "000 Valid"

  # An N after the decimal point takes the fallback value's digit at the same place.
  Scenario: An unreadable digit after the decimal point
    Given the config "flat-json.json"
    And sequence "main" has 3 digits and 0 pointers
    And sequence "main" has post-processing "decimalshift" = -1
    And the board is started
    When sequence "main" reads digits "1,2,3" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "fallback_value" = "12.3"
    When sequence "main" reads digits "1,2,N" and pointers ""
    And I trigger a cycle
    Then the JSON at "process/data/0/json" has "raw_value" = "12.N"
    And the JSON at "process/data/0/json" has "actual_value" = "12.3"
    And the JSON at "process/data/0/json" has "value_status" = "000 Valid"
