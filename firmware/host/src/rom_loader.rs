//! The ESP32-C3 ROM serial loader and the flasher stub, as a sans-IO state machine: UART bytes in, UART bytes
//! and board effects out. Written from Espressif's serial protocol description and checked against the espflash
//! library and esptool.
//!
//! The virtual board cannot execute the stub that a flasher uploads with MEM_BEGIN/DATA/END; it answers `OHAI`
//! as the stub does and from then on serves the stub's command set (2 status bytes, 16 KiB blocks, erase, read).

use md5::{Digest, Md5};

use crate::slip::{self, SlipDecoder};
use crate::spi_flash::{FlashError, SpiFlash, JEDEC_ID, SECTOR, SIZE};

/// Command opcodes.
mod op {
    pub const FLASH_BEGIN: u8 = 0x02;
    pub const FLASH_DATA: u8 = 0x03;
    pub const FLASH_END: u8 = 0x04;
    pub const MEM_BEGIN: u8 = 0x05;
    pub const MEM_END: u8 = 0x06;
    pub const MEM_DATA: u8 = 0x07;
    pub const SYNC: u8 = 0x08;
    pub const WRITE_REG: u8 = 0x09;
    pub const READ_REG: u8 = 0x0A;
    pub const SPI_SET_PARAMS: u8 = 0x0B;
    pub const SPI_ATTACH: u8 = 0x0D;
    pub const CHANGE_BAUDRATE: u8 = 0x0F;
    pub const FLASH_DEFL_BEGIN: u8 = 0x10;
    pub const FLASH_DEFL_DATA: u8 = 0x11;
    pub const FLASH_DEFL_END: u8 = 0x12;
    pub const SPI_FLASH_MD5: u8 = 0x13;
    pub const GET_SECURITY_INFO: u8 = 0x14;
    pub const ERASE_FLASH: u8 = 0xD0;
    pub const ERASE_REGION: u8 = 0xD1;
    pub const READ_FLASH: u8 = 0xD2;
    pub const RUN_USER_CODE: u8 = 0xD3;
}

/// Error codes of a failed command (the byte after status 1).
mod rom_error {
    pub const INVALID_MESSAGE: u8 = 0x05;
    pub const FAILED_TO_ACT: u8 = 0x06;
    pub const BAD_CHECKSUM: u8 = 0x07;
    pub const FLASH_WRITE: u8 = 0x08;
    pub const DEFLATE: u8 = 0x0B;
}

/// Registers the flashers read (all others read 0, writes are kept).
mod reg {
    pub const CHIP_MAGIC: u32 = 0x4000_1000;
    /// ESP32-C3 ECO3.
    pub const CHIP_MAGIC_VALUE: u32 = 0x1B31_506F;
    pub const EFUSE_BLOCK1: u32 = 0x6000_8844;
    pub const SPI_BASE: u32 = 0x6000_2000;
    pub const SPI_CMD: u32 = SPI_BASE;
    pub const SPI_USR2: u32 = SPI_BASE + 0x20;
    pub const SPI_W0: u32 = SPI_BASE + 0x58;
    pub const SPI_USR_BIT: u32 = 1 << 18;
    pub const RDID: u32 = 0x9F;
}

const CHIP_ID_ESP32C3: u32 = 5;
const SYNC_PAYLOAD_LEN: usize = 36;
/// The ROM answers a SYNC this many times; espflash counts on at least 7.
const SYNC_REPLIES: usize = 8;
const SYNC_VALUE_ROM: u32 = 0x2012_0707;
pub const STUB_HELLO: &[u8] = b"OHAI";

/// Who answers: the mask ROM, or the flasher stub a flasher uploaded into RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    Rom,
    Stub,
}

/// What the board must do besides writing to the UART.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes to the host.
    Uart(Vec<u8>),
    /// Leave the loader and run the app from flash (FLASH_END "run user code", RUN_USER_CODE).
    RunApp,
    /// A software reset with the strapping pins still latched: the ROM loader starts again.
    Reboot,
    /// The host asked for a new line rate (applies after this reply).
    Baud(u32),
}

enum Transfer {
    None,
    Flash {
        offset: usize,
        block: usize,
        next_seq: u32,
    },
    Deflate {
        offset: usize,
        end: usize,
        written: usize,
        next_seq: u32,
        inflate: Box<flate2::Decompress>,
        /// Inflated output, reused for every block of the transfer.
        scratch: Vec<u8>,
    },
    Mem,
    /// Stub READ_FLASH: packets go out as the host acknowledges them.
    Read {
        offset: usize,
        len: usize,
        packet: usize,
        in_flight: usize,
        sent: usize,
        acked: usize,
    },
}

/// A successful reply: the value word and the data before the status bytes.
struct Reply {
    value: u32,
    data: Vec<u8>,
}

impl Reply {
    fn ok() -> Option<Reply> {
        Some(Reply {
            value: 0,
            data: Vec::new(),
        })
    }
}

type Outcome = Result<Option<Reply>, u8>;

/// The loader of one boot in download mode.
pub struct RomLoader {
    decoder: SlipDecoder,
    loader: Loader,
    regs: std::collections::BTreeMap<u32, u32>,
    transfer: Transfer,
    /// An effect that follows the reply (reboot, run the app, new baud rate).
    after_reply: Option<Output>,
}

impl RomLoader {
    /// A loader on a chip with this factory MAC address.
    pub fn new(mac: [u8; 6]) -> RomLoader {
        let mut regs = std::collections::BTreeMap::new();
        regs.insert(reg::CHIP_MAGIC, reg::CHIP_MAGIC_VALUE);
        // eFuse BLOCK1: MAC in words 0-1; wafer version v0.4 (minor version low bits: word 3, bits 18-20).
        regs.insert(
            reg::EFUSE_BLOCK1,
            u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
        );
        regs.insert(
            reg::EFUSE_BLOCK1 + 4,
            u32::from(u16::from_be_bytes([mac[0], mac[1]])),
        );
        regs.insert(reg::EFUSE_BLOCK1 + 12, 4 << 18);
        RomLoader {
            decoder: SlipDecoder::default(),
            loader: Loader::Rom,
            regs,
            transfer: Transfer::None,
            after_reply: None,
        }
    }

    /// Who is answering now.
    #[cfg(test)]
    pub fn loader(&self) -> Loader {
        self.loader
    }

    /// Feeds UART bytes; returns what the chip does in answer.
    pub fn feed(&mut self, bytes: &[u8], flash: &mut SpiFlash) -> Vec<Output> {
        let mut out = Vec::new();
        for packet in self.decoder.feed(bytes) {
            if matches!(self.transfer, Transfer::Read { .. }) {
                self.on_read_ack(&packet, flash, &mut out);
            } else {
                self.on_command(&packet, flash, &mut out);
            }
        }
        out
    }

    fn on_command(&mut self, packet: &[u8], flash: &mut SpiFlash, out: &mut Vec<Output>) {
        // Request: direction 0, opcode, data length (u16 LE), checksum (u32 LE), data.
        if packet.len() < 8 || packet[0] != 0 {
            return;
        }
        let code = packet[1];
        let len = usize::from(u16::from_le_bytes([packet[2], packet[3]]));
        let checksum = le32(&packet[4..8]);
        let data = &packet[8..];
        let outcome = if data.len() != len {
            Err(rom_error::INVALID_MESSAGE)
        } else {
            self.execute(code, checksum, data, flash, out)
        };
        match outcome {
            Ok(Some(reply)) => self.reply(code, reply.value, &reply.data, 0, out),
            Ok(None) => {}
            Err(error) => self.reply(code, 0, &[], error, out),
        }
        out.extend(self.after_reply.take());
        if let Transfer::Read { .. } = self.transfer {
            self.send_read_packets(flash, out);
        }
    }

    fn execute(
        &mut self,
        code: u8,
        checksum: u32,
        data: &[u8],
        flash: &mut SpiFlash,
        out: &mut Vec<Output>,
    ) -> Outcome {
        let stub = self.loader == Loader::Stub;
        match code {
            op::SYNC => {
                if data.len() != SYNC_PAYLOAD_LEN || data[..4] != [0x07, 0x07, 0x12, 0x20] {
                    return Err(rom_error::INVALID_MESSAGE);
                }
                let (times, value) = if stub {
                    (1, 0)
                } else {
                    (SYNC_REPLIES, SYNC_VALUE_ROM)
                };
                for _ in 0..times {
                    self.reply(code, value, &[], 0, out);
                }
                Ok(None)
            }
            op::READ_REG => {
                let addr = word(data, 0)?;
                Ok(Some(Reply {
                    value: self.regs.get(&addr).copied().unwrap_or(0),
                    data: Vec::new(),
                }))
            }
            op::WRITE_REG => {
                // One or more (address, value, mask, delay_us) quadruples.
                if data.is_empty() || !data.len().is_multiple_of(16) {
                    return Err(rom_error::INVALID_MESSAGE);
                }
                for q in data.chunks(16) {
                    let (addr, value, mask) = (le32(&q[0..4]), le32(&q[4..8]), le32(&q[8..12]));
                    let old = self.regs.get(&addr).copied().unwrap_or(0);
                    self.regs.insert(addr, (old & !mask) | (value & mask));
                    if addr == reg::SPI_CMD && value & reg::SPI_USR_BIT != 0 {
                        self.run_spi_command();
                    }
                }
                Ok(Reply::ok())
            }
            op::GET_SECURITY_INFO => {
                // flags, flash_crypt_cnt, 7 key purposes, chip id, API version.
                let mut info = vec![0u8; 12];
                info.extend(CHIP_ID_ESP32C3.to_le_bytes());
                info.extend(0u32.to_le_bytes());
                Ok(Some(Reply {
                    value: 0,
                    data: info,
                }))
            }
            op::SPI_SET_PARAMS | op::SPI_ATTACH => Ok(Reply::ok()),
            op::CHANGE_BAUDRATE => {
                let baud = word(data, 0)?;
                if baud == 0 {
                    return Err(rom_error::INVALID_MESSAGE);
                }
                self.after_reply = Some(Output::Baud(baud));
                Ok(Reply::ok())
            }
            op::FLASH_BEGIN => {
                let (size, block, offset) = begin_params(data)?;
                erase_for_write(flash, offset, size, stub)?;
                self.transfer = Transfer::Flash {
                    offset,
                    block,
                    next_seq: 0,
                };
                Ok(Reply::ok())
            }
            op::FLASH_DATA => {
                let (payload, seq) = data_block(data, checksum)?;
                let Transfer::Flash {
                    offset,
                    block,
                    next_seq,
                } = &mut self.transfer
                else {
                    return Err(rom_error::FAILED_TO_ACT);
                };
                if seq != *next_seq {
                    return Err(rom_error::FAILED_TO_ACT);
                }
                let at = *offset + seq as usize * *block;
                flash.write(at, payload).map_err(flash_error)?;
                *next_seq += 1;
                Ok(Reply::ok())
            }
            op::FLASH_DEFL_BEGIN => {
                let (size, _, offset) = begin_params(data)?;
                erase_for_write(flash, offset, size, stub)?;
                self.transfer = Transfer::Deflate {
                    offset,
                    end: offset + size,
                    written: 0,
                    next_seq: 0,
                    inflate: Box::new(flate2::Decompress::new(true)),
                    scratch: vec![0u8; 64 * 1024],
                };
                Ok(Reply::ok())
            }
            op::FLASH_DEFL_DATA => {
                let (payload, seq) = data_block(data, checksum)?;
                let Transfer::Deflate {
                    offset,
                    end,
                    written,
                    next_seq,
                    inflate,
                    scratch,
                } = &mut self.transfer
                else {
                    return Err(rom_error::FAILED_TO_ACT);
                };
                if seq != *next_seq {
                    return Err(rom_error::FAILED_TO_ACT);
                }
                *next_seq += 1;
                let mut input = payload;
                let buf = scratch;
                loop {
                    let before_in = inflate.total_in();
                    let before_out = inflate.total_out();
                    let status = inflate
                        .decompress(input, buf, flate2::FlushDecompress::None)
                        .map_err(|_| rom_error::DEFLATE)?;
                    let used = (inflate.total_in() - before_in) as usize;
                    let produced = (inflate.total_out() - before_out) as usize;
                    input = &input[used..];
                    let at = *offset + *written;
                    if at + produced > *end {
                        return Err(rom_error::FLASH_WRITE);
                    }
                    flash.write(at, &buf[..produced]).map_err(flash_error)?;
                    *written += produced;
                    let stalled = used == 0 && produced == 0;
                    if status == flate2::Status::StreamEnd
                        || stalled
                        || (input.is_empty() && produced < buf.len())
                    {
                        break;
                    }
                }
                Ok(Reply::ok())
            }
            op::FLASH_END | op::FLASH_DEFL_END => {
                // 0: reboot; 1: run user code (ROM) / stay in the loader (stub).
                let run_user_code = data.len() >= 4 && le32(&data[0..4]) != 0;
                self.transfer = Transfer::None;
                self.after_reply = match (stub, run_user_code) {
                    (_, false) => Some(Output::Reboot),
                    (false, true) => Some(Output::RunApp),
                    (true, true) => None,
                };
                Ok(Reply::ok())
            }
            op::MEM_BEGIN => {
                begin_params(data)?;
                self.transfer = Transfer::Mem;
                Ok(Reply::ok())
            }
            op::MEM_DATA => {
                data_block(data, checksum)?;
                if !matches!(self.transfer, Transfer::Mem) {
                    return Err(rom_error::FAILED_TO_ACT);
                }
                Ok(Reply::ok())
            }
            op::MEM_END => {
                // (no_entry, entry): no_entry 0 means jump to entry, i.e. start the uploaded stub.
                let no_entry = word(data, 0)?;
                let entry = word(data, 1)?;
                self.transfer = Transfer::None;
                self.reply(code, 0, &[], 0, out);
                if no_entry == 0 && entry != 0 {
                    self.loader = Loader::Stub;
                    out.push(Output::Uart(slip::encode(STUB_HELLO)));
                }
                Ok(None)
            }
            op::SPI_FLASH_MD5 => {
                let (addr, size) = (word(data, 0)? as usize, word(data, 1)? as usize);
                let digest = Md5::digest(flash.read(addr, size).map_err(flash_error)?);
                let data = if stub {
                    digest.to_vec()
                } else {
                    digest
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        .into_bytes()
                };
                Ok(Some(Reply { value: 0, data }))
            }
            op::ERASE_FLASH if stub => {
                flash.erase(0, SIZE).map_err(flash_error)?;
                Ok(Reply::ok())
            }
            op::ERASE_REGION if stub => {
                let (offset, size) = (word(data, 0)? as usize, word(data, 1)? as usize);
                flash.erase(offset, size).map_err(flash_error)?;
                Ok(Reply::ok())
            }
            op::READ_FLASH if stub => {
                let (offset, len) = (word(data, 0)? as usize, word(data, 1)? as usize);
                let (packet, in_flight) = (word(data, 2)? as usize, word(data, 3)? as usize);
                flash.read(offset, len).map_err(flash_error)?;
                if packet == 0 || in_flight == 0 {
                    return Err(rom_error::INVALID_MESSAGE);
                }
                self.transfer = Transfer::Read {
                    offset,
                    len,
                    packet,
                    in_flight,
                    sent: 0,
                    acked: 0,
                };
                Ok(Reply::ok())
            }
            op::RUN_USER_CODE if stub => {
                self.after_reply = Some(Output::RunApp);
                Ok(None)
            }
            _ => Err(rom_error::INVALID_MESSAGE),
        }
    }

    /// SPI_CMD's USR bit starts a user command on the flash: RDID answers the JEDEC id, others read 0.
    fn run_spi_command(&mut self) {
        let command = self.regs.get(&reg::SPI_USR2).copied().unwrap_or(0) & 0xFFFF;
        let w0 = if command == reg::RDID { JEDEC_ID } else { 0 };
        self.regs.insert(reg::SPI_W0, w0);
        let cmd = self.regs.get(&reg::SPI_CMD).copied().unwrap_or(0);
        self.regs.insert(reg::SPI_CMD, cmd & !reg::SPI_USR_BIT);
    }

    /// Sends READ_FLASH packets while fewer than `in_flight` are unacknowledged.
    fn send_read_packets(&mut self, flash: &SpiFlash, out: &mut Vec<Output>) {
        let Transfer::Read {
            offset,
            len,
            packet,
            in_flight,
            sent,
            acked,
        } = &mut self.transfer
        else {
            return;
        };
        while *sent < *len && *sent - (*acked).min(*sent) < *in_flight * *packet {
            let n = (*len - *sent).min(*packet);
            if let Ok(bytes) = flash.read(*offset + *sent, n) {
                out.push(Output::Uart(slip::encode(bytes)));
            }
            *sent += n;
        }
    }

    /// The host acknowledges READ_FLASH data with the total it received; all of it acknowledged -> the MD5.
    fn on_read_ack(&mut self, packet: &[u8], flash: &SpiFlash, out: &mut Vec<Output>) {
        let Transfer::Read {
            offset, len, acked, ..
        } = &mut self.transfer
        else {
            return;
        };
        if packet.len() != 4 {
            // Not an acknowledgement: the host abandoned the read.
            self.transfer = Transfer::None;
            return;
        }
        *acked = le32(packet) as usize;
        if *acked >= *len {
            let (offset, len) = (*offset, *len);
            self.transfer = Transfer::None;
            if let Ok(bytes) = flash.read(offset, len) {
                out.push(Output::Uart(slip::encode(&Md5::digest(bytes))));
            }
        } else {
            self.send_read_packets(flash, out);
        }
    }

    /// Response: direction 1, opcode, length (data + status), value, data, status bytes (4 ROM, 2 stub).
    fn reply(&self, code: u8, value: u32, data: &[u8], error: u8, out: &mut Vec<Output>) {
        let status_len = if self.loader == Loader::Stub { 2 } else { 4 };
        let mut p = Vec::with_capacity(8 + data.len() + status_len);
        p.push(1);
        p.push(code);
        p.extend(((data.len() + status_len) as u16).to_le_bytes());
        p.extend(value.to_le_bytes());
        p.extend_from_slice(data);
        p.push(u8::from(error != 0));
        p.push(error);
        p.resize(p.len() + status_len - 2, 0);
        out.push(Output::Uart(slip::encode(&p)));
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn word(data: &[u8], i: usize) -> Result<u32, u8> {
    data.get(i * 4..i * 4 + 4)
        .map(le32)
        .ok_or(rom_error::INVALID_MESSAGE)
}

/// FLASH_BEGIN / FLASH_DEFL_BEGIN / MEM_BEGIN: (size, blocks, block size, offset[, encrypted]).
fn begin_params(data: &[u8]) -> Result<(usize, usize, usize), u8> {
    if data.len() != 16 && data.len() != 20 {
        return Err(rom_error::INVALID_MESSAGE);
    }
    let (size, block, offset) = (word(data, 0)?, word(data, 2)?, word(data, 3)?);
    Ok((size as usize, block as usize, offset as usize))
}

/// A DATA packet: (length, sequence, 0, 0) then the bytes, whose checksum is in the request header.
fn data_block(data: &[u8], checksum: u32) -> Result<(&[u8], u32), u8> {
    let len = word(data, 0)? as usize;
    let seq = word(data, 1)?;
    let payload = data.get(16..).ok_or(rom_error::INVALID_MESSAGE)?;
    if payload.len() != len {
        return Err(rom_error::INVALID_MESSAGE);
    }
    let sum = payload.iter().fold(0xEFu8, |acc, b| acc ^ b);
    if u32::from(sum) != checksum {
        return Err(rom_error::BAD_CHECKSUM);
    }
    Ok((payload, seq))
}

/// The ROM writes whole sectors only; the stub also takes unaligned offsets.
fn erase_for_write(flash: &mut SpiFlash, offset: usize, size: usize, stub: bool) -> Result<(), u8> {
    if !offset.is_multiple_of(SECTOR) && !stub {
        return Err(rom_error::FAILED_TO_ACT);
    }
    flash.erase_covering(offset, size).map_err(flash_error)
}

fn flash_error(e: FlashError) -> u8 {
    match e {
        FlashError::OutOfRange { .. } | FlashError::Unaligned { .. } => rom_error::FAILED_TO_ACT,
        FlashError::Io(_) => rom_error::FLASH_WRITE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn request(code: u8, data: &[u8], checksum: u32) -> Vec<u8> {
        let mut p = vec![0, code];
        p.extend((data.len() as u16).to_le_bytes());
        p.extend(checksum.to_le_bytes());
        p.extend_from_slice(data);
        slip::encode(&p)
    }

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn block(seq: u32, payload: &[u8]) -> (Vec<u8>, u32) {
        let mut d = words(&[payload.len() as u32, seq, 0, 0]);
        d.extend_from_slice(payload);
        let sum = payload.iter().fold(0xEFu8, |a, b| a ^ b);
        (d, u32::from(sum))
    }

    /// Responses as (opcode, value, data-with-status).
    fn replies(out: &[Output]) -> Vec<(u8, u32, Vec<u8>)> {
        let mut d = SlipDecoder::default();
        out.iter()
            .filter_map(|o| match o {
                Output::Uart(b) => Some(d.feed(b)),
                _ => None,
            })
            .flatten()
            .filter(|p| p.len() >= 8 && p[0] == 1)
            .map(|p| (p[1], le32(&p[4..8]), p[8..].to_vec()))
            .collect()
    }

    fn sync() -> Vec<u8> {
        let mut d = vec![0x07, 0x07, 0x12, 0x20];
        d.extend([0x55; 32]);
        request(op::SYNC, &d, 0)
    }

    #[test]
    fn rom_answers_sync_eight_times_and_identifies_an_esp32c3() {
        let mut rom = RomLoader::new(MAC);
        let mut flash = SpiFlash::in_memory();
        let out = rom.feed(&sync(), &mut flash);
        let r = replies(&out);
        assert_eq!(r.len(), SYNC_REPLIES);
        assert!(r
            .iter()
            .all(|(op, v, st)| *op == op::SYNC && *v != 0 && st == &[0, 0, 0, 0]));
        let r = replies(&rom.feed(
            &request(op::READ_REG, &words(&[reg::CHIP_MAGIC]), 0),
            &mut flash,
        ));
        assert_eq!(r[0].1, 0x1B31_506F);
        let r = replies(&rom.feed(&request(op::GET_SECURITY_INFO, &[], 0), &mut flash));
        assert_eq!(r[0].2.len(), 20 + 4, "20 bytes of info, 4 ROM status bytes");
        assert_eq!(le32(&r[0].2[12..16]), CHIP_ID_ESP32C3);
        // MAC from eFuse BLOCK1 words 0 and 1, as esptool assembles it.
        let w0 = replies(&rom.feed(
            &request(op::READ_REG, &words(&[reg::EFUSE_BLOCK1]), 0),
            &mut flash,
        ))[0]
            .1;
        let w1 = replies(&rom.feed(
            &request(op::READ_REG, &words(&[reg::EFUSE_BLOCK1 + 4]), 0),
            &mut flash,
        ))[0]
            .1;
        assert_eq!(w1 & 0xFFFF, 0x0211);
        assert_eq!(w0, 0x2233_4455);
    }

    #[test]
    fn rdid_through_spi_registers_reports_4_mib() {
        let mut rom = RomLoader::new(MAC);
        let mut flash = SpiFlash::in_memory();
        let mut writes = Vec::new();
        for (addr, value) in [
            (reg::SPI_USR2, (7 << 28) | reg::RDID),
            (reg::SPI_CMD, reg::SPI_USR_BIT),
        ] {
            writes.extend(request(
                op::WRITE_REG,
                &words(&[addr, value, 0xFFFF_FFFF, 0]),
                0,
            ));
        }
        rom.feed(&writes, &mut flash);
        let cmd = replies(&rom.feed(
            &request(op::READ_REG, &words(&[reg::SPI_CMD]), 0),
            &mut flash,
        ))[0]
            .1;
        assert_eq!(cmd & reg::SPI_USR_BIT, 0, "the command finished");
        let id = replies(&rom.feed(
            &request(op::READ_REG, &words(&[reg::SPI_W0]), 0),
            &mut flash,
        ))[0]
            .1;
        assert_eq!((id >> 16) & 0xFF, 0x16, "capacity byte of a 4 MiB chip");
    }

    #[test]
    fn rom_writes_blocks_checks_them_and_reports_the_md5_in_hex() {
        let mut rom = RomLoader::new(MAC);
        let mut flash = SpiFlash::in_memory();
        let data: Vec<u8> = (0..2048u32).map(|i| (i * 7) as u8).collect();
        rom.feed(
            &request(op::FLASH_BEGIN, &words(&[2048, 2, 1024, 0x10000, 0]), 0),
            &mut flash,
        );
        for (seq, chunk) in data.chunks(1024).enumerate() {
            let (d, sum) = block(seq as u32, chunk);
            let r = replies(&rom.feed(&request(op::FLASH_DATA, &d, sum), &mut flash));
            assert_eq!(r[0].2[..2], [0, 0], "block {seq} accepted");
        }
        assert_eq!(flash.read(0x10000, 2048).unwrap(), &data[..]);
        // A corrupted block is refused with "invalid CRC" and not written.
        let (d, sum) = block(2, &[1, 2, 3, 4]);
        let r = replies(&rom.feed(&request(op::FLASH_DATA, &d, sum ^ 1), &mut flash));
        assert_eq!(r[0].2[..2], [1, rom_error::BAD_CHECKSUM]);
        let r = replies(&rom.feed(
            &request(op::SPI_FLASH_MD5, &words(&[0x10000, 2048, 0, 0]), 0),
            &mut flash,
        ));
        let hex: String = Md5::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(&r[0].2[..32], hex.as_bytes());
        // FLASH_END(1) = run user code.
        let out = rom.feed(&request(op::FLASH_END, &words(&[1]), 0), &mut flash);
        assert_eq!(out.last(), Some(&Output::RunApp));
    }

    #[test]
    fn the_stub_path_says_ohai_then_writes_compressed_data_and_serves_reads() {
        let mut rom = RomLoader::new(MAC);
        let mut flash = SpiFlash::in_memory();
        rom.feed(
            &request(op::MEM_BEGIN, &words(&[8, 1, 0x1800, 0x4038_0000]), 0),
            &mut flash,
        );
        let (d, sum) = block(0, &[0x6F, 0, 0, 0, 0, 0, 0, 0]);
        rom.feed(&request(op::MEM_DATA, &d, sum), &mut flash);
        let out = rom.feed(
            &request(op::MEM_END, &words(&[0, 0x4038_0000]), 0),
            &mut flash,
        );
        assert_eq!(out.last(), Some(&Output::Uart(slip::encode(STUB_HELLO))));
        assert_eq!(rom.loader(), Loader::Stub);

        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let compressed = z.finish().unwrap();
        let r = replies(&rom.feed(
            &request(
                op::FLASH_DEFL_BEGIN,
                &words(&[40_000, 2, 0x4000, 0x20000]),
                0,
            ),
            &mut flash,
        ));
        assert_eq!(r[0].2, vec![0, 0], "stub replies carry 2 status bytes");
        for (seq, chunk) in compressed.chunks(compressed.len() / 2 + 1).enumerate() {
            let (d, sum) = block(seq as u32, chunk);
            let r = replies(&rom.feed(&request(op::FLASH_DEFL_DATA, &d, sum), &mut flash));
            assert_eq!(r[0].2, vec![0, 0]);
        }
        assert_eq!(flash.read(0x20000, 40_000).unwrap(), &data[..]);
        let r = replies(&rom.feed(
            &request(op::SPI_FLASH_MD5, &words(&[0x20000, 40_000, 0, 0]), 0),
            &mut flash,
        ));
        assert_eq!(
            &r[0].2[..16],
            &Md5::digest(&data)[..],
            "the stub sends the raw digest"
        );

        // READ_FLASH: 4 KiB packets, 2 in flight, acknowledged by total; the MD5 ends it.
        let out = rom.feed(
            &request(op::READ_FLASH, &words(&[0x20000, 10_000, 4096, 2]), 0),
            &mut flash,
        );
        let mut dec = SlipDecoder::default();
        let mut packets: Vec<Vec<u8>> = out
            .iter()
            .filter_map(|o| match o {
                Output::Uart(b) => Some(dec.feed(b)),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            packets.remove(0)[1],
            op::READ_FLASH,
            "the command's reply comes first"
        );
        assert_eq!(packets.len(), 2, "two packets in flight");
        let mut got: Vec<u8> = packets.concat();
        while got.len() < 10_000 {
            let out = rom.feed(&slip::encode(&(got.len() as u32).to_le_bytes()), &mut flash);
            for o in out {
                if let Output::Uart(b) = o {
                    for p in dec.feed(&b) {
                        got.extend(p);
                    }
                }
            }
        }
        assert_eq!(&got[..10_000], &data[..10_000]);
        let out = rom.feed(&slip::encode(&10_000u32.to_le_bytes()), &mut flash);
        let digest = match &out[..] {
            [Output::Uart(b)] => dec.feed(b).remove(0),
            other => panic!("expected the digest, got {other:?}"),
        };
        assert_eq!(digest, Md5::digest(&data[..10_000]).to_vec());

        // FLASH_END(0) from the stub reboots into the ROM loader (strapping pins still latched).
        let out = rom.feed(&request(op::FLASH_END, &words(&[0]), 0), &mut flash);
        assert_eq!(out.last(), Some(&Output::Reboot));
    }

    #[test]
    fn stub_only_commands_are_refused_by_the_rom_and_garbage_changes_nothing() {
        let mut rom = RomLoader::new(MAC);
        let mut flash = SpiFlash::in_memory();
        let r = replies(&rom.feed(&request(op::ERASE_FLASH, &[], 0), &mut flash));
        assert_eq!(r[0].2[..2], [1, rom_error::INVALID_MESSAGE]);
        // Console text, a truncated packet and a length mismatch: no write, no crash.
        let mut junk = b"status\r\n".to_vec();
        junk.extend(slip::encode(&[0, op::FLASH_DATA]));
        let mut bad_len = vec![0, op::READ_REG, 9, 0, 0, 0, 0, 0];
        bad_len.extend([0; 4]);
        junk.extend(slip::encode(&bad_len));
        let r = replies(&rom.feed(&junk, &mut flash));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].2[..2], [1, rom_error::INVALID_MESSAGE]);
        assert!(!flash.is_programmed());
        let r = replies(&rom.feed(
            &request(op::FLASH_DATA, &block(0, &[1]).0, block(0, &[1]).1),
            &mut flash,
        ));
        assert_eq!(
            r[0].2[..2],
            [1, rom_error::FAILED_TO_ACT],
            "data without FLASH_BEGIN"
        );
    }
}
