//! Decoded segment data kept in memory under one budget: each segment's
//! key columns (what point lookups search) and its decoded blocks (what
//! short range scans read). Raw file bytes are not here: segment files are
//! mapped, so the OS page cache holds them (see `io.rs`).
//!
//! Eviction is CLOCK (second chance): a hit only sets the entry's reference
//! bit under a shared lock, so concurrent lookups never serialise on
//! bookkeeping; making room sweeps a ring of entries, clearing bits and
//! evicting the first entry not used since the last sweep. Blocks leave
//! first; key columns only make room for other key columns.
//!
//! Loading happens outside the lock, so a slow read never blocks other
//! lookups; two threads may load the same entry at once, and the second
//! insert is dropped.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::Result;

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    /// The key, timestamp and tombstone columns of a segment.
    Keys(u64),
    /// All columns of one block of a segment: (segment, row group, block
    /// within the group).
    Block(u64, usize, usize),
}

impl CacheKey {
    fn segment(&self) -> u64 {
        match self {
            CacheKey::Keys(id) | CacheKey::Block(id, _, _) => *id,
        }
    }

    fn is_keys(&self) -> bool {
        matches!(self, CacheKey::Keys(_))
    }
}

#[derive(Debug)]
pub(crate) struct Cache {
    budget: usize,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    /// Every key-column entry, in sweep order.
    keys_ring: VecDeque<CacheKey>,
    /// Every other entry, in sweep order.
    data_ring: VecDeque<CacheKey>,
    used: usize,
}

#[derive(Debug)]
struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    size: usize,
    /// Used since the sweep last passed it.
    referenced: AtomicBool,
}

impl Cache {
    /// A cache holding at most `budget` bytes.
    pub(crate) fn new(budget: usize) -> Cache {
        Cache {
            budget,
            inner: RwLock::new(Inner::default()),
        }
    }

    // Every critical section restores the invariants before it could
    // panic, so a poisoned lock still guards consistent maps.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
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
        let inner = self.read();
        let entry = inner.entries.get(&key)?;
        // Only store when clear: a hot entry's cache line stays shared.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        entry.value.clone().downcast::<T>().ok()
    }

    fn insert(&self, key: CacheKey, value: Arc<dyn Any + Send + Sync>, size: usize) {
        if size > self.budget {
            return;
        }
        // Evicted values are freed after the lock is released: freeing a
        // block's buffers under it would stall every other lookup.
        let mut evicted = Vec::new();
        let mut inner = self.write();
        if inner.entries.contains_key(&key) {
            return;
        }
        while inner.used + size > self.budget {
            match inner.victim(key.is_keys()) {
                Some(victim) => evicted.extend(inner.evict(victim)),
                // Blocks never push key columns out: not cached.
                None => return,
            }
        }
        inner.entries.insert(
            key,
            Entry {
                value,
                size,
                referenced: AtomicBool::new(false),
            },
        );
        inner.ring(key).push_back(key);
        inner.used += size;
        drop(inner);
        drop(evicted);
    }

    /// Drops every entry of segment `id` (when the segment is deleted).
    pub(crate) fn forget_segment(&self, id: u64) {
        let mut inner = self.write();
        let inner = &mut *inner;
        inner.keys_ring.retain(|k| k.segment() != id);
        inner.data_ring.retain(|k| k.segment() != id);
        let mut freed = 0;
        inner.entries.retain(|k, entry| {
            let keep = k.segment() != id;
            if !keep {
                freed += entry.size;
            }
            keep
        });
        inner.used -= freed;
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.read().used
    }
}

impl Inner {
    fn ring(&mut self, key: CacheKey) -> &mut VecDeque<CacheKey> {
        if key.is_keys() {
            &mut self.keys_ring
        } else {
            &mut self.data_ring
        }
    }

    /// The entry to evict to make room, taken off its ring: a block or page
    /// not used since the sweep last passed it, and only for key columns,
    /// else such key columns. Without its key columns a segment cannot
    /// find any row, and reloading them reads the whole segment, so churning
    /// data must not evict them.
    fn victim(&mut self, for_keys: bool) -> Option<CacheKey> {
        let data = Self::sweep(&mut self.data_ring, &self.entries);
        match data {
            Some(key) => Some(key),
            None if for_keys => Self::sweep(&mut self.keys_ring, &self.entries),
            None => None,
        }
    }

    /// CLOCK over `ring`: clears reference bits until an entry without one
    /// comes round; two turns find one in any non-empty ring.
    fn sweep(
        ring: &mut VecDeque<CacheKey>,
        entries: &HashMap<CacheKey, Entry>,
    ) -> Option<CacheKey> {
        for _ in 0..2 * ring.len() {
            let key = ring.pop_front()?;
            let referenced = entries
                .get(&key)
                .is_some_and(|e| e.referenced.swap(false, Ordering::Relaxed));
            if !referenced {
                return Some(key);
            }
            ring.push_back(key);
        }
        None
    }

    /// Removes `key`, already off its ring; gives its value to free.
    fn evict(&mut self, key: CacheKey) -> Option<Arc<dyn Any + Send + Sync>> {
        let entry = self.entries.remove(&key)?;
        self.used -= entry.size;
        Some(entry.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_leaves_first_by_second_chance_and_never_pushes_key_columns_out() {
        let cache = Cache::new(100);
        let loads = std::cell::Cell::new(0);
        let load = |v: u32, size: usize| {
            let loads = &loads;
            move || {
                loads.set(loads.get() + 1);
                Ok((v, size))
            }
        };
        let get = |key, v, size| *cache.get_or_load(key, load(v, size)).unwrap();
        let (k1, k2, k3) = (CacheKey::Keys(1), CacheKey::Keys(2), CacheKey::Keys(3));
        let block = |b| CacheKey::Block(1, 0, b);
        get(k1, 1, 40);
        get(block(0), 10, 30);
        get(block(1), 11, 30);
        // A hit gives block 0 a second chance: block 1 leaves for block 2,
        // though the key columns were loaded first.
        assert_eq!(get(block(0), 0, 0), 10);
        get(block(2), 12, 30);
        assert_eq!(cache.used(), 100);
        assert_eq!(loads.get(), 4);
        assert_eq!(get(k1, 0, 0), 1);
        assert_eq!(get(block(0), 0, 0), 10);
        assert_eq!(loads.get(), 4, "key columns and block 0 stayed");
        get(block(1), 11, 30);
        assert_eq!(loads.get(), 5, "block 1 was evicted");

        // Key columns evict data first, then key columns without a second
        // chance: k1 was used since it was loaded, k2 was not.
        get(k2, 2, 40);
        assert_eq!(cache.used(), 80, "both blocks made room");
        get(k3, 3, 40);
        assert_eq!(get(k1, 0, 0), 1, "k1 stayed");
        assert_eq!(loads.get(), 7);
        assert_eq!(get(k2, 22, 40), 22, "k2 was evicted");
        assert_eq!(loads.get(), 8);
        assert_eq!(cache.used(), 80);

        // Data that would need key columns evicted is not kept.
        get(CacheKey::Block(2, 0, 0), 20, 30);
        get(CacheKey::Block(2, 0, 0), 20, 30);
        assert_eq!(loads.get(), 10);
        assert_eq!(cache.used(), 80);

        // Too large to cache: returned, not kept.
        assert_eq!(get(CacheKey::Keys(9), 9, 500), 9);
        assert!(cache.used() <= 100);
        for id in 1..=3 {
            cache.forget_segment(id);
        }
        assert_eq!(cache.used(), 0);
        let inner = cache.read();
        assert!(
            inner.entries.is_empty() && inner.keys_ring.is_empty() && inner.data_ring.is_empty()
        );
    }
}
