//! The GPIO model: pin modes, PWM resolution, the state of each pin, and `ctrl` payloads.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::Value;

use crate::config::PinConfig;

/// APB clock that feeds the LEDC PWM timers.
const PWM_SOURCE_HZ: u32 = 80_000_000;
/// The LEDC timers count with at most 14 bits.
const MAX_PWM_BITS: u32 = 14;

/// `gpio.gpiopin[].pinmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMode {
    Input,
    InputPullup,
    InputPulldown,
    Output,
    OutputPwm,
    FlashlightDefault,
    FlashlightPwm,
    FlashlightSmartLed,
    FlashlightDigital,
    TriggerCycleStart,
}

impl PinMode {
    /// The config names, in the order of the enum.
    pub const NAMES: &'static [&'static str] = &[
        "input",
        "input-pullup",
        "input-pulldown",
        "output",
        "output-pwm",
        "flashlight-default",
        "flashlight-pwm",
        "flashlight-smartled",
        "flashlight-digital",
        "trigger-cycle-start",
    ];
    const ALL: [PinMode; 10] = [
        PinMode::Input,
        PinMode::InputPullup,
        PinMode::InputPulldown,
        PinMode::Output,
        PinMode::OutputPwm,
        PinMode::FlashlightDefault,
        PinMode::FlashlightPwm,
        PinMode::FlashlightSmartLed,
        PinMode::FlashlightDigital,
        PinMode::TriggerCycleStart,
    ];

    pub fn parse(name: &str) -> Option<PinMode> {
        let lower = name.to_ascii_lowercase();
        PinMode::NAMES
            .iter()
            .position(|n| *n == lower)
            .map(|i| PinMode::ALL[i])
    }

    pub fn name(self) -> &'static str {
        PinMode::NAMES[PinMode::ALL.iter().position(|m| *m == self).unwrap_or(0)]
    }

    /// Read by the device (levels come from outside).
    pub fn is_input(self) -> bool {
        matches!(
            self,
            PinMode::Input
                | PinMode::InputPullup
                | PinMode::InputPulldown
                | PinMode::TriggerCycleStart
        )
    }

    /// Driven by the process while an image is taken.
    pub fn is_flashlight(self) -> bool {
        matches!(
            self,
            PinMode::FlashlightDefault
                | PinMode::FlashlightPwm
                | PinMode::FlashlightSmartLed
                | PinMode::FlashlightDigital
        )
    }

    /// Has a PWM duty (its state JSON carries `pwm_duty`).
    pub fn is_pwm(self) -> bool {
        matches!(
            self,
            PinMode::OutputPwm | PinMode::FlashlightPwm | PinMode::FlashlightDefault
        )
    }

    /// May be driven through MQTT / REST `ctrl`.
    pub fn is_controllable(self) -> bool {
        matches!(self, PinMode::Output | PinMode::OutputPwm)
    }

    /// Level an input reads with nothing connected.
    pub fn idle_level(self) -> bool {
        matches!(self, PinMode::InputPullup | PinMode::TriggerCycleStart)
    }
}

/// PWM resolution in bits for a frequency: floor(log2(80 MHz / f)), capped at 14.
pub fn pwm_resolution_bits(frequency_hz: u32) -> u32 {
    if frequency_hz == 0 {
        return 0;
    }
    let ratio = PWM_SOURCE_HZ / frequency_hz;
    if ratio == 0 {
        return 0;
    }
    (31 - ratio.leading_zeros()).min(MAX_PWM_BITS)
}

/// Largest duty for a frequency: 2^resolution - 1.
pub fn pwm_max_duty(frequency_hz: u32) -> u32 {
    (1u32 << pwm_resolution_bits(frequency_hz)) - 1
}

/// The live state of one configured pin.
#[derive(Debug, Clone, PartialEq)]
pub struct Pin {
    pub config: PinConfig,
    pub level: bool,
    pub duty: u32,
    /// Time (ms) of the last accepted input edge, for debouncing.
    last_edge_ms: Option<u64>,
    /// A level seen inside the debounce time, waiting to be accepted.
    pending: Option<bool>,
}

/// Why a `ctrl` request was refused. The pin is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtrlError {
    UnknownPin(String),
    NotControllable { pin: String, mode: &'static str },
    BadJson(String),
    BadState,
    MissingDuty,
    DutyOutOfRange { duty: i64, max: u32 },
    TooLarge(usize),
}

impl core::fmt::Display for CtrlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CtrlError::UnknownPin(p) => write!(f, "no enabled GPIO named '{p}' is exposed to MQTT"),
            CtrlError::NotControllable { pin, mode } => {
                write!(
                    f,
                    "GPIO '{pin}' is in mode '{mode}'; only output and output-pwm pins accept ctrl"
                )
            }
            CtrlError::BadJson(e) => write!(f, "payload is not valid JSON: {e}"),
            CtrlError::BadState => f.write_str("\"state\" must be a number (0 off, 1 on)"),
            CtrlError::MissingDuty => {
                f.write_str("\"pwm_duty\" (a number) is required for an output-pwm pin")
            }
            CtrlError::DutyOutOfRange { duty, max } => {
                write!(f, "\"pwm_duty\" {duty} is out of range 0..{max}")
            }
            CtrlError::TooLarge(n) => write!(f, "payload of {n} bytes exceeds the 4 KiB limit"),
        }
    }
}

/// A validated `ctrl` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctrl {
    pub level: bool,
    pub duty: Option<u32>,
}

impl Pin {
    pub fn new(config: PinConfig) -> Pin {
        let level = config.mode.idle_level();
        Pin {
            config,
            level,
            duty: 0,
            last_edge_ms: None,
            pending: None,
        }
    }

    /// The `state` topic payload: `{"state":s}` or `{"state":s,"pwm_duty":d}` for PWM modes.
    pub fn state_json(&self) -> String {
        let state = u8::from(self.level);
        if self.config.mode.is_pwm() {
            format!("{{\"state\":{state},\"pwm_duty\":{}}}", self.duty)
        } else {
            format!("{{\"state\":{state}}}")
        }
    }

    /// Parses and checks a `ctrl` payload against this pin's mode; nothing changes here. As the reference
    /// (`gpioPin.cpp` mqttControlPinState): `state` is any JSON number (not 0 after truncation means on), keys a
    /// mode does not use are ignored; `pwm_duty` (output-pwm) is a number too, and must be one the PWM can drive
    /// (decision 54).
    pub fn parse_ctrl(&self, payload: &[u8]) -> Result<Ctrl, CtrlError> {
        if payload.len() > 4096 {
            return Err(CtrlError::TooLarge(payload.len()));
        }
        if !self.config.mode.is_controllable() {
            return Err(CtrlError::NotControllable {
                pin: self.config.topic_name(),
                mode: self.config.mode.name(),
            });
        }
        let v =
            crate::json::parse_unique(payload).map_err(|e| CtrlError::BadJson(e.to_string()))?;
        // cJSON's valueint: the number truncated toward zero.
        let int = |key: &str| v.get(key).and_then(Value::as_f64).map(libm::trunc);
        let level = int("state").ok_or(CtrlError::BadState)? != 0.0;
        if self.config.mode != PinMode::OutputPwm {
            return Ok(Ctrl { level, duty: None });
        }
        let duty = int("pwm_duty").ok_or(CtrlError::MissingDuty)?;
        let max = pwm_max_duty(self.config.pwm_frequency);
        if duty < 0.0 || duty > f64::from(max) {
            return Err(CtrlError::DutyOutOfRange {
                duty: duty as i64,
                max,
            });
        }
        Ok(Ctrl {
            level,
            duty: Some(duty as u32),
        })
    }

    /// Applies an accepted ctrl. Returns true when the pin's state changed.
    pub fn apply(&mut self, ctrl: Ctrl) -> bool {
        let before = (self.level, self.duty);
        self.level = ctrl.level;
        if let Some(d) = ctrl.duty {
            self.duty = d;
        }
        before != (self.level, self.duty)
    }

    /// An input level seen at `now_ms`. Returns `Some(level)` when it is a debounced change. A level seen within
    /// the debounce time of the last accepted edge is held back; [`Pin::settle`] accepts it once it has lasted.
    pub fn input_changed(&mut self, level: bool, now_ms: u64) -> Option<bool> {
        if let Some(last) = self.last_edge_ms {
            if now_ms.saturating_sub(last) < self.debounce_ms() {
                // A bounce back to the accepted level cancels what was held back.
                self.pending = (level != self.level).then_some(level);
                return None;
            }
        }
        self.pending = None;
        self.accept(level, now_ms)
    }

    /// A held-back level that has lasted the debounce time: accepted now (boards report edges, not levels, so
    /// without this a real change right after a bounce would be lost).
    pub fn settle(&mut self, now_ms: u64) -> Option<bool> {
        let level = self.pending?;
        let last = self.last_edge_ms.unwrap_or(0);
        if now_ms.saturating_sub(last) < self.debounce_ms() {
            return None;
        }
        self.pending = None;
        self.accept(level, now_ms)
    }

    /// The clock was stepped: the last edge moves along.
    pub fn shift_time(&mut self, by_ms: i64) {
        self.last_edge_ms = self.last_edge_ms.map(|t| (t as i64 + by_ms).max(0) as u64);
    }

    /// When a held-back level will have lasted the debounce time ([`Pin::settle`] accepts it then).
    pub fn settle_deadline(&self) -> Option<u64> {
        self.pending?;
        Some(self.last_edge_ms.unwrap_or(0) + self.debounce_ms())
    }

    /// The debounce time: the configured one, but 1000 ms fixed for a trigger pin (reference `gpioPin.cpp` 33).
    pub fn debounce_ms(&self) -> u64 {
        if self.config.mode == PinMode::TriggerCycleStart {
            1000
        } else {
            u64::from(self.config.debounce_ms)
        }
    }

    /// Takes `level` as the pin's debounced level: `Some(level)` when it is a change.
    fn accept(&mut self, level: bool, now_ms: u64) -> Option<bool> {
        if level == self.level {
            return None;
        }
        self.last_edge_ms = Some(now_ms);
        self.level = level;
        Some(level)
    }

    /// The duty the hardware drives: full scale for a plain output or flashlight, the set duty for PWM.
    pub fn driven_duty(&self) -> Option<u32> {
        if !self.config.mode.is_pwm() {
            return None;
        }
        Some(if self.level { self.duty } else { 0 })
    }
}

/// All enabled pins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gpio {
    pub pins: Vec<Pin>,
}

impl Gpio {
    pub fn new(configs: &[PinConfig]) -> Gpio {
        Gpio {
            pins: configs
                .iter()
                .filter(|c| c.enabled)
                .cloned()
                .map(Pin::new)
                .collect(),
        }
    }

    pub fn by_name(&self, name: &str) -> Option<&Pin> {
        self.pins.iter().find(|p| p.config.topic_name() == name)
    }

    pub fn by_name_mut(&mut self, name: &str) -> Option<&mut Pin> {
        self.pins.iter_mut().find(|p| p.config.topic_name() == name)
    }

    pub fn by_number_mut(&mut self, number: u8) -> Option<&mut Pin> {
        self.pins.iter_mut().find(|p| p.config.number == number)
    }

    /// Pins exposed to MQTT.
    pub fn exposed(&self) -> impl Iterator<Item = &Pin> {
        self.pins.iter().filter(|p| p.config.expose_to_mqtt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(mode: PinMode, freq: u32) -> Pin {
        Pin::new(PinConfig {
            number: 12,
            enabled: true,
            name: String::new(),
            mode,
            debounce_ms: 200,
            pwm_frequency: freq,
            expose_to_mqtt: true,
            expose_to_rest: false,
        })
    }

    #[test]
    fn resolution_from_frequency() {
        assert_eq!(pwm_resolution_bits(5000), 13); // 80e6/5000 = 16000 -> 13.96
        assert_eq!(pwm_resolution_bits(1000), 14); // 80000 -> 16.3, capped
        assert_eq!(pwm_resolution_bits(40_000_000), 1);
        assert_eq!(pwm_resolution_bits(80_000_001), 0);
        assert_eq!(pwm_resolution_bits(0), 0);
        assert_eq!(pwm_max_duty(5000), 8191);
        assert_eq!(pwm_max_duty(1000), 16383);
    }

    #[test]
    fn mode_names_round_trip() {
        for name in PinMode::NAMES {
            assert_eq!(PinMode::parse(name).unwrap().name(), *name);
        }
        assert_eq!(PinMode::parse("OUTPUT-PWM"), Some(PinMode::OutputPwm));
        assert_eq!(PinMode::parse("laser"), None);
    }

    #[test]
    fn default_name_is_gpio_number() {
        assert_eq!(pin(PinMode::Output, 5000).config.topic_name(), "gpio12");
    }

    #[test]
    fn output_ctrl() {
        let mut p = pin(PinMode::Output, 5000);
        let c = p.parse_ctrl(br#"{"state":1}"#).unwrap();
        assert!(p.apply(c));
        assert_eq!(p.state_json(), r#"{"state":1}"#);
        assert!(!p.apply(c));
        // As the reference: a key the mode does not use is ignored; any number is a state, not 0 is on.
        assert_eq!(
            p.parse_ctrl(br#"{"state":1,"pwm_duty":3}"#),
            Ok(Ctrl {
                level: true,
                duty: None
            })
        );
        assert_eq!(p.parse_ctrl(br#"{"state":2}"#).map(|c| c.level), Ok(true));
        assert_eq!(p.parse_ctrl(br#"{"state":-1}"#).map(|c| c.level), Ok(true));
        assert_eq!(
            p.parse_ctrl(br#"{"state":0.9}"#).map(|c| c.level),
            Ok(false),
            "truncated"
        );
    }

    #[test]
    fn pwm_ctrl_checks_duty_range() {
        let mut p = pin(PinMode::OutputPwm, 5000);
        assert_eq!(p.parse_ctrl(br#"{"state":1}"#), Err(CtrlError::MissingDuty));
        assert_eq!(
            p.parse_ctrl(br#"{"state":1,"pwm_duty":8192}"#),
            Err(CtrlError::DutyOutOfRange {
                duty: 8192,
                max: 8191
            })
        );
        assert!(p.parse_ctrl(br#"{"state":1,"pwm_duty":-1}"#).is_err());
        assert_eq!(
            p.parse_ctrl(br#"{"state":1,"pwm_duty":"5"}"#),
            Err(CtrlError::MissingDuty)
        );
        assert_eq!(
            p.parse_ctrl(br#"{"state":0,"pwm_duty":100.7}"#),
            Ok(Ctrl {
                level: false,
                duty: Some(100)
            })
        );
        let c = p.parse_ctrl(br#"{"state":1,"pwm_duty":8191}"#).unwrap();
        p.apply(c);
        assert_eq!(p.state_json(), r#"{"state":1,"pwm_duty":8191}"#);
        assert_eq!(p.driven_duty(), Some(8191));
    }

    #[test]
    fn bad_ctrl_payloads() {
        let p = pin(PinMode::Output, 5000);
        assert!(matches!(p.parse_ctrl(b"{"), Err(CtrlError::BadJson(_))));
        assert_eq!(p.parse_ctrl(br#"{"state":"on"}"#), Err(CtrlError::BadState));
        assert_eq!(p.parse_ctrl(br#"{"state":true}"#), Err(CtrlError::BadState));
        assert_eq!(p.parse_ctrl(br#"{}"#), Err(CtrlError::BadState));
        assert!(matches!(
            p.parse_ctrl(&[b' '; 5000]),
            Err(CtrlError::TooLarge(5000))
        ));
        let input = pin(PinMode::Input, 5000);
        assert!(matches!(
            input.parse_ctrl(br#"{"state":1}"#),
            Err(CtrlError::NotControllable { .. })
        ));
        let flash = pin(PinMode::FlashlightPwm, 5000);
        assert!(matches!(
            flash.parse_ctrl(br#"{"state":1}"#),
            Err(CtrlError::NotControllable { .. })
        ));
    }

    #[test]
    fn input_debounce() {
        let mut p = pin(PinMode::Input, 5000);
        assert_eq!(p.input_changed(true, 1000), Some(true));
        assert_eq!(p.input_changed(false, 1100), None, "inside 200 ms debounce");
        assert_eq!(p.settle(1150), None, "not lasted yet");
        assert_eq!(
            p.settle(1200),
            Some(false),
            "held for the debounce time: accepted"
        );
        assert_eq!(p.input_changed(false, 5000), None, "no change");
        // A bounce that returns to the accepted level within the window is forgotten.
        assert_eq!(p.input_changed(true, 5000), Some(true));
        assert_eq!(p.input_changed(false, 5050), None);
        assert_eq!(p.input_changed(true, 5060), None);
        assert_eq!(p.settle(9000), None);
        assert!(p.level);
    }

    #[test]
    fn idle_levels() {
        assert!(pin(PinMode::InputPullup, 1).level);
        assert!(pin(PinMode::TriggerCycleStart, 1).level);
        assert!(!pin(PinMode::InputPulldown, 1).level);
    }
}
