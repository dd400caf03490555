//! The GPIOs the config may use, behind one `Flex` each so the engine can make any of them an input or an output at
//! run time. ESP32-C3: GPIO 0-7, 10, 20, 21 (8/9 are strapping pins, 11-17 the flash, 18/19 USB).
//! PWM (LEDC) is not wired up yet: an `output-pwm` pin is driven high for a duty above zero, low otherwise.

use alloc::vec::Vec;

use esp_hal::gpio::{Flex, InputConfig, Level, OutputConfig, Pull};
use esp_hal::peripherals::{
    GPIO0, GPIO1, GPIO10, GPIO2, GPIO20, GPIO21, GPIO3, GPIO4, GPIO5, GPIO6, GPIO7,
};
use meter_core::gpio::PinMode;

/// The pins handed over at boot.
pub struct Bank<'d> {
    pub gpio0: GPIO0<'d>,
    pub gpio1: GPIO1<'d>,
    pub gpio2: GPIO2<'d>,
    pub gpio3: GPIO3<'d>,
    pub gpio4: GPIO4<'d>,
    pub gpio5: GPIO5<'d>,
    pub gpio6: GPIO6<'d>,
    pub gpio7: GPIO7<'d>,
    pub gpio10: GPIO10<'d>,
    pub gpio20: GPIO20<'d>,
    pub gpio21: GPIO21<'d>,
}

struct Slot<'d> {
    number: u8,
    flex: Flex<'d>,
    input: bool,
    last: Option<bool>,
}

pub struct Pins<'d> {
    slots: Vec<Slot<'d>>,
}

impl<'d> Pins<'d> {
    pub fn new(b: Bank<'d>) -> Pins<'d> {
        let slot = |number, flex| Slot {
            number,
            flex,
            input: false,
            last: None,
        };
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
        }
    }

    fn slot(&mut self, pin: u8) -> Option<&mut Slot<'d>> {
        self.slots.iter_mut().find(|s| s.number == pin)
    }

    pub fn configure(&mut self, pin: u8, mode: PinMode) -> Result<(), &'static str> {
        let slot = self
            .slot(pin)
            .ok_or("not usable on the ESP32-C3 (use GPIO 0-7, 10, 20 or 21)")?;
        slot.input = mode.is_input();
        slot.last = None;
        if slot.input {
            let pull = match mode {
                PinMode::InputPullup => Pull::Up,
                PinMode::InputPulldown => Pull::Down,
                _ => Pull::None,
            };
            slot.flex.set_output_enable(false);
            slot.flex
                .apply_input_config(&InputConfig::default().with_pull(pull));
            slot.flex.set_input_enable(true);
        } else {
            slot.flex.apply_output_config(&OutputConfig::default());
            slot.flex.set_level(Level::from(mode.idle_level()));
            slot.flex.set_output_enable(true);
        }
        Ok(())
    }

    pub fn set(&mut self, pin: u8, level: bool, duty: Option<u32>) {
        if let Some(slot) = self.slot(pin) {
            let high = duty.map_or(level, |d| d > 0);
            slot.flex.set_level(Level::from(high));
        }
    }

    /// Input pins whose level changed since the last poll.
    pub fn poll_inputs(&mut self) -> Vec<(u8, bool)> {
        let mut changed = Vec::new();
        for slot in self.slots.iter_mut().filter(|s| s.input) {
            let level = slot.flex.is_high();
            if slot.last != Some(level) {
                slot.last = Some(level);
                changed.push((slot.number, level));
            }
        }
        changed
    }
}
