//! Wi-Fi station (esp-radio) and the IP stack (embassy-net, DHCP). Credentials come from `network.wlan` of the
//! stored config; set them on first boot with `config set network.wlan.ssid ...` on the console, then `reboot`.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicI32, Ordering};

use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_net::{Runner, Stack, StackResources};
use embassy_time::{Duration, Timer};
use esp_hal::peripherals::WIFI;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{AuthenticationMethodConfig, Config, Interface, WifiController};
use static_cell::StaticCell;

use crate::console;
use meter_core::config::WlanCredentials;
use meter_core::engine::Level;

/// The last RSSI (dBm) seen while associated; 0 when not associated.
pub static RSSI: AtomicI32 = AtomicI32::new(0);
const DHCP_WAIT: Duration = Duration::from_secs(15);
const RSSI_EVERY: Duration = Duration::from_secs(10);

/// The network as the rest of the firmware sees it.
pub struct Net {
    pub stack: Stack<'static>,
    pub mac: String,
}

impl Net {
    /// The DHCP address, once there is one.
    pub fn ip(&self) -> Option<String> {
        self.stack
            .config_v4()
            .map(|c| format!("{}", c.address.address()))
    }
}

/// Starts Wi-Fi and the stack; waits a while for DHCP so the device info carries the address.
pub async fn start(spawner: &Spawner, wifi: WIFI<'static>, creds: Option<WlanCredentials>) -> Net {
    let controller = match WifiController::new(wifi, Default::default()) {
        Ok(c) => c,
        Err(e) => {
            console::log(
                Level::Error,
                "wifi",
                &format!("cannot start the radio: {e:?}"),
            );
            // Without a radio the device still runs (console, GPIO): park the network forever.
            loop {
                Timer::after(Duration::from_secs(3600)).await;
            }
        }
    };
    let device = Interface::station();
    let mac_bytes = device.mac_address();
    let mac = format!(
        "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
        mac_bytes[0], mac_bytes[1], mac_bytes[2], mac_bytes[3], mac_bytes[4], mac_bytes[5]
    );
    static RESOURCES: StaticCell<StackResources<6>> = StaticCell::new();
    // The radio is on, so the hardware RNG gives true random numbers: every boot's local ports and TCP sequence
    // numbers differ (a peer still holding the last boot's connection must not take the new one for it).
    let rng = esp_hal::rng::Rng::new();
    let seed = u64::from(rng.random()) << 32 | u64::from(rng.random());
    let (stack, runner) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawner.spawn(net_task(runner).expect("task slot"));
    match creds {
        Some(creds) => {
            spawner.spawn(connection(controller, creds).expect("task slot"));
            if embassy_time::with_timeout(DHCP_WAIT, stack.wait_config_up()).await.is_err() {
                console::log(Level::Warn, "wifi", "no IP address yet, booting anyway");
            }
        }
        None => console::log(Level::Warn, "wifi", "no credentials; set them: `config set network.wlan.ssid NAME`, `config set network.wlan.password PW`, `reboot`",
        ),
    }
    Net { stack, mac }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) {
    runner.run().await
}

/// Associates, and again after every disconnect.
#[embassy_executor::task]
async fn connection(mut controller: WifiController<'static>, creds: WlanCredentials) {
    let auth = if creds.password.is_empty() {
        Some(AuthenticationMethodConfig::Open)
    } else {
        creds
            .password
            .as_str()
            .try_into()
            .ok()
            .map(AuthenticationMethodConfig::Wpa2Personal)
    };
    let (Ok(ssid), Some(auth)) = (creds.ssid.as_str().try_into(), auth) else {
        console::log(
            Level::Error,
            "wifi",
            "network.wlan.ssid or password is too long",
        );
        return;
    };
    let config = Config::Station(
        StationConfig::default()
            .with_ssid(ssid)
            .with_authentication(auth),
    );
    if let Err(e) = controller.set_config(&config) {
        console::log(Level::Error, "wifi", &format!("bad station config: {e:?}"));
        return;
    }
    loop {
        match controller.connect_async().await {
            Ok(_) => {
                console::log(
                    Level::Info,
                    "wifi",
                    &format!("connected to '{}'", creds.ssid),
                );
                // The RSSI the status topics report, refreshed while associated.
                loop {
                    RSSI.store(controller.rssi().unwrap_or(0), Ordering::Relaxed);
                    let gone = controller.wait_for_disconnect_async();
                    match select(gone, Timer::after(RSSI_EVERY)).await {
                        Either::First(_) => break,
                        Either::Second(()) => {}
                    }
                }
                RSSI.store(0, Ordering::Relaxed);
                console::log(Level::Warn, "wifi", "disconnected");
            }
            Err(e) => console::log(
                Level::Warn,
                "wifi",
                &format!("cannot connect to '{}': {e:?}", creds.ssid),
            ),
        }
        Timer::after(Duration::from_secs(5)).await;
    }
}
