//! SLIP framing (RFC 1055) as the ESP ROM loader uses it: every packet sits between two 0xC0 bytes.

const END: u8 = 0xC0;
const ESC: u8 = 0xDB;
const ESC_END: u8 = 0xDC;
const ESC_ESC: u8 = 0xDD;

/// Reassembles packets from a byte stream; bytes outside a frame (console noise) are dropped.
#[derive(Debug, Default)]
pub struct SlipDecoder {
    packet: Vec<u8>,
    in_frame: bool,
    escaped: bool,
}

impl SlipDecoder {
    /// Feeds bytes; returns every packet they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut done = Vec::new();
        for &b in bytes {
            if b == END {
                if self.in_frame && !self.packet.is_empty() {
                    done.push(std::mem::take(&mut self.packet));
                    self.in_frame = false;
                } else {
                    // An END that opens a frame (or two ENDs in a row).
                    self.in_frame = true;
                }
                self.escaped = false;
                continue;
            }
            if !self.in_frame {
                continue;
            }
            if self.escaped {
                self.escaped = false;
                match b {
                    ESC_END => self.packet.push(END),
                    ESC_ESC => self.packet.push(ESC),
                    // A protocol error: drop the frame, wait for the next END.
                    _ => {
                        self.packet.clear();
                        self.in_frame = false;
                    }
                }
            } else if b == ESC {
                self.escaped = true;
            } else {
                self.packet.push(b);
            }
        }
        done
    }
}

/// One packet, framed.
pub fn encode(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(packet.len() + 8);
    out.push(END);
    for &b in packet {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            _ => out.push(b),
        }
    }
    out.push(END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_escapes_across_chunk_boundaries() {
        let packet = vec![1, END, 2, ESC, 3, END, END];
        let wire = encode(&packet);
        let mut d = SlipDecoder::default();
        let mut got = Vec::new();
        for chunk in wire.chunks(3) {
            got.extend(d.feed(chunk));
        }
        assert_eq!(got, vec![packet]);
    }

    #[test]
    fn ignores_noise_between_frames_and_bad_escapes() {
        let mut d = SlipDecoder::default();
        let mut wire = b"status\r\n".to_vec();
        wire.extend(encode(&[9, 9]));
        wire.extend([END, 1, ESC, 0x01, 2, END]);
        wire.extend(encode(&[7]));
        assert_eq!(d.feed(&wire), vec![vec![9, 9], vec![7]]);
    }
}
