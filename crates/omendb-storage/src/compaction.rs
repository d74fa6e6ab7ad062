//! Compaction: merges a run of a table's adjacent segments into one.
//!
//! ```text
//!  segments (newest first)   [s1][s2][s3][s4][ big ]
//!  pick: the newest >= 4, plus older ones no bigger than the merge so far
//!  merge: versions by (key, newest first); keep those some snapshot needs
//!  write: one new segment (learned index rebuilt); install in its place
//! ```
//!
//! A version is kept if it is newer than the oldest live snapshot (the
//! horizon), or if it is the newest at or below the horizon (what that
//! snapshot sees). Below that, versions are gone for good. A tombstone
//! that is what the horizon sees is dropped too when the run reaches the
//! table's oldest segment: nothing beneath it is left to hide. Compaction
//! runs on the background worker, off the commit path, and swaps segments
//! into the view atomically; readers holding the old ones keep them.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use bytes::Bytes;

use crate::catalog::TableDef;
use crate::error::Result;
use crate::io::FileSystem;
use crate::segment::{
    DELETED, KEY, RowCursor, SYSTEM_COLUMNS, Segment, SegmentMeta, SegmentWriter, TS,
};
use crate::types::{Value, value_at};

/// A table with this many segments is due for compaction.
pub(crate) const TRIGGER: usize = 4;

/// The run of segments to merge: positions `start..end` in the newest-first
/// list, or `None` if the table does not need it.
pub(crate) fn pick(segments: &[Arc<Segment>]) -> Option<std::ops::Range<usize>> {
    if segments.len() < TRIGGER {
        return None;
    }
    let mut end = TRIGGER;
    let mut rows: u64 = segments[..end].iter().map(|s| s.meta.rows).sum();
    while end < segments.len() && segments[end].meta.rows <= rows {
        rows += segments[end].meta.rows;
        end += 1;
    }
    Some(0..end)
}

/// Where a cursor stands in merge order: by key, then newest first.
fn head(cursor: &RowCursor) -> Option<(&[u8], std::cmp::Reverse<u64>)> {
    cursor
        .key()
        .zip(cursor.ts())
        .map(|(key, ts)| (key, std::cmp::Reverse(ts)))
}

/// Merges `run` (newest first, adjacent) of `def`'s segments into `writer`.
/// `horizon` is the oldest live snapshot; `bottom` says the run includes
/// the table's oldest segment.
pub(crate) fn merge(
    def: &Arc<TableDef>,
    run: &[Arc<Segment>],
    horizon: u64,
    bottom: bool,
    mut writer: SegmentWriter,
    fs: &dyn FileSystem,
) -> Result<Option<SegmentMeta>> {
    let columns: Vec<_> = def.columns.iter().map(|c| c.id).collect();
    let mut cursors = Vec::with_capacity(run.len());
    for segment in run {
        let all = (&std::ops::Bound::Unbounded, &std::ops::Bound::Unbounded);
        if let Some(batches) = segment.scan(def, &columns, all, &|_, _| false)? {
            cursors.push(RowCursor::new(batches));
        }
    }
    let mut current: Option<Bytes> = None;
    let mut seen_below_horizon = false;
    loop {
        // The next version: smallest key, then newest (higher timestamp).
        let mut next: Option<usize> = None;
        for i in 0..cursors.len() {
            if !cursors[i].valid()? {
                continue;
            }

            let better = match (next, head(&cursors[i])) {
                (None, Some(_)) => true,
                (Some(j), Some(mine)) => head(&cursors[j]).is_none_or(|best| mine < best),
                _ => false,
            };
            if better {
                next = Some(i);
            }
        }
        let Some(i) = next else {
            break;
        };
        let cursor = &mut cursors[i];
        let (Some(batch), row) = (cursor.batch().cloned(), cursor.row()) else {
            break;
        };
        cursor.advance();
        let key = batch.column(KEY).as_binary::<i32>().value(row);
        let ts = batch.column(TS).as_primitive::<UInt64Type>().value(row);
        let deleted = batch.column(DELETED).as_boolean().value(row);
        if current.as_deref() != Some(key) {
            current = Some(Bytes::copy_from_slice(key));
            seen_below_horizon = false;
        }
        if ts <= horizon {
            if seen_below_horizon {
                continue;
            }
            seen_below_horizon = true;
            if deleted && bottom {
                continue;
            }
        }
        let values = if deleted {
            None
        } else {
            let values = def
                .columns
                .iter()
                .enumerate()
                .map(|(c, column)| {
                    value_at(
                        batch.column(SYSTEM_COLUMNS + c).as_ref(),
                        row,
                        &column.data_type,
                    )
                })
                .collect::<Result<Vec<Value>>>()?;
            Some(values)
        };
        writer.push(Bytes::copy_from_slice(key), ts, values.as_deref())?;
    }
    if writer.is_empty() {
        // Everything was garbage: no segment replaces the run.
        writer.discard(fs)?;
        return Ok(None);
    }
    writer.finish().map(Some)
}
