//! Every inventory the repo ships (fixtures/boards/*.toml, and the one docs/hil-rig.md shows) takes every fixture
//! config: each pin lands on a pin the ESP32-C3 gives the firmware, no two on the same one.

use std::path::{Path, PathBuf};

use harness::inventory::Inventory;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    found
}

/// The first ```toml block of docs/hil-rig.md: the inventory a reader copies.
fn documented_inventory() -> Inventory {
    let text = std::fs::read_to_string(root().join("docs/hil-rig.md")).unwrap();
    let block = text
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/hil-rig.md shows an inventory");
    Inventory::parse("hil-rig.md", block).unwrap()
}

#[test]
fn every_inventory_takes_every_fixture_config() {
    let mut inventories: Vec<Inventory> = files(&root().join("fixtures/boards"), "toml")
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            Inventory::parse(&name, &std::fs::read_to_string(p).unwrap()).unwrap()
        })
        .collect();
    inventories.push(documented_inventory());
    let configs = files(&root().join("fixtures/configs"), "json");
    assert!(!configs.is_empty());
    for inv in &inventories {
        for path in &configs {
            let mut config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            inv.remap_pins(&mut config)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn a_pin_map_that_cannot_work_says_which_line_to_add() {
    let base = "chip = \"esp32c3\"\nport = \"/dev/ttyACM0\"\nreset = \"usb-jtag\"\nbroker = \"mqtt://h\"\n";
    let config = || {
        serde_json::json!({"gpio": {"gpiopin": [
            {"gpionumber": 12, "pinmode": "output"}, {"gpionumber": 4, "pinmode": "flashlight-pwm"}]}})
    };
    // GPIO12 is the C3's flash.
    let bare = Inventory::parse("bare", base).unwrap();
    let err = bare.remap_pins(&mut config()).unwrap_err();
    assert!(
        err.contains("GPIO12") && err.contains("`12 = <one of them>`"),
        "{err}"
    );
    // 12 -> 4 lands on the flashlight.
    let clash = Inventory::parse("clash", &format!("{base}[pin_map]\n12 = 4\n")).unwrap();
    let err = clash.remap_pins(&mut config()).unwrap_err();
    assert!(
        err.contains("GPIO12 and GPIO4") && err.contains("GPIO4"),
        "{err}"
    );
    // Mapped: numbers move, topics follow.
    let good = Inventory::parse("good", &format!("{base}[pin_map]\n12 = 5\n")).unwrap();
    let mut c = config();
    good.remap_pins(&mut c).unwrap();
    assert_eq!(c["gpio"]["gpiopin"][0]["gpionumber"], 5);
    assert_eq!(c["gpio"]["gpiopin"][1]["gpionumber"], 4);
    assert_eq!(
        good.board_topic("device/gpio/gpio12/ctrl"),
        "device/gpio/gpio5/ctrl"
    );
    assert_eq!(good.board_topic("device/gpio/gpio12"), "device/gpio/gpio5");
    assert_eq!(
        good.board_topic("device/gpio/gpio4/state"),
        "device/gpio/gpio4/state"
    );
    assert_eq!(
        good.board_topic("device/gpio/gpio123x/state"),
        "device/gpio/gpio123x/state"
    );
    assert_eq!(
        good.board_topic("device/gpio/relay/state"),
        "device/gpio/relay/state"
    );
}
