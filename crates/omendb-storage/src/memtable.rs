//! The memtable: the row store for recent commits, with every version.
//!
//! One ordered map holds all tables: `(table, key, commit ts)` → row, or a
//! tombstone for a delete. Versions of a key sort newest first, so a read
//! at snapshot `s` seeks to `(table, key, s)` and takes the first entry of
//! that key. Versions are inserted at commit, before their WAL record is
//! durable; they stay invisible because readers only use snapshots at or
//! below the engine's visible timestamp, and they are removed again if the
//! record fails.
//!
//! Locks are held for one map operation or one bounded chunk of a scan,
//! never across I/O or while a reader consumes rows: readers do not block
//! writers for longer than a copy.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use crate::catalog::TableId;

/// Where a version sits: newest first within a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct VersionKey {
    table: TableId,
    key: Bytes,
    ts: Reverse<u64>,
}

/// One version of a row: `None` is a delete.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Version {
    pub key: Bytes,
    pub ts: u64,
    pub row: Option<Bytes>,
}

/// A write of a committing transaction.
#[derive(Clone, Debug)]
pub(crate) struct Write {
    pub table: TableId,
    pub key: Bytes,
    pub row: Option<Bytes>,
}

/// Approximate bytes a version costs beyond its key and row.
const VERSION_OVERHEAD: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct Memtable {
    map: RwLock<BTreeMap<VersionKey, Option<Bytes>>>,
    bytes: AtomicUsize,
}

impl Memtable {
    pub(crate) fn new() -> Memtable {
        Memtable::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<VersionKey, Option<Bytes>>> {
        // Map operations cannot panic half-way, so a poisoned lock guards a
        // consistent map.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<VersionKey, Option<Bytes>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the versions of a commit at `ts`.
    pub(crate) fn apply(&self, ts: u64, writes: &[Write]) {
        let mut added = 0;
        let mut map = self.write();
        for write in writes {
            added += write.key.len() + write.row.as_ref().map_or(0, Bytes::len) + VERSION_OVERHEAD;
            let key = VersionKey {
                table: write.table,
                key: write.key.clone(),
                ts: Reverse(ts),
            };
            map.insert(key, write.row.clone());
        }
        drop(map);
        self.bytes.fetch_add(added, Ordering::Relaxed);
    }

    /// Removes the versions a failed commit at `ts` added.
    pub(crate) fn revert(&self, ts: u64, writes: &[Write]) {
        let mut map = self.write();
        for write in writes {
            map.remove(&VersionKey {
                table: write.table,
                key: write.key.clone(),
                ts: Reverse(ts),
            });
        }
    }

    /// The newest version of `key` at or below `snapshot`.
    pub(crate) fn get(&self, table: TableId, key: &[u8], snapshot: u64) -> Option<Version> {
        let seek = VersionKey {
            table,
            key: Bytes::copy_from_slice(key),
            ts: Reverse(snapshot),
        };
        let map = self.read();
        let (found, row) = map.range(seek..).next()?;
        (found.table == table && found.key == key).then(|| Version {
            key: found.key.clone(),
            ts: found.ts.0,
            row: row.clone(),
        })
    }

    /// Whether some version of a key of `table` in `from..=to` has a
    /// commit timestamp for which `at` holds.
    pub(crate) fn any_version(
        &self,
        table: TableId,
        from: &[u8],
        to: &[u8],
        at: impl Fn(u64) -> bool,
    ) -> bool {
        let start = VersionKey {
            table,
            key: Bytes::copy_from_slice(from),
            ts: Reverse(u64::MAX),
        };
        let map = self.read();
        map.range(start..)
            .take_while(|(v, _)| v.table == table && v.key.as_ref() <= to)
            .any(|(v, _)| at(v.ts.0))
    }

    /// Up to `limit` keys of `table` in key order from `from` (and before
    /// `to`), each with its newest version at or below `snapshot`;
    /// tombstones included, since they hide older rows elsewhere.
    pub(crate) fn scan(
        &self,
        table: TableId,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        snapshot: u64,
        limit: usize,
    ) -> Vec<Version> {
        let start = match from {
            Bound::Included(key) => Bound::Included(VersionKey {
                table,
                key: Bytes::copy_from_slice(key),
                ts: Reverse(u64::MAX),
            }),
            // Past every version of `key`: its oldest possible version.
            Bound::Excluded(key) => Bound::Excluded(VersionKey {
                table,
                key: Bytes::copy_from_slice(key),
                ts: Reverse(0),
            }),
            Bound::Unbounded => Bound::Included(VersionKey {
                table,
                key: Bytes::new(),
                ts: Reverse(u64::MAX),
            }),
        };
        let map = self.read();
        let mut out: Vec<Version> = Vec::new();
        for (version, row) in map.range((start, Bound::Unbounded)) {
            if version.table != table || !below(&version.key, to) {
                break;
            }
            if version.ts.0 > snapshot || out.last().is_some_and(|last| last.key == version.key) {
                continue;
            }
            if out.len() == limit {
                break;
            }
            out.push(Version {
                key: version.key.clone(),
                ts: version.ts.0,
                row: row.clone(),
            });
        }
        out
    }

    /// Every version, in `(table, key, newest first)` order: what a flush
    /// writes out. Only for a frozen memtable, which no longer changes.
    pub(crate) fn versions(&self) -> Vec<(TableId, Version)> {
        let map = self.read();
        map.iter()
            .map(|(k, row)| {
                (
                    k.table,
                    Version {
                        key: k.key.clone(),
                        ts: k.ts.0,
                        row: row.clone(),
                    },
                )
            })
            .collect()
    }

    /// Approximate memory held by the versions.
    pub(crate) fn size_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

fn below(key: &[u8], to: Bound<&[u8]>) -> bool {
    match to {
        Bound::Included(end) => key <= end,
        Bound::Excluded(end) => key < end,
        Bound::Unbounded => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(table: TableId, key: &str, row: Option<&str>) -> Write {
        Write {
            table,
            key: Bytes::copy_from_slice(key.as_bytes()),
            row: row.map(|r| Bytes::copy_from_slice(r.as_bytes())),
        }
    }

    fn row_at(memtable: &Memtable, key: &str, snapshot: u64) -> Option<Option<String>> {
        memtable
            .get(1, key.as_bytes(), snapshot)
            .map(|v| v.row.map(|r| String::from_utf8(r.to_vec()).unwrap()))
    }

    #[test]
    fn reads_see_the_newest_version_at_their_snapshot() {
        let memtable = Memtable::new();
        memtable.apply(5, &[put(1, "a", Some("a5")), put(1, "b", Some("b5"))]);
        memtable.apply(
            8,
            &[put(1, "a", Some("a8")), put(2, "a", Some("other table"))],
        );
        memtable.apply(9, &[put(1, "b", None)]);
        assert_eq!(row_at(&memtable, "a", 4), None);
        assert_eq!(row_at(&memtable, "a", 5), Some(Some("a5".into())));
        assert_eq!(row_at(&memtable, "a", 100), Some(Some("a8".into())));
        assert_eq!(row_at(&memtable, "b", 8), Some(Some("b5".into())));
        assert_eq!(row_at(&memtable, "b", 9), Some(None), "deleted at 9");
        assert_eq!(memtable.get(1, b"b", u64::MAX).map(|v| v.ts), Some(9));
        memtable.revert(9, &[put(1, "b", None)]);
        assert_eq!(row_at(&memtable, "b", 9), Some(Some("b5".into())));
    }

    #[test]
    fn scans_give_one_version_per_key_in_order_within_bounds() {
        let memtable = Memtable::new();
        for (ts, key) in [(1, "c"), (2, "a"), (3, "b"), (4, "a"), (5, "d")] {
            memtable.apply(ts, &[put(1, key, Some(&format!("{key}{ts}")))]);
        }
        memtable.apply(6, &[put(0, "z", Some("x")), put(2, "a", Some("x"))]);
        let keys = |from, to, snapshot, limit| -> Vec<(String, u64)> {
            memtable
                .scan(1, from, to, snapshot, limit)
                .into_iter()
                .map(|v| (String::from_utf8(v.key.to_vec()).unwrap(), v.ts))
                .collect()
        };
        let all = keys(Bound::Unbounded, Bound::Unbounded, 10, 100);
        assert_eq!(
            all,
            [
                ("a".into(), 4),
                ("b".into(), 3),
                ("c".into(), 1),
                ("d".into(), 5)
            ]
        );
        let old = keys(Bound::Unbounded, Bound::Unbounded, 3, 100);
        assert_eq!(old, [("a".into(), 2), ("b".into(), 3), ("c".into(), 1)]);
        let bounded = keys(
            Bound::Excluded(&b"a"[..]),
            Bound::Included(&b"c"[..]),
            10,
            100,
        );
        assert_eq!(bounded, [("b".into(), 3), ("c".into(), 1)]);
        assert_eq!(keys(Bound::Unbounded, Bound::Unbounded, 10, 2).len(), 2);
    }
}
