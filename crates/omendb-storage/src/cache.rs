//! Decoded segment data kept in memory under one budget: each segment's
//! key columns (what point lookups search) and decoded blocks (what point
//! lookups return and short range scans read). Least recently used blocks
//! leave first; key columns only make room for other key columns.
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
    /// All columns of one block of a segment: (segment, row group, block
    /// within the group).
    Block(u64, usize, usize),
    /// One page of a segment's row file: (segment, page number).
    RowPage(u64, u64),
}

impl CacheKey {
    fn segment(&self) -> u64 {
        match self {
            CacheKey::Keys(id) | CacheKey::Block(id, _, _) | CacheKey::RowPage(id, _) => *id,
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
        let for_keys = matches!(key, CacheKey::Keys(_));
        while inner.used + size > self.budget {
            match inner.victim(for_keys) {
                Some(victim) => inner.remove(victim),
                // Blocks never push key columns out: not cached.
                None => return,
            }
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
    /// The entry to evict to make room: the least recently used block, and
    /// only for key columns, else the least recently used key columns.
    /// Without its key columns a segment cannot find any row, and reloading
    /// them reads the whole segment, so churning blocks must not evict them.
    fn victim(&self, for_keys: bool) -> Option<CacheKey> {
        let block = self
            .by_use
            .values()
            .find(|k| !matches!(k, CacheKey::Keys(..)));
        match block {
            Some(&block) => Some(block),
            None if for_keys => self.by_use.values().next().copied(),
            None => None,
        }
    }

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
    fn blocks_leave_first_and_never_push_key_columns_out() {
        let cache = Cache::new(100);
        let loads = std::cell::Cell::new(0);
        let load = |v: u32, size: usize| {
            let loads = &loads;
            move || {
                loads.set(loads.get() + 1);
                Ok((v, size))
            }
        };
        cache.get_or_load(CacheKey::Keys(1), load(1, 40)).unwrap();
        cache
            .get_or_load(CacheKey::Block(1, 0, 0), load(10, 30))
            .unwrap();
        cache
            .get_or_load(CacheKey::Block(1, 0, 1), load(11, 30))
            .unwrap();
        // Touch block 0: block 1 is now the least recently used block,
        // though the key columns are older still.
        cache
            .get_or_load(CacheKey::Block(1, 0, 0), load(0, 0))
            .unwrap();
        cache
            .get_or_load(CacheKey::Block(1, 0, 2), load(12, 30))
            .unwrap();
        assert_eq!(cache.used(), 100);
        assert_eq!(loads.get(), 4);
        assert_eq!(
            *cache.get_or_load(CacheKey::Keys(1), load(0, 0)).unwrap(),
            1
        );
        assert_eq!(
            *cache
                .get_or_load(CacheKey::Block(1, 0, 0), load(0, 0))
                .unwrap(),
            10
        );
        assert_eq!(loads.get(), 4, "key columns and block 0 stayed");
        cache
            .get_or_load(CacheKey::Block(1, 0, 1), load(11, 30))
            .unwrap();
        assert_eq!(loads.get(), 5, "block 1 was evicted");

        // Key columns evict blocks first, then older key columns.
        cache.get_or_load(CacheKey::Keys(2), load(2, 40)).unwrap();
        cache.get_or_load(CacheKey::Keys(3), load(3, 40)).unwrap();
        assert_eq!(cache.used(), 80);
        assert_eq!(
            *cache.get_or_load(CacheKey::Keys(1), load(21, 40)).unwrap(),
            21
        );
        assert_eq!(loads.get(), 8, "key columns 1 were evicted last");

        // A block that would need key columns evicted is not kept.
        cache
            .get_or_load(CacheKey::Block(2, 0, 0), load(20, 30))
            .unwrap();
        cache
            .get_or_load(CacheKey::Block(2, 0, 0), load(20, 30))
            .unwrap();
        assert_eq!(loads.get(), 10);
        assert_eq!(cache.used(), 80);

        // Too large to cache: returned, not kept.
        assert_eq!(
            *cache.get_or_load(CacheKey::Keys(9), load(9, 500)).unwrap(),
            9
        );
        assert!(cache.used() <= 100);
        for id in 1..=3 {
            cache.forget_segment(id);
        }
        assert_eq!(cache.used(), 0);
    }
}
