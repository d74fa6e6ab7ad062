//! Immutable segments: one table's versions, sorted by key, as a Parquet
//! file with the learned index in its footer, and the same versions
//! row-encoded in a row file for point reads. Layout and invariants:
//! `docs/design/segment-format.md`.
//!
//! ```text
//!  flush / compaction ── write_segment ──► segments/<id>.parquet (+ CRC-32C in the manifest)
//!                                          segments/<id>.rows    (+ CRC-32C in the footer)
//!  point get ── Segment::find: key columns from the cache, learned index, versions;
//!               the row's values from the row file (cached 4 KiB pages)
//!  scans     ── Segment::scan: the rows between the range's bounds, as cached
//!               blocks (short ranges) or projected row groups (long ones)
//! ```

mod key_space;
mod reader;
mod row_file;
mod writer;

use std::path::{Path, PathBuf};

use bytes::Bytes;

pub(crate) use reader::{RowCursor, Segment, SegmentBatches, Zone};
pub(crate) use writer::SegmentWriter;

use crate::catalog::{ColumnId, TableId};

/// Rows per Parquet row group.
pub(crate) const ROW_GROUP_ROWS: usize = 65_536;

/// Rows per block: the unit point reads and short range scans decode and
/// cache. Parquet pages hold at most a block, and row groups hold whole
/// blocks, so a block is one page per column. Small, so a short scan that
/// misses the cache decodes little beyond its rows (1,024 instead of 4,096
/// took the 10M-row hour aggregate from 25 to 46 queries/s, with the
/// cache freeing evicted blocks outside its lock; docs/PERFORMANCE.md).
pub(crate) const BLOCK_ROWS: usize = 1024;

/// Dictionary pages stop growing here (the column falls back to plain
/// encoding): reading any page of a column chunk decodes its dictionary.
pub(crate) const DICTIONARY_PAGE_BYTES: usize = 64 << 10;

/// Names of the system columns, which come first in every segment.
pub(crate) const KEY_COLUMN: &str = "_key";
pub(crate) const TS_COLUMN: &str = "_ts";
pub(crate) const DELETED_COLUMN: &str = "_deleted";
/// Root positions of the system columns.
pub(crate) const KEY: usize = 0;
pub(crate) const TS: usize = 1;
pub(crate) const DELETED: usize = 2;
pub(crate) const SYSTEM_COLUMNS: usize = 3;

/// The Parquet column name of a table column.
pub(crate) fn column_name(id: ColumnId) -> String {
    format!("c{id}")
}

/// What the manifest records of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    pub id: u64,
    pub table: TableId,
    /// Versions (rows) in the file.
    pub rows: u64,
    pub min_ts: u64,
    pub max_ts: u64,
    pub min_key: Bytes,
    pub max_key: Bytes,
    /// File length and its CRC-32C, checked when the segment is opened.
    pub bytes: u64,
    pub crc: u32,
}

/// The file of segment `id` in the segment directory `dir`.
pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.parquet"))
}

/// The id of the segment a file name belongs to (its Parquet file or its
/// row file), if it is one.
pub(crate) fn segment_id(name: &str) -> Option<u64> {
    let digits = name
        .strip_suffix(".parquet")
        .or_else(|| name.strip_suffix(".rows"))?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

#[cfg(test)]
mod tests;
