//! One waker for the whole firmware, whatever waker tokio hands in.
//!
//! embassy-sync's wait queues hold one waker per waiter and, when a poll brings a waker that does not `will_wake`
//! the stored one, wake the stored one (another task might be waiting). tokio's wakers for the same task can compare
//! unequal (their vtable is a generic's promoted constant, duplicated across codegen units), so every poll of a
//! channel woke the board's own task again: an idle virtual board spun at ~55% of a core. Inside [`Stable`] every
//! waker is one object with one vtable, so `will_wake` holds and a waker registered once stays registered.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

/// Forwards a wake to the waker of the latest poll.
#[derive(Default)]
struct Relay {
    target: Mutex<Option<Waker>>,
}

impl Relay {
    fn wake(&self) {
        let target = self.target.lock().ok().and_then(|t| t.clone());
        if let Some(waker) = target {
            waker.wake();
        }
    }
}

// One vtable, not a generic's: its address is the same wherever a waker is made or cloned.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` comes from `Arc::into_raw` of a `Relay` (see `Stable::poll`), still alive (this waker holds it).
    unsafe { Arc::increment_strong_count(data.cast::<Relay>()) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: as in `clone`; this consumes the waker's reference.
    let relay = unsafe { Arc::from_raw(data.cast::<Relay>()) };
    relay.wake();
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: as in `clone`; borrowed for the call.
    unsafe { &*data.cast::<Relay>() }.wake();
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: as in `clone`; this drops the waker's reference.
    drop(unsafe { Arc::from_raw(data.cast::<Relay>()) });
}

/// Polls `F` with one stable waker.
pub struct Stable<F> {
    inner: F,
    relay: Arc<Relay>,
    waker: Waker,
}

impl<F: Future> Stable<F> {
    pub fn new(inner: F) -> Stable<F> {
        let relay = Arc::new(Relay::default());
        let data = Arc::into_raw(relay.clone()).cast::<()>();
        // SAFETY: the vtable's functions treat `data` as the `Arc<Relay>` reference just made.
        let waker = unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) };
        Stable {
            inner,
            relay,
            waker,
        }
    }
}

impl<F: Future> Future for Stable<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of `inner`, never moved out; the other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if let Ok(mut target) = this.relay.target.lock() {
            if !target.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *target = Some(cx.waker().clone());
            }
        }
        let mut stable = Context::from_waker(&this.waker);
        // SAFETY: see above.
        unsafe { Pin::new_unchecked(&mut this.inner) }.poll(&mut stable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn every_waker_inside_is_the_same_and_wakes_the_outer_one() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let outer = Waker::from(count.clone());
        let mut seen: Vec<Waker> = Vec::new();
        {
            let mut fut = std::pin::pin!(Stable::new(std::future::poll_fn(|cx| {
                seen.push(cx.waker().clone());
                Poll::<()>::Pending
            })));
            let mut cx = Context::from_waker(&outer);
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        assert!(
            seen[0].will_wake(&seen[1]),
            "a stored waker must recognise the next poll's"
        );
        seen[0].wake_by_ref();
        seen.pop().unwrap().wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }
}
