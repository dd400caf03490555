//! The simulated camera + digitizer of boards without a camera: frames injected per sequence (console `frame`)
//! are queued; a capture takes the next queued reading of every sequence, repeats the last one when none is
//! queued, and reads every ROI as `N` when nothing was ever injected.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::console::Value10;

/// What the digitizer read for one sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub digits: Vec<Value10>,
    pub analogs: Vec<Value10>,
}

/// One captured image, evaluated: per-sequence readings, or the alignment failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Aligned(BTreeMap<String, Reading>),
    AlignmentFailed,
}

#[derive(Debug, Clone, PartialEq)]
enum Queued {
    Reading(Reading),
    AlignFail,
}

/// The queues of injected frames.
#[derive(Debug, Clone, Default)]
pub struct SimCamera {
    queues: BTreeMap<String, VecDeque<Queued>>,
    last: BTreeMap<String, Reading>,
}

impl SimCamera {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues the next reading of a sequence.
    pub fn push(&mut self, sequence: &str, reading: Reading) {
        self.queues
            .entry(sequence.into())
            .or_default()
            .push_back(Queued::Reading(reading));
    }

    /// Queues an alignment failure: the capture that takes it fails as a whole (alignment is per image).
    pub fn push_align_fail(&mut self, sequence: &str) {
        self.queues
            .entry(sequence.into())
            .or_default()
            .push_back(Queued::AlignFail);
    }

    /// Number of queued entries of a sequence.
    pub fn queued(&self, sequence: &str) -> usize {
        self.queues.get(sequence).map_or(0, VecDeque::len)
    }

    /// Takes one frame for these sequences (name, digit ROI count, analog ROI count).
    pub fn capture(&mut self, sequences: &[(String, usize, usize)]) -> Frame {
        let mut failed = false;
        let mut readings = BTreeMap::new();
        for (name, digits, analogs) in sequences {
            match self.queues.get_mut(name).and_then(VecDeque::pop_front) {
                Some(Queued::AlignFail) => failed = true,
                Some(Queued::Reading(r)) => {
                    self.last.insert(name.clone(), r);
                }
                None => {}
            }
            let reading = self.last.get(name).cloned().unwrap_or_else(|| Reading {
                digits: alloc::vec![None; *digits],
                analogs: alloc::vec![None; *analogs],
            });
            readings.insert(name.clone(), reading);
        }
        if failed {
            Frame::AlignmentFailed
        } else {
            Frame::Aligned(readings)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn seqs() -> Vec<(String, usize, usize)> {
        alloc::vec![("main".to_string(), 2, 1)]
    }

    #[test]
    fn nothing_injected_reads_n() {
        let mut cam = SimCamera::new();
        let Frame::Aligned(r) = cam.capture(&seqs()) else {
            panic!("aligned expected")
        };
        assert_eq!(
            r["main"],
            Reading {
                digits: alloc::vec![None, None],
                analogs: alloc::vec![None]
            }
        );
    }

    #[test]
    fn queue_then_repeat_last() {
        let mut cam = SimCamera::new();
        let a = Reading {
            digits: alloc::vec![Some(1.0)],
            analogs: alloc::vec![],
        };
        let b = Reading {
            digits: alloc::vec![Some(2.0)],
            analogs: alloc::vec![],
        };
        cam.push("main", a.clone());
        cam.push("main", b.clone());
        assert_eq!(cam.queued("main"), 2);
        assert_eq!(
            cam.capture(&seqs()),
            Frame::Aligned([("main".to_string(), a)].into_iter().collect())
        );
        assert_eq!(
            cam.capture(&seqs()),
            Frame::Aligned([("main".to_string(), b.clone())].into_iter().collect())
        );
        assert_eq!(
            cam.capture(&seqs()),
            Frame::Aligned([("main".to_string(), b)].into_iter().collect())
        );
    }

    #[test]
    fn align_fail_is_one_shot() {
        let mut cam = SimCamera::new();
        cam.push_align_fail("main");
        assert_eq!(cam.capture(&seqs()), Frame::AlignmentFailed);
        assert!(matches!(cam.capture(&seqs()), Frame::Aligned(_)));
    }
}
