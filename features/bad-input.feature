@bad-input
Feature: Bad input gets a clear error and changes nothing
  Malformed control payloads, console lines and configs: the board names what is wrong and keeps running.

  Background:
    Given a virtual board with config "flat-json.json"

  Scenario Outline: A bad set_fallbackvalue is refused
    When I publish '<payload>' to "process/ctrl/set_fallbackvalue"
    Then the console shows an error containing '<error>'
    And the board is still running
    When I type "status" on the console
    Then the console reply contains '"fallback_value":""'

    Examples:
      | payload                              | error                                |
      | {nope                                | payload is not valid JSON            |
      | []                                   | must be a JSON object                |
      | {"value":1}                          | (the number sequence name) is missing |
      | {"sequence":"nope","value":1}        | no number sequence named             |
      | {"sequence":"main"}                  | "value" is missing                   |
      | {"sequence":"main","value":"abc"}    | is not a number                      |
      | {"sequence":"main","value":"NaN"}    | is not a number                      |
      | {"sequence":"main","value":"16.5"}   | is not a number                      |
      | {"sequence":"main","value":-1}       | has no valid raw value               |

  @wiring
  Scenario Outline: A bad GPIO ctrl leaves the pin as it was
    When I publish '<payload>' to "device/gpio/<pin>/ctrl"
    Then the console shows an error containing '<error>'
    And GPIO 12 is low
    And GPIO 13 has PWM duty 0

    Examples:
      | pin    | payload                       | error                               |
      | gpio13 | {"state":1,"pwm_duty":9000}   | out of range 0..8191                |
      | gpio13 | {"state":1}                   | "pwm_duty" (a number) is required   |
      | gpio13 | {"state":1,"pwm_duty":-5}     | out of range 0..8191                |
      | relay  | {"state":"on"}                | "state" must be a number            |
      | relay  | nope                          | payload is not valid JSON           |

  Scenario Outline: A bad console line gets one err line
    When I type '<line>' on the console
    Then the console reply starts with "err <code>"
    And the board is still running

    Examples:
      | line                              | code            |
      | fly                               | unknown-command |
      | frame nope digits=1               | unknown-sequence |
      | frame main digits=1               | roi-count       |
      | frame main digits=x,1 analogs=1,2 | bad-value       |
      | config set mqtt.maintopic "a/#"   | invalid-config  |
      | config get no.such.key            | unknown-path    |
      | status now                        | bad-args        |
      | config set mqtt.uri nope          | bad-json        |
      | frame                             | bad-args        |
      | frame digits=1,2                  | bad-args        |
      | frame main digits=10,1 analogs=1,2 | bad-value      |
      | frame main digits=1,1 analogs=1,-1 | bad-value      |

  # Lines up to 16 KiB are taken (decision 43; a config merge with TLS certificates needs them), longer ones refused.
  Scenario: A console line of exactly 16384 bytes is taken, one more byte is refused
    When I type 'config merge {"operationmode":{"automaticprocessinterval":3}}' widened with spaces before its last character to 16384 bytes on the console
    Then the console reply is "ok config merged and saved"
    When I type 'config merge {"operationmode":{"automaticprocessinterval":4}}' widened with spaces before its last character to 16385 bytes on the console
    Then the console reply starts with "err too-long"
    And the board config has "operationmode.automaticprocessinterval" = 3

  # Every validation rule of the config, one row each (one board: a refused config changes nothing, so the rows do
  # not disturb each other). Each body is refused with 400 and the path of its bad key.
  @http
  Scenario: Every bad config is refused with the path of its bad key, and nothing changes
    When I post each body to the REST config, it is refused with the path of its bad key:
      | body                                         | path                       |
      | {"mqtt":{"uri":"http://x"}}                  | mqtt.uri                   |
      | {"operationmode":{"opmode":9}}               | operationmode.opmode       |
      | {"gpio":{"gpiopin":[{"gpionumber":99}]}}     | gpio.gpiopin[0].gpionumber |
      | not json                                     | $                          |
      | {"mqtt":{"maintopik":"x"}}                   | mqtt.maintopik             |
      | {"network":{"time":{"ntp":{"timeserver":"pool ntp.org"}}}} | network.time.ntp.timeserver |
      | {"network":{"time":{"ntp":{"timeserver":"pool.ntp.org:0"}}}} | network.time.ntp.timeserver |
      | {"network":{"time":{"ntp":{"timeserver":":123"}}}} | network.time.ntp.timeserver |
      | {"mqtt":{"clientid":"meter one"}}            | mqtt.clientid              |
      | {"mqtt":{"clientid":""}}                     | mqtt.clientid              |
      | {"mqtt":{"maintopic":"a/+/b"}}               | mqtt.maintopic             |
      | {"numbersequences":{"sequence":[{"sequenceid":0,"sequencename":"main meter"}]}} | numbersequences.sequence[0].sequencename |
      | {"operationmode":{"automaticprocessinterval":"1e25"}} | operationmode.automaticprocessinterval |
      | {"operationmode":{"automaticprocessinterval":"0.000001234567890123456789e-3"}} | operationmode.automaticprocessinterval |
      | {"operationmode":[]} | operationmode |
      | {"operationmode":{"opmode":"x"}} | operationmode.opmode |
      | {"operationmode":{"opmode":0.5}} | operationmode.opmode |
      | {"operationmode":{"opmode":-2}} | operationmode.opmode |
      | {"operationmode":{"speed":1}} | operationmode.speed |
      | {"operationmode":{"automaticprocessinterval":true}} | operationmode.automaticprocessinterval |
      | {"operationmode":{"automaticprocessinterval":"0.001"}} | operationmode.automaticprocessinterval |
      | {"operationmode":{"automaticprocessinterval":1441}} | operationmode.automaticprocessinterval |
      | {"digit":{"cnntype":"class10"}} | digit.cnntype |
      | {"digit":{"enabled":"yes"}} | digit.enabled |
      | {"numbersequences":{"sequence":[]}} | numbersequences.sequence |
      | {"numbersequences":{"sequence":[{"sequenceid":0,"sequencename":"s0"},{"sequenceid":1,"sequencename":"s1"},{"sequenceid":2,"sequencename":"s2"},{"sequenceid":3,"sequencename":"s3"},{"sequenceid":4,"sequencename":"s4"},{"sequenceid":5,"sequencename":"s5"},{"sequenceid":6,"sequencename":"s6"},{"sequenceid":7,"sequencename":"s7"},{"sequenceid":8,"sequencename":"s8"},{"sequenceid":9,"sequencename":"s9"},{"sequenceid":10,"sequencename":"s10"}]}} | numbersequences.sequence |
      | {"numbersequences":{"sequence":[5]}} | numbersequences.sequence[0] |
      | {"numbersequences":{"sequence":[{"sequencename":"main"}]}} | numbersequences.sequence[0].sequenceid |
      | {"numbersequences":{"sequence":[{"sequenceid":1000,"sequencename":"main"}]}} | numbersequences.sequence[0].sequenceid |
      | {"numbersequences":{"sequence":[{"sequenceid":0,"sequencename":"main"},{"sequenceid":0,"sequencename":"gas"}]}} | numbersequences.sequence[1].sequenceid |
      | {"numbersequences":{"sequence":[{"sequenceid":0,"sequencename":"main"},{"sequenceid":1,"sequencename":"main"}]}} | numbersequences.sequence[1].sequencename |
      | {"digit":{"sequence":[4]}} | digit.sequence[0] |
      | {"digit":{"sequence":[{"sequenceid":7}]}} | digit.sequence[0].sequenceid |
      | {"digit":{"sequence":[{"sequenceid":0,"roi":[5]}]}} | digit.sequence[0].roi[0] |
      | {"digit":{"sequence":[{"sequenceid":0,"roi":[{"name":""}]}]}} | digit.sequence[0].roi[0].name |
      | {"digit":{"sequence":[{"sequenceid":0,"roi":[{"name":"a"},{"name":"a"}]}]}} | digit.sequence[0].roi[1].name |
      | {"analog":{"sequence":[{"sequenceid":9}]}} | analog.sequence[0].sequenceid |
      | {"postprocessing":{"sequence":[3]}} | postprocessing.sequence[0] |
      | {"postprocessing":{"sequence":[{"sequenceid":7}]}} | postprocessing.sequence[0].sequenceid |
      | {"postprocessing":{"sequence":[{"decimalshift":1}]}} | postprocessing.sequence[0].sequenceid |
      | {"digit":{"sequence":[{"roi":[]}]}} | digit.sequence[0].sequenceid |
      | {"analog":{"sequence":[{"roi":[]}]}} | analog.sequence[0].sequenceid |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"usefallback":true}]}} | postprocessing.sequence[0].usefallback |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"decimalshift":10}]}} | postprocessing.sequence[0].decimalshift |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"analogdigitsyncvalue":"5.9"}]}} | postprocessing.sequence[0].analogdigitsyncvalue |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"analogdigitsyncvalue":10}]}} | postprocessing.sequence[0].analogdigitsyncvalue |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"maxratechecktype":3}]}} | postprocessing.sequence[0].maxratechecktype |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"maxrate":-1}]}} | postprocessing.sequence[0].maxrate |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"fallbackvalueagestartup":525601}]}} | postprocessing.sequence[0].fallbackvalueagestartup |
      | {"mqtt":{"uri":""}} | mqtt.uri |
      | {"mqtt":{"uri":"mqtt://broker/x"}} | mqtt.uri |
      | {"mqtt":{"uri":"mqtt://me@broker"}} | mqtt.uri |
      | {"mqtt":{"uri":"mqtt://bro ker"}} | mqtt.uri |
      | {"mqtt":{"uri":"mqtt://broker:0"}} | mqtt.uri |
      | {"mqtt":{"uri":"mqtt://broker:x"}} | mqtt.uri |
      | {"mqtt":{"uri":"mqtt://:1883"}} | mqtt.uri |
      | {"mqtt":{"maintopic":""}} | mqtt.maintopic |
      | {"mqtt":{"maintopic":"/a"}} | mqtt.maintopic |
      | {"mqtt":{"maintopic":"a/"}} | mqtt.maintopic |
      | {"mqtt":{"maintopic":"a//b"}} | mqtt.maintopic |
      | {"mqtt":{"maintopic":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}} | mqtt.maintopic |
      | {"mqtt":{"clientid":"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"}} | mqtt.clientid |
      | {"mqtt":{"authmode":3}} | mqtt.authmode |
      | {"mqtt":{"authmode":1,"username":""}} | mqtt.username |
      | {"mqtt":{"tls":{"clientcert":"c.pem"}}} | mqtt.tls.clientcert |
      | {"mqtt":{"tls":{"ca":"x"}}} | mqtt.tls.ca |
      | {"mqtt":{"processdatanotation":3}} | mqtt.processdatanotation |
      | {"mqtt":{"keepalive":1}} | mqtt.keepalive |
      | {"mqtt":{"homeassistant":{"metertype":11}}} | mqtt.homeassistant.metertype |
      | {"mqtt":{"homeassistant":{"discoveryprefix":"ha/#"}}} | mqtt.homeassistant.discoveryprefix |
      | {"mqtt":{"homeassistant":{"prefix":"x"}}} | mqtt.homeassistant.prefix |
      | {"mqtt":{"homeassistant":{"discoveryenabled":true},"maintopic":"a/b.c"}} | mqtt.maintopic |
      | {"gpio":{"gpiopin":[7]}} | gpio.gpiopin[0] |
      | {"gpio":{"gpiopin":[{"pinmode":"input"}]}} | gpio.gpiopin[0].gpionumber |
      | {"gpio":{"gpiopin":[{"gpionumber":49}]}} | gpio.gpiopin[0].gpionumber |
      | {"gpio":{"gpiopin":[{"gpionumber":4,"pinmode":"blink"}]}} | gpio.gpiopin[0].pinmode |
      | {"gpio":{"gpiopin":[{"gpionumber":4,"pinname":"a b"}]}} | gpio.gpiopin[0].pinname |
      | {"gpio":{"gpiopin":[{"gpionumber":4,"pwmfrequency":0}]}} | gpio.gpiopin[0].pwmfrequency |
      | {"gpio":{"gpiopin":[{"gpionumber":4,"inputdebouncetime":60001}]}} | gpio.gpiopin[0].inputdebouncetime |
      | {"gpio":{"gpiopin":[{"gpionumber":4,"colour":"red"}]}} | gpio.gpiopin[0].colour |
      | {"gpio":{"gpiopin":[{"gpionumber":4},{"gpionumber":4}]}} | gpio.gpiopin[1].gpionumber |
      | {"gpio":{"gpiopin":[{"gpionumber":4,"pinenabled":true,"pinname":"x"},{"gpionumber":5,"pinenabled":true,"pinname":"x"}]}} | gpio.gpiopin[1].pinname |
      | {"network":{"wlan":{"hostname":"my_meter"}}} | network.wlan.hostname |
      | {"network":{"wlan":{"hostname":""}}} | network.wlan.hostname |
      | {"network":{"wlan":{"ssid":5}}} | network.wlan.ssid |
      | {"network":{"time":{"timezone":"Mars/Olympus"}}} | network.time.timezone |
      | {"network":{"time":{"ntp":{"timesyncenabled":1}}}} | network.time.ntp.timesyncenabled |
    Then the board config has "operationmode.opmode" = 0

  @http
  Scenario: An out-of-range number is named as the board read it
    When I post '{"operationmode":{"automaticprocessinterval":"1e25"}}' to the REST config
    Then the REST reply status is 400
    And the REST reply contains "10000000000000000000000000 is out of range 0.01..1440"

  # The edges of the rules: what is just inside is taken.
  @http
  Scenario: Config values at the edges of their rules are taken
    When I post each body to the REST config, it is taken:
      | body                                                              |
      | {"network":{"time":{"ntp":{"timeserver":"ntp_1.my-lan.example"}}}} |
      | {"network":{"time":{"ntp":{"timeserver":"ntp-2.lan:65535"}}}}     |
      | {"network":{"wlan":{"hostname":"meter-2"}}}                       |
      | {"operationmode":{"automaticprocessinterval":"0.01"}}             |
      | {"operationmode":{"automaticprocessinterval":1440}}               |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"analogdigitsyncvalue":"6.0"},{"sequenceid":1,"analogdigitsyncvalue":9.9}]}} |
      | {"postprocessing":{"sequence":[{"sequenceid":0,"decimalshift":-9},{"sequenceid":1,"decimalshift":9}]}} |
      | {"gpio":{"gpiopin":[{"gpionumber":48,"pinname":"a-b_C9","inputdebouncetime":60000,"pwmfrequency":40000000}]}} |
    Then the board config has "operationmode.automaticprocessinterval" = 1440

  Scenario: An oversized control payload is refused
    When I publish 5000 bytes to "process/ctrl/set_fallbackvalue"
    Then the console shows an error containing "exceeds the 4096 byte limit"
    And the board is still running

  Scenario: A message larger than the board's MQTT packet limit is skipped and the board stays connected
    When I publish 20000 bytes to "process/ctrl/set_fallbackvalue"
    Then the console shows an error containing "is larger than the device takes: skipped"
    When I trigger a cycle
    Then topic "process/status/cycle_counter" is "1"
    And the console log does not contain "connection lost"

  @virtual-only
  Scenario: A skipped oversized message does not come back after a reconnect
    When I publish 20000 bytes to "process/ctrl/set_fallbackvalue"
    Then the console shows an error containing "is larger than the device takes: skipped"
    When I forget what the console showed
    And the broker restarts
    And I trigger a cycle
    Then topic "process/status/cycle_counter" is "1"
    And the console log does not contain "is larger than the device takes"
