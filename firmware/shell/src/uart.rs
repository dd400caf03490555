//! Console output: lines go into a bounded pipe a board's UART task drains. Nothing waits for the host: a line
//! that does not fit is dropped whole and counted (a UART that nobody reads loses bytes; a firmware that blocked on
//! it would stop measuring), and once lines fit again a notice says how many were lost.

use alloc::format;

use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::pipe::Pipe;

use crate::limits::UART_BUFFER;

/// The bytes between the firmware and the UART hardware (or the virtual board's pseudo-terminal).
pub type UartPipe<M> = Pipe<M, UART_BUFFER>;

/// Writes lines into the pipe, dropping what does not fit.
pub struct Console<'a, M: RawMutex> {
    pipe: &'a UartPipe<M>,
    dropped_lines: u32,
    dropped_total: u64,
}

impl<'a, M: RawMutex> Console<'a, M> {
    pub fn new(pipe: &'a UartPipe<M>) -> Self {
        Console {
            pipe,
            dropped_lines: 0,
            dropped_total: 0,
        }
    }

    /// Queues one line (a `\r\n` ends it, as an ESP32 console does). Returns false when it was dropped.
    pub fn line(&mut self, text: &str) -> bool {
        let notice = (self.dropped_lines > 0).then(|| {
            format!(
                "W console: {} line(s) dropped: nobody read the console",
                self.dropped_lines
            )
        });
        let needed = text.len() + 2 + notice.as_ref().map_or(0, |n| n.len() + 2);
        if self.pipe.free_capacity() < needed {
            self.dropped_lines += 1;
            self.dropped_total += 1;
            return false;
        }
        if let Some(notice) = notice {
            put_line(self.pipe, &notice);
            self.dropped_lines = 0;
        }
        put_line(self.pipe, text)
    }

    /// Lines dropped since the board started.
    pub fn dropped(&self) -> u64 {
        self.dropped_total
    }
}

/// Queues one line if it fits whole; false when it was dropped. For a board's own tasks (Wi-Fi, ...); the shell's
/// lines go through [`Console`], which also counts and reports what was dropped.
pub fn put_line<M: RawMutex>(pipe: &UartPipe<M>, text: &str) -> bool {
    if pipe.free_capacity() < text.len() + 2 {
        return false;
    }
    // Checked and written without an await in between: on a board's single executor no other task writes
    // between the check and the writes, so lines never interleave and the capacity is still there.
    write_all_now(pipe, text.as_bytes());
    write_all_now(pipe, b"\r\n");
    true
}

/// Writes bytes known to fit: a ring buffer takes them in two pieces where it wraps around.
fn write_all_now<M: RawMutex>(pipe: &UartPipe<M>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match pipe.try_write(bytes) {
            Ok(n) if n > 0 => bytes = &bytes[n..],
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;

    fn drain(pipe: &UartPipe<CriticalSectionRawMutex>) -> alloc::string::String {
        let mut out = alloc::vec![0u8; UART_BUFFER];
        let n = pipe.try_read(&mut out).unwrap_or(0);
        alloc::string::String::from_utf8_lossy(&out[..n]).into_owned()
    }

    #[test]
    fn lines_that_wrap_around_the_ring_buffer_arrive_whole() {
        let pipe = UartPipe::<CriticalSectionRawMutex>::new();
        let mut console = Console::new(&pipe);
        let line = "y".repeat(700);
        for _ in 0..20 {
            assert!(console.line(&line));
            let text = drain(&pipe);
            // One read returns what is contiguous; the rest follows.
            let text = text + &drain(&pipe);
            assert_eq!(text, format!("{line}\r\n"));
        }
    }

    #[test]
    fn a_full_pipe_drops_whole_lines_counts_them_and_says_so_later() {
        let pipe = UartPipe::<CriticalSectionRawMutex>::new();
        let mut console = Console::new(&pipe);
        let line = "x".repeat(998);
        let mut written = 0;
        for _ in 0..10 {
            if console.line(&line) {
                written += 1;
            }
        }
        assert_eq!(written, UART_BUFFER / 1000, "what fits is written whole");
        assert_eq!(console.dropped(), 10 - written as u64);
        let text = drain(&pipe);
        assert!(text.split("\r\n").all(|l| l.is_empty() || l == line));
        // Read again: the loss is reported before the next line.
        assert!(console.line("next"));
        assert_eq!(
            drain(&pipe),
            "W console: 6 line(s) dropped: nobody read the console\r\nnext\r\n"
        );
    }
}
