//! The GPIOs the config may use, behind one `Flex` each so the engine can make any of them an input or an output at
//! run time, and LEDC PWM for `output-pwm` and PWM flashlights. ESP32-C3: GPIO 0-7, 10, 20, 21 (8/9 are strapping
//! pins, 11-17 the flash, 18/19 USB). A pin becomes PWM once per boot (LEDC keeps it): changing its mode or
//! frequency takes effect after a reboot.

use alloc::boxed::Box;
use alloc::vec::Vec;

use esp_hal::gpio::{DriveMode, Flex, InputConfig, Level, OutputConfig, Pull};
use esp_hal::ledc::channel::{self, ChannelHW, ChannelIFace};
use esp_hal::ledc::timer::{self, TimerIFace};
use esp_hal::ledc::{LSGlobalClkSource, Ledc, LowSpeed};
use esp_hal::peripherals::{
    GPIO0, GPIO1, GPIO10, GPIO2, GPIO20, GPIO21, GPIO3, GPIO4, GPIO5, GPIO6, GPIO7, LEDC,
};
use esp_hal::time::Rate;
use meter_core::gpio::{pwm_max_duty, pwm_resolution_bits, PinMode};

/// The pins handed over at boot.
pub struct Bank {
    pub gpio0: GPIO0<'static>,
    pub gpio1: GPIO1<'static>,
    pub gpio2: GPIO2<'static>,
    pub gpio3: GPIO3<'static>,
    pub gpio4: GPIO4<'static>,
    pub gpio5: GPIO5<'static>,
    pub gpio6: GPIO6<'static>,
    pub gpio7: GPIO7<'static>,
    pub gpio10: GPIO10<'static>,
    pub gpio20: GPIO20<'static>,
    pub gpio21: GPIO21<'static>,
    pub ledc: LEDC<'static>,
}

enum Drive {
    Gpio(Flex<'static>),
    Pwm {
        channel: channel::Channel<'static, LowSpeed>,
        max_duty: u32,
    },
    /// Only while a pin moves into the LEDC.
    Moving,
}

struct Slot {
    number: u8,
    drive: Drive,
    input: bool,
    last: Option<bool>,
}

pub struct Pins {
    slots: Vec<Slot>,
    ledc: &'static Ledc<'static>,
    timers_used: u8,
    channels_used: u8,
}

const TIMERS: [timer::Number; 4] = [
    timer::Number::Timer0,
    timer::Number::Timer1,
    timer::Number::Timer2,
    timer::Number::Timer3,
];
const CHANNELS: [channel::Number; 6] = [
    channel::Number::Channel0,
    channel::Number::Channel1,
    channel::Number::Channel2,
    channel::Number::Channel3,
    channel::Number::Channel4,
    channel::Number::Channel5,
];

impl Pins {
    pub fn new(b: Bank) -> Pins {
        let slot = |number, flex| Slot {
            number,
            drive: Drive::Gpio(flex),
            input: false,
            last: None,
        };
        let mut ledc = Ledc::new(b.ledc);
        ledc.set_global_slow_clock(LSGlobalClkSource::APBClk);
        Pins {
            slots: alloc::vec![
                slot(0, Flex::new(b.gpio0)),
                slot(1, Flex::new(b.gpio1)),
                slot(2, Flex::new(b.gpio2)),
                slot(3, Flex::new(b.gpio3)),
                slot(4, Flex::new(b.gpio4)),
                slot(5, Flex::new(b.gpio5)),
                slot(6, Flex::new(b.gpio6)),
                slot(7, Flex::new(b.gpio7)),
                slot(10, Flex::new(b.gpio10)),
                slot(20, Flex::new(b.gpio20)),
                slot(21, Flex::new(b.gpio21)),
            ],
            // Timers and channels live as long as the firmware: PWM pins never go back to plain GPIO.
            ledc: Box::leak(Box::new(ledc)),
            timers_used: 0,
            channels_used: 0,
        }
    }

    /// Sets a pin up for `mode`; `pwm_hz` is the configured PWM frequency of PWM modes.
    pub fn configure(&mut self, pin: u8, mode: PinMode, pwm_hz: u32) -> Result<(), &'static str> {
        let ledc = self.ledc;
        let next_timer = self.timers_used;
        let next_channel = self.channels_used;
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.number == pin)
            .ok_or("not usable on the ESP32-C3 (use GPIO 0-7, 10, 20 or 21)")?;
        slot.input = mode.is_input();
        slot.last = None;
        if let Drive::Pwm { .. } = slot.drive {
            return if mode.is_pwm() {
                Ok(())
            } else {
                Err("is a PWM pin until the next reboot")
            };
        }
        if mode.is_pwm() {
            let (Some(&timer_number), Some(&channel_number)) = (
                TIMERS.get(usize::from(next_timer)),
                CHANNELS.get(usize::from(next_channel)),
            ) else {
                return Err("no LEDC timer or channel left for another PWM pin");
            };
            let duty = timer::config::Duty::try_from(pwm_resolution_bits(pwm_hz))
                .map_err(|_| "PWM frequency out of range")?;
            let timer: &'static mut timer::Timer<'static, LowSpeed> =
                Box::leak(Box::new(ledc.timer::<LowSpeed>(timer_number)));
            timer
                .configure(timer::config::Config {
                    duty,
                    clock_source: timer::LSClockSource::APBClk,
                    frequency: Rate::from_hz(pwm_hz),
                })
                .map_err(|_| "LEDC timer refused the frequency")?;
            let Drive::Gpio(flex) = core::mem::replace(&mut slot.drive, Drive::Moving) else {
                return Err("pin is busy");
            };
            let mut channel = ledc.channel(channel_number, flex);
            channel
                .configure(channel::config::Config {
                    timer: &*timer,
                    duty_pct: 0,
                    drive_mode: DriveMode::PushPull,
                })
                .map_err(|_| "LEDC channel refused the configuration")?;
            slot.drive = Drive::Pwm {
                channel,
                max_duty: pwm_max_duty(pwm_hz),
            };
            self.timers_used += 1;
            self.channels_used += 1;
            return Ok(());
        }
        let Drive::Gpio(flex) = &mut slot.drive else {
            return Err("pin is busy");
        };
        if slot.input {
            let pull = match mode {
                PinMode::InputPullup => Pull::Up,
                PinMode::InputPulldown => Pull::Down,
                _ => Pull::None,
            };
            flex.set_output_enable(false);
            flex.apply_input_config(&InputConfig::default().with_pull(pull));
            flex.set_input_enable(true);
        } else {
            flex.apply_output_config(&OutputConfig::default());
            flex.set_level(Level::from(mode.idle_level()));
            flex.set_output_enable(true);
        }
        Ok(())
    }

    pub fn set(&mut self, pin: u8, level: bool, duty: Option<u32>) {
        let Some(slot) = self.slots.iter_mut().find(|s| s.number == pin) else {
            return;
        };
        match &mut slot.drive {
            Drive::Gpio(flex) => flex.set_level(Level::from(level)),
            Drive::Pwm { channel, max_duty } => {
                let duty = duty.unwrap_or(if level { *max_duty } else { 0 });
                channel.set_duty_hw(duty.min(*max_duty));
            }
            Drive::Moving => {}
        }
    }

    /// Input pins whose level changed since the last poll.
    pub fn poll_inputs(&mut self) -> Vec<(u8, bool)> {
        let mut changed = Vec::new();
        for slot in self.slots.iter_mut().filter(|s| s.input) {
            let Drive::Gpio(flex) = &slot.drive else {
                continue;
            };
            let level = flex.is_high();
            if slot.last != Some(level) {
                slot.last = Some(level);
                changed.push((slot.number, level));
            }
        }
        changed
    }
}
