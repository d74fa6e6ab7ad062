//! Decoded segment data kept in memory under one budget: each segment's
//! key columns (what point lookups search) and decoded row groups (what
//! point lookups return). Least recently used entries leave first.
//!
//! Loading happens outside the lock, so a slow read never blocks other
//! lookups; two threads may load the same entry at once, and the second
//! insert simply replaces the first.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    /// The key, timestamp and tombstone columns of a segment.
    Keys(u64),
    /// All columns of one row group of a segment.
    RowGroup(u64, usize),
}

impl CacheKey {
    fn segment(&self) -> u64 {
        match self {
            CacheKey::Keys(id) | CacheKey::RowGroup(id, _) => *id,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Cache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    /// Entries by last use, oldest first.
    by_use: BTreeMap<u64, CacheKey>,
    used: usize,
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    size: usize,
    used_at: u64,
}

impl Cache {
    /// A cache holding at most `budget` bytes.
    pub(crate) fn new(budget: usize) -> Cache {
        Cache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section restores the invariants before it could
        // panic, so a poisoned lock still guards consistent maps.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry under `key`, loading it with `load` (value and its size in
    /// bytes) when absent.
    pub(crate) fn get_or_load<T: Any + Send + Sync>(
        &self,
        key: CacheKey,
        load: impl FnOnce() -> Result<(T, usize)>,
    ) -> Result<Arc<T>> {
        if let Some(value) = self.get(key) {
            return Ok(value);
        }
        let (value, size) = load()?;
        let value = Arc::new(value);
        self.insert(key, value.clone(), size);
        Ok(value)
    }

    fn get<T: Any + Send + Sync>(&self, key: CacheKey) -> Option<Arc<T>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(&key)?;
        let old = std::mem::replace(&mut entry.used_at, now);
        let value = entry.value.clone();
        inner.by_use.remove(&old);
        inner.by_use.insert(now, key);
        value.downcast::<T>().ok()
    }

    fn insert(&self, key: CacheKey, value: Arc<dyn Any + Send + Sync>, size: usize) {
        if size > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.remove(key);
        while inner.used + size > self.budget {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            inner.remove(oldest);
        }
        inner.clock += 1;
        let used_at = inner.clock;
        inner.by_use.insert(used_at, key);
        inner.entries.insert(
            key,
            Entry {
                value,
                size,
                used_at,
            },
        );
        inner.used += size;
    }

    /// Drops every entry of segment `id` (when the segment is deleted).
    pub(crate) fn forget_segment(&self, id: u64) {
        let mut inner = self.lock();
        let keys: Vec<CacheKey> = inner
            .entries
            .keys()
            .filter(|k| k.segment() == id)
            .copied()
            .collect();
        for key in keys {
            inner.remove(key);
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.lock().used
    }
}

impl Inner {
    fn remove(&mut self, key: CacheKey) {
        if let Some(entry) = self.entries.remove(&key) {
            self.by_use.remove(&entry.used_at);
            self.used -= entry.size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_entries_leave_first_and_budget_holds() {
        let cache = Cache::new(100);
        let load = |v: u32, size: usize| move || Ok((v, size));
        cache.get_or_load(CacheKey::Keys(1), load(1, 40)).unwrap();
        cache.get_or_load(CacheKey::Keys(2), load(2, 40)).unwrap();
        // Touch 1, so 2 is the oldest.
        assert_eq!(
            *cache.get_or_load(CacheKey::Keys(1), load(0, 0)).unwrap(),
            1
        );
        cache
            .get_or_load(CacheKey::RowGroup(3, 0), load(3, 40))
            .unwrap();
        assert_eq!(cache.used(), 80);
        assert_eq!(
            *cache.get_or_load(CacheKey::Keys(2), load(22, 40)).unwrap(),
            22,
            "2 was evicted and reloaded"
        );
        // Too large to cache: returned, not kept.
        assert_eq!(
            *cache.get_or_load(CacheKey::Keys(9), load(9, 500)).unwrap(),
            9
        );
        assert!(cache.used() <= 100);
        cache.forget_segment(3);
        cache.forget_segment(2);
        cache.forget_segment(1);
        assert_eq!(cache.used(), 0);
    }
}
