//! Commit timestamps and what is visible.
//!
//! Timestamps are handed out in commit order under the engine's commit
//! lock, but commits finish (become durable, or fail) in any order. The
//! clock makes them visible in timestamp order: the visible timestamp is
//! the highest `t` such that every commit at or below `t` has finished. A
//! snapshot taken at the visible timestamp therefore never sees a commit
//! while missing an earlier one.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

#[derive(Debug)]
pub(crate) struct Clock {
    visible: AtomicU64,
    finished: Mutex<BTreeSet<u64>>,
    advanced: Condvar,
}

impl Clock {
    /// A clock whose commits up to `visible` are all finished.
    pub(crate) fn new(visible: u64) -> Clock {
        Clock {
            visible: AtomicU64::new(visible),
            finished: Mutex::new(BTreeSet::new()),
            advanced: Condvar::new(),
        }
    }

    /// The timestamp new snapshots read at.
    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Records that the commit at `ts` is durable or has failed (and its
    /// versions are gone), and advances visibility as far as it can.
    pub(crate) fn finish(&self, ts: u64) {
        // The set is only inserted into and trimmed; a panic elsewhere while
        // holding the lock cannot leave it inconsistent.
        let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        finished.insert(ts);
        let mut visible = self.visible.load(Ordering::Acquire);
        while finished.remove(&(visible + 1)) {
            visible += 1;
        }
        self.visible.store(visible, Ordering::Release);
        drop(finished);
        self.advanced.notify_all();
    }

    /// Waits until the commit at `ts` is visible.
    pub(crate) fn wait_visible(&self, ts: u64) {
        let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        while self.visible.load(Ordering::Acquire) < ts {
            finished = self
                .advanced
                .wait(finished)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_waits_for_every_earlier_commit() {
        let clock = Clock::new(10);
        clock.finish(12);
        assert_eq!(clock.visible(), 10, "11 is still running");
        clock.finish(11);
        assert_eq!(clock.visible(), 12);
        clock.finish(13);
        clock.wait_visible(13);
        assert_eq!(clock.visible(), 13);
    }
}
