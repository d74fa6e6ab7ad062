//! Row locks: a transaction that overwrites or deletes a row holds that
//! row until it ends, and another transaction that wants to overwrite it
//! waits for the first to end, as in PostgreSQL. Waits form a graph
//! (each waiter waits for one holder); a wait that would close a cycle is
//! refused as a deadlock instead.
//!
//! The engine is synchronous and knows no runtime, so a wait is handed to
//! the caller as a [`LockWait`]: a future (for the SQL layer's tasks) that
//! can also be waited on by blocking a thread.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use foldhash::quality::RandomState;

use crate::catalog::TableId;

/// Identifies a transaction that has taken a lock.
type TxnId = u64;

/// The engine's lock table.
#[derive(Debug, Default)]
pub(crate) struct RowLocks {
    next_id: AtomicU64,
    state: Mutex<LockState>,
}

#[derive(Debug, Default)]
struct LockState {
    held: HashMap<(TableId, Bytes), Arc<Holder>, RandomState>,
    /// Waiter → the transaction it waits for.
    waits_for: HashMap<TxnId, TxnId>,
}

/// A transaction holding locks, as its waiters see it.
#[derive(Debug)]
struct Holder {
    id: TxnId,
    ended: Mutex<Ended>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Ended {
    done: bool,
    wakers: Vec<Waker>,
}

/// What [`RowLocks::lock`] found.
#[derive(Debug)]
pub(crate) enum Lock {
    /// The row is the transaction's now (or was already).
    Held,
    /// Another transaction holds the row: wait for it to end.
    Wait(LockWait),
    /// Waiting would close a cycle of waits.
    Deadlock,
}

/// The locks one transaction holds; dropping it (the transaction ends)
/// releases them and wakes their waiters.
#[derive(Debug)]
pub(crate) struct HeldLocks {
    locks: Arc<RowLocks>,
    me: Arc<Holder>,
    keys: Vec<(TableId, Bytes)>,
}

impl RowLocks {
    /// A new, empty lock set for one transaction.
    pub(crate) fn holder(self: &Arc<Self>) -> HeldLocks {
        HeldLocks {
            locks: self.clone(),
            me: Arc::new(Holder {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                ended: Mutex::default(),
                wake: Condvar::new(),
            }),
            keys: Vec::new(),
        }
    }

    /// Locks `key` of `table` for `mine`, unless another transaction holds it.
    pub(crate) fn lock(&self, mine: &mut HeldLocks, table: TableId, key: &Bytes) -> Lock {
        let mut state = lock(&self.state);
        let slot = (table, key.clone());
        let holder = match state.held.get(&slot) {
            Some(holder) if holder.id == mine.me.id => return Lock::Held,
            Some(holder) => holder.clone(),
            None => {
                state.held.insert(slot.clone(), mine.me.clone());
                mine.keys.push(slot);
                return Lock::Held;
            }
        };
        // Each waiter waits for one holder, so the waits from `holder` on
        // are a path; it leads back here exactly when waiting deadlocks.
        let mut next = holder.id;
        for _ in 0..=state.waits_for.len() {
            if next == mine.me.id {
                return Lock::Deadlock;
            }
            match state.waits_for.get(&next) {
                Some(&after) => next = after,
                None => break,
            }
        }
        state.waits_for.insert(mine.me.id, holder.id);
        Lock::Wait(LockWait {
            locks: mine.locks.clone(),
            waiter: mine.me.id,
            holder,
        })
    }

    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        lock(&self.state).held.len()
    }
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.locks.state);
            for slot in self.keys.drain(..) {
                if state.held.get(&slot).is_some_and(|h| h.id == self.me.id) {
                    state.held.remove(&slot);
                }
            }
        }
        let wakers = {
            let mut ended = lock(&self.me.ended);
            ended.done = true;
            std::mem::take(&mut ended.wakers)
        };
        self.me.wake.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }
}

/// A wait for the transaction holding a row to end: await it, or call
/// [`LockWait::wait_blocking`]. Dropping it gives the wait up.
#[derive(Debug)]
pub struct LockWait {
    locks: Arc<RowLocks>,
    waiter: TxnId,
    holder: Arc<Holder>,
}

impl LockWait {
    /// Blocks the thread until the holder ends.
    pub fn wait_blocking(self) {
        let mut ended = lock(&self.holder.ended);
        while !ended.done {
            ended = self
                .holder
                .wake
                .wait(ended)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Future for LockWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut ended = lock(&self.holder.ended);
        if ended.done {
            return Poll::Ready(());
        }
        if !ended.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            ended.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for LockWait {
    fn drop(&mut self) {
        let mut state = lock(&self.locks.state);
        if state.waits_for.get(&self.waiter) == Some(&self.holder.id) {
            state.waits_for.remove(&self.waiter);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its state whole before anything
    // that can panic, so a poisoned lock still guards valid state.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[test]
    fn a_second_writer_waits_until_the_holder_ends_and_then_locks() {
        let locks = Arc::new(RowLocks::default());
        let mut first = locks.holder();
        let mut second = locks.holder();
        assert!(matches!(locks.lock(&mut first, 1, &key("a")), Lock::Held));
        assert!(matches!(locks.lock(&mut first, 1, &key("a")), Lock::Held));
        // Another table's key of the same bytes is another row.
        assert!(matches!(locks.lock(&mut second, 2, &key("a")), Lock::Held));
        let Lock::Wait(wait) = locks.lock(&mut second, 1, &key("a")) else {
            panic!("the row is held by the first transaction");
        };
        let waiter = std::thread::spawn(move || wait.wait_blocking());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            !waiter.is_finished(),
            "the wait ended while the row was held"
        );
        drop(first);
        waiter.join().unwrap();
        assert!(matches!(locks.lock(&mut second, 1, &key("a")), Lock::Held));
        assert_eq!(locks.held(), 2);
        drop(second);
        assert_eq!(locks.held(), 0);
    }

    #[test]
    fn a_wait_that_closes_a_cycle_is_a_deadlock_and_a_given_up_wait_is_forgotten() {
        let locks = Arc::new(RowLocks::default());
        let (mut a, mut b, mut c) = (locks.holder(), locks.holder(), locks.holder());
        for (holder, row) in [(&mut a, "a"), (&mut b, "b"), (&mut c, "c")] {
            assert!(matches!(locks.lock(holder, 1, &key(row)), Lock::Held));
        }
        // a waits for b, b for c: c waiting for a closes the cycle.
        let Lock::Wait(a_waits) = locks.lock(&mut a, 1, &key("b")) else {
            panic!("b holds its row");
        };
        let Lock::Wait(_b_waits) = locks.lock(&mut b, 1, &key("c")) else {
            panic!("c holds its row");
        };
        assert!(matches!(locks.lock(&mut c, 1, &key("a")), Lock::Deadlock));
        // Once a stops waiting, c may wait for a.
        drop(a_waits);
        assert!(matches!(locks.lock(&mut c, 1, &key("a")), Lock::Wait(_)));
    }

    #[test]
    fn an_awaited_wait_completes_when_the_holder_ends() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let locks = Arc::new(RowLocks::default());
        let (mut first, mut second) = (locks.holder(), locks.holder());
        assert!(matches!(locks.lock(&mut first, 1, &key("a")), Lock::Held));
        let Lock::Wait(mut wait) = locks.lock(&mut second, 1, &key("a")) else {
            panic!("the row is held");
        };
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        drop(first);
        assert!(
            flag.0.load(Ordering::SeqCst),
            "ending the holder wakes its waiters"
        );
        assert!(Pin::new(&mut wait).poll(&mut cx).is_ready());
    }
}
