//! The store on a NOR flash model that loses power: after a cut at any write or erase of a save, the value read
//! after the restart is the old one or the new one, and the store keeps working.

use std::cell::RefCell;
use std::rc::Rc;

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use futures::executor::block_on;
use meter_store::{Store, StoreError, MAX_VALUE};

const PAGE: usize = 4096;
/// As the ESP32-C3's `storage` partition: 64 KiB.
const SIZE: usize = 16 * PAGE;

#[derive(Debug)]
struct PowerLost;

impl NorFlashError for PowerLost {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// NOR flash: writes only clear bits, erase sets a page to 0xFF. With a budget, the operation that exhausts it
/// does half its work and fails, and so does everything after it (the power is off).
struct Nor {
    mem: Rc<RefCell<Vec<u8>>>,
    budget: Option<usize>,
}

impl Nor {
    fn new(mem: &Rc<RefCell<Vec<u8>>>, budget: Option<usize>) -> Nor {
        Nor {
            mem: mem.clone(),
            budget,
        }
    }

    /// True when the operation may complete; false when the power goes during it.
    fn spend(&mut self) -> Result<bool, PowerLost> {
        match &mut self.budget {
            None => Ok(true),
            Some(0) => Err(PowerLost),
            Some(n) => {
                *n -= 1;
                Ok(*n > 0)
            }
        }
    }
}

impl ErrorType for Nor {
    type Error = PowerLost;
}

impl ReadNorFlash for Nor {
    const READ_SIZE: usize = 4;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerLost> {
        if self.budget == Some(0) {
            return Err(PowerLost);
        }
        let at = offset as usize;
        bytes.copy_from_slice(&self.mem.borrow()[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl NorFlash for Nor {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerLost> {
        let whole = self.spend()?;
        let (from, to) = (from as usize, to as usize);
        let end = if whole { to } else { from + (to - from) / 2 };
        self.mem.borrow_mut()[from..end].fill(0xFF);
        if whole {
            Ok(())
        } else {
            Err(PowerLost)
        }
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerLost> {
        let whole = self.spend()?;
        let n = if whole { bytes.len() } else { bytes.len() / 2 };
        let at = offset as usize;
        for (cell, b) in self.mem.borrow_mut()[at..at + n].iter_mut().zip(bytes) {
            *cell &= *b;
        }
        if whole {
            Ok(())
        } else {
            Err(PowerLost)
        }
    }
}

impl MultiwriteNorFlash for Nor {}

fn value(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn blank() -> Rc<RefCell<Vec<u8>>> {
    Rc::new(RefCell::new(vec![0xFF; SIZE]))
}

fn store(mem: &Rc<RefCell<Vec<u8>>>, budget: Option<usize>) -> Store<Nor> {
    Store::new(Nor::new(mem, budget), 0..SIZE as u32)
}

const CONFIG: u8 = 1;
const FALLBACKS: u8 = 2;

#[test]
fn values_larger_than_a_page_round_trip_and_saves_do_not_fill_the_partition() {
    let mem = blank();
    let mut s = store(&mem, None);
    block_on(async {
        assert_eq!(s.load(CONFIG).await, Ok(None));
        let fallbacks = value(300, 9);
        s.save(FALLBACKS, &fallbacks).await.unwrap();
        // Growing, shrinking and full-size values, far more saves than the partition holds at once.
        for round in 0..60u8 {
            let len = [MAX_VALUE, 9000, 5, 0, 4097, 12_345][round as usize % 6];
            let v = value(len, round);
            s.save(CONFIG, &v)
                .await
                .unwrap_or_else(|e| panic!("save {round} ({len} bytes): {e}"));
            assert_eq!(s.load(CONFIG).await, Ok(Some(v)), "round {round}");
        }
        assert_eq!(s.load(FALLBACKS).await, Ok(Some(fallbacks)));
        assert_eq!(
            s.save(CONFIG, &value(MAX_VALUE + 1, 0)).await,
            Err(StoreError::TooBig(MAX_VALUE + 1))
        );
    });
    // What a restart reads.
    let mut again = store(&mem, None);
    let last = value(12_345, 59);
    assert_eq!(block_on(again.load(CONFIG)), Ok(Some(last)));
}

#[test]
fn a_power_cut_at_any_point_of_a_save_keeps_the_old_or_the_new_value() {
    let old = value(6000, 1);
    let new = value(MAX_VALUE - 100, 2);
    let fallbacks = value(500, 3);
    let mut cut = 0;
    let mut completed = false;
    let mut outcomes = (0, 0);
    while !completed {
        let mem = blank();
        block_on(async {
            let mut s = store(&mem, None);
            s.save(CONFIG, &old).await.unwrap();
            s.save(FALLBACKS, &fallbacks).await.unwrap();
        });
        let result = block_on(store(&mem, Some(cut)).save(CONFIG, &new));
        completed = result.is_ok();

        // The restart.
        let mut s = store(&mem, None);
        let loaded = block_on(s.load(CONFIG)).unwrap_or_else(|e| panic!("cut at op {cut}: {e}"));
        match loaded {
            Some(v) if v == new => outcomes.1 += 1,
            Some(v) if v == old && !completed => outcomes.0 += 1,
            other => panic!(
                "cut at op {cut} (save {result:?}): read {:?} bytes, neither old nor new",
                other.map(|v| v.len())
            ),
        }
        assert_eq!(
            block_on(s.load(FALLBACKS)),
            Ok(Some(fallbacks.clone())),
            "cut at op {cut}"
        );
        // And it keeps working.
        let next = value(3000, 4);
        block_on(s.save(CONFIG, &next))
            .unwrap_or_else(|e| panic!("save after cut at op {cut}: {e}"));
        assert_eq!(block_on(s.load(CONFIG)), Ok(Some(next)));
        cut += 1;
        assert!(cut < 10_000, "the save never completed");
    }
    eprintln!(
        "{cut} power cuts: {} kept the old value, {} the new",
        outcomes.0, outcomes.1
    );
    // Both outcomes happen: cuts before the header switch keep the old value, later ones the new.
    assert!(
        outcomes.0 > 10 && outcomes.1 > 0,
        "{outcomes:?} over {cut} cuts"
    );
}
