//! The firmware's heap, metered as the ESP32-C3 would hold it: every allocation the firmware makes (while the shell,
//! the MQTT driver, the SNTP client or an HTTP request of the shared code runs) counts against the chip's heap; the
//! host's own machinery (tokio, the pseudo-terminal, the GPIO socket) does not. An allocation over the budget fails
//! as on the chip: `memory allocation of N bytes failed`, and the firmware stops (the chip would restart).
//!
//! Each block carries a small header saying whether it was counted, so a block the host made and the firmware
//! freed (a console chunk) is never subtracted, and the other way round.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// The allocator of the virtual board's process.
pub struct Metered;

static USED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Where an allocation failure is told (the UART), besides stderr.
static CONSOLE_FD: AtomicI32 = AtomicI32::new(-1);
const COUNTED: usize = 0x4D45_5445_5245_4421;
const NOT_COUNTED: usize = 0;

thread_local! {
    static METERING: Cell<bool> = const { Cell::new(false) };
}

/// The header keeps the block's alignment.
fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

fn outer(layout: Layout) -> Option<Layout> {
    Layout::from_size_align(layout.size().checked_add(header(layout))?, layout.align()).ok()
}

/// Says what the chip says (without allocating), then stops.
fn out_of_memory(size: usize) -> ! {
    let mut line = [0u8; 96];
    let mut cursor = std::io::Cursor::new(&mut line[..]);
    let _ = write!(cursor, "memory allocation of {size} bytes failed\r\n");
    let n = cursor.position() as usize;
    // SAFETY: writes a stack buffer to file descriptors the process owns (or -1, which fails harmlessly).
    unsafe {
        let _ = nix::libc::write(2, line.as_ptr().cast(), n);
        let fd = CONSOLE_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            let _ = nix::libc::write(fd, line.as_ptr().cast(), n);
        }
    }
    std::process::abort()
}

// SAFETY: every block is a System block with a header in front; dealloc gets the same layout as alloc (the
// GlobalAlloc contract), so the header's size and place are recomputed exactly.
unsafe impl GlobalAlloc for Metered {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(full) = outer(layout) else {
            return std::ptr::null_mut();
        };
        let counted = METERING.with(Cell::get);
        if counted {
            let used = USED.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            if used > BUDGET.load(Ordering::Relaxed) {
                out_of_memory(layout.size());
            }
            PEAK.fetch_max(used, Ordering::Relaxed);
        }
        let base = System.alloc(full);
        if base.is_null() {
            return base;
        }
        base.cast::<usize>()
            .write(if counted { COUNTED } else { NOT_COUNTED });
        base.add(header(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let base = ptr.sub(header(layout));
        if base.cast::<usize>().read() == COUNTED {
            USED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        if let Some(full) = outer(layout) {
            System.dealloc(base, full);
        }
    }
}

/// Counts the allocations made while `future` is polled (on this thread) as the firmware's.
pub struct Firmware<F>(pub F);

impl<F: Future> Future for Firmware<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = METERING.with(|m| m.replace(true));
        // SAFETY: structural pinning of the only field; it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|f| &mut f.0) };
        let poll = inner.poll(cx);
        METERING.with(|m| m.set(before));
        poll
    }
}

/// Sets the budget (the chip's heap) and where a failure is told; `None` meters without a limit.
pub fn limit(budget: Option<usize>, console_fd: i32) {
    BUDGET.store(budget.unwrap_or(usize::MAX), Ordering::Relaxed);
    CONSOLE_FD.store(console_fd, Ordering::Relaxed);
}

/// Bytes the firmware holds now, the most it ever held, and the budget (`usize::MAX`: none).
pub fn figures() -> (usize, usize, usize) {
    (
        USED.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed),
        BUDGET.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_firmware_allocates_counts_whoever_frees_it() {
        let (before, _, _) = figures();
        let host_made: Vec<u8> = vec![0; 1000];
        let firmware_made = futures::executor::block_on(Firmware(async { vec![0u8; 3000] }));
        let (during, peak, _) = figures();
        assert_eq!(during - before, 3000);
        assert!(peak >= during);
        // Freed by the firmware: the host's block was never counted.
        futures::executor::block_on(Firmware(async move { drop(host_made) }));
        assert_eq!(figures().0 - before, 3000);
        drop(firmware_made);
        assert_eq!(figures().0, before);
    }
}

#[cfg(test)]
mod engine_heap {
    use super::*;

    /// The firmware's largest moments (boot with a saved config, a config change over REST) leave most of the chip's
    /// heap to MQTT, HTTP and the network: a document held twice (it takes ~8 times its text parsed) would not.
    #[test]
    fn boot_and_a_config_change_fit_in_half_the_chips_heap() {
        let partial: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/configs/ha-json-topics.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let (whole, _) = meter_core::config::Config::from_partial(&partial).unwrap();
        let saved = whole.to_string();
        let budget = meter_shell::limits::FIRMWARE_HEAP;
        let measure = |f: &mut dyn FnMut()| {
            let (before, _, _) = figures();
            PEAK.store(before, Ordering::Relaxed);
            futures::executor::block_on(Firmware(async { f() }));
            let (after, peak, _) = figures();
            (after.saturating_sub(before), peak - before)
        };
        let mut engine = meter_core::Engine::new();
        let (held, boot_peak) = measure(&mut || {
            let boot = meter_core::Boot {
                stored_config: Some(saved.clone()),
                ..Default::default()
            };
            let _ = engine.handle(0, meter_core::Event::Booted(boot));
        });
        let (_, change_peak) = measure(&mut || {
            let req = meter_core::HttpRequest {
                method: "POST".into(),
                path: "/api/config".into(),
                query: String::new(),
                body: br#"{"operationmode":{"automaticprocessinterval":"3.5"}}"#.to_vec(),
            };
            assert_eq!(engine.http(0, &req).status, 200);
            let _ = std::iter::from_fn(|| engine.poll_action()).count();
        });
        eprintln!("engine holds {held} B after boot; peaks: boot {boot_peak} B, config change {change_peak} B");
        assert!(held < budget / 4, "{held} B held");
        assert!(boot_peak < budget / 2, "boot peak {boot_peak} B");
        assert!(
            change_peak < budget / 2,
            "config change peak {change_peak} B"
        );
    }
}
