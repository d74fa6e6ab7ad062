//! Scans: rows of one table in key order, merged from every place a row
//! can live, as one transaction sees them, returned as Arrow batches.
//!
//! ```text
//!  own writes ─┐
//!  memtables  ─┼─ merge by key: the first source that has a key decides,
//!  segments   ─┘   in this order, newest first; a tombstone hides the key
//!        │
//!        └─► projected columns: rows from writes and memtables decoded,
//!            rows from segment batches picked with `interleave`
//! ```
//!
//! When only segments hold rows in range and no two of them share a key
//! there, their batches pass straight through, cut to the range and
//! filtered to the visible versions, with no per-row merge. One segment
//! of single visible versions without tombstones, whose rows in range are
//! all inside the bounds, does not even decode the system columns.
//!
//! Memory stays bounded: memtables are read in chunks, segments a block or
//! a row group at a time, output in batches of [`ScanRequest::batch_rows`].
//!
//! Zone maps prune segment row groups that cannot match the request's
//! predicates, but only where no older data lies under the row group's key
//! range: skipping a newer version would unmask a stale older one.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, BooleanBufferBuilder, RecordBatch,
};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, UInt64Type};
use bytes::Bytes;

use crate::catalog::{ColumnDef, TableDef, TableId};
use crate::db::SegmentDrop;
use crate::error::{Result, StorageError};
use crate::index::learned::search::partition_by;
use crate::memtable::{Memtable, Version};
use crate::segment::{DELETED, KEY, RowCursor, SYSTEM_COLUMNS, Segment, SegmentBatches, TS, Zone};
use crate::txn::{PendingWrite, Row, Snapshot, decode_checked};
use crate::types::{ColumnBuilder, DataType, KeyCodec, Value, compare, value_at};

/// Byte bounds over encoded keys.
pub(crate) type ByteRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Keys scanned per chunk of a memtable.
const CHUNK: usize = 1024;
/// The fewest rows [`BatchScan::take_run`] takes at once; shorter runs go
/// key by key.
const MIN_RUN: usize = if cfg!(test) { 2 } else { 16 };

/// Name of the key column that [`ScanRequest::with_keys`] adds.
pub const KEY_COLUMN: &str = "_key";

/// A range of primary keys. Bounds may give only a prefix of the key
/// columns: `prefix([5])` over a `(device, ts)` key is every row of device 5.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRange {
    pub start: Bound<Vec<Value>>,
    pub end: Bound<Vec<Value>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Every key that starts with `prefix` (a whole key: just that key).
    pub fn prefix(prefix: Vec<Value>) -> KeyRange {
        KeyRange {
            start: Bound::Included(prefix.clone()),
            end: Bound::Included(prefix),
        }
    }

    /// The range as byte bounds over encoded keys; `None` when it is
    /// certainly empty.
    pub(crate) fn encode(&self, codec: &KeyCodec) -> Result<Option<ByteRange>> {
        let encode = |values: &Vec<Value>| -> Result<Vec<u8>> {
            let mut out = Vec::new();
            codec.encode_prefix(&values.iter().collect::<Vec<_>>(), &mut out)?;
            Ok(out)
        };
        // Keys extending a prefix sort after it, so bounds that must include
        // (or exclude) all of them use the prefix's successor.
        let start = match &self.start {
            Bound::Included(p) => Bound::Included(encode(p)?),
            Bound::Excluded(p) => match successor(encode(p)?) {
                Some(s) => Bound::Included(s),
                None => return Ok(None),
            },
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match &self.end {
            Bound::Included(p) => successor(encode(p)?).map_or(Bound::Unbounded, Bound::Excluded),
            Bound::Excluded(p) => Bound::Excluded(encode(p)?),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok((!is_empty(&start, &end)).then_some((start, end)))
    }
}

/// A comparison of a column with a constant, for zone-map pruning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `column op value`: rows for which it is false may be left out of a scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    pub column: String,
    pub op: CmpOp,
    pub value: Value,
}

/// What to scan.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanRequest {
    pub range: KeyRange,
    /// Columns to return, by name; `None` for all, in table order.
    pub columns: Option<Vec<String>>,
    /// Hints: rows failing them may be left out (the caller still filters).
    pub predicates: Vec<Predicate>,
    /// Rows per output batch.
    pub batch_rows: usize,
    /// Adds the encoded key of each row as a last binary column, `_key`.
    pub with_keys: bool,
    /// Hint: the caller reads at most this many rows, so segments are read
    /// block by block through the cache (as short ranges are) rather than
    /// streamed.
    pub limit: Option<usize>,
    /// The caller wants only a lower bound on the keys in range that may
    /// match the predicates (a skip scan looking for the next value of a
    /// key column): the predicates then prune row groups even where older
    /// segments hold keys under them, so a row whose newer version was
    /// pruned may come back.
    pub lower_bound_only: bool,
}

impl Default for ScanRequest {
    fn default() -> Self {
        ScanRequest {
            range: KeyRange::all(),
            columns: None,
            predicates: Vec::new(),
            batch_rows: 8192,
            with_keys: false,
            limit: None,
            lower_bound_only: false,
        }
    }
}

/// Whether no key lies between the bounds (`BTreeMap::range` would panic
/// on some of these).
fn is_empty(from: &Bound<Vec<u8>>, to: &Bound<Vec<u8>>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

/// The smallest byte string above every string starting with `prefix`.
fn successor(mut prefix: Vec<u8>) -> Option<Vec<u8>> {
    while let Some(last) = prefix.pop() {
        if last < u8::MAX {
            prefix.push(last + 1);
            return Some(prefix);
        }
    }
    None
}

fn before_end(key: &[u8], to: &Bound<Vec<u8>>) -> bool {
    match to {
        Bound::Included(end) => key <= end.as_slice(),
        Bound::Excluded(end) => key < end.as_slice(),
        Bound::Unbounded => true,
    }
}

fn after_start(key: &[u8], from: &Bound<Vec<u8>>) -> bool {
    match from {
        Bound::Included(start) => key >= start.as_slice(),
        Bound::Excluded(start) => key > start.as_slice(),
        Bound::Unbounded => true,
    }
}

fn as_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(b) => Bound::Included(b),
        Bound::Excluded(b) => Bound::Excluded(b),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Predicate {
    /// Whether some value in the zone might satisfy the predicate.
    fn may_match(&self, zone: &Zone) -> bool {
        if zone.all_null {
            return false;
        }
        let (Some(to_min), Some(to_max)) = (
            compare(&zone.min, &self.value),
            compare(&zone.max, &self.value),
        ) else {
            return true;
        };
        use std::cmp::Ordering::{Greater, Less};
        match self.op {
            CmpOp::Eq => to_min != Greater && to_max != Less,
            CmpOp::Lt => to_min == Less,
            CmpOp::Le => to_min != Greater,
            CmpOp::Gt => to_max == Greater,
            CmpOp::Ge => to_max != Less,
        }
    }
}

#[derive(Debug)]
struct MemtableCursor {
    memtable: Arc<Memtable>,
    table: TableId,
    snapshot: u64,
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
    buffer: VecDeque<Version>,
    exhausted: bool,
}

impl MemtableCursor {
    fn peek(&mut self) -> Option<&Version> {
        if self.buffer.is_empty() && !self.exhausted {
            let chunk = self.memtable.scan(
                self.table,
                as_ref(&self.from),
                as_ref(&self.to),
                self.snapshot,
                CHUNK,
            );
            self.exhausted = chunk.len() < CHUNK;
            if let Some(last) = chunk.last() {
                self.from = Bound::Excluded(last.key.to_vec());
            }
            self.buffer.extend(chunk);
        }
        self.buffer.front()
    }
}

/// Walks a segment's rows, stopping only on the visible version of a key:
/// rows come as `(key, newest first)`, so the first version at or below the
/// snapshot is the visible one and the rest of that key is skipped.
#[derive(Debug)]
struct SegmentCursor {
    rows: RowCursor,
    snapshot: u64,
}

impl SegmentCursor {
    /// Moves to the next visible version; false when the segment is done.
    fn settle(&mut self) -> Result<bool> {
        while self.rows.valid()? {
            if self.rows.ts().is_some_and(|ts| ts <= self.snapshot) {
                return Ok(true);
            }
            self.rows.advance();
        }
        Ok(false)
    }

    fn key(&self) -> Option<&[u8]> {
        self.rows.key()
    }

    fn deleted(&self) -> bool {
        self.rows.deleted()
    }

    /// Moves past every remaining version of `key`.
    fn skip(&mut self, key: &[u8]) -> Result<()> {
        while self.rows.valid()? && self.rows.key() == Some(key) {
            self.rows.advance();
        }
        Ok(())
    }
}

/// Where the deciding version of an output row lives.
enum Pick {
    Encoded(Bytes),
    /// Row `row` of batch `source` of the scan's [`Sources`], from segment
    /// cursor `cursor`.
    Segment {
        cursor: usize,
        source: usize,
        row: usize,
    },
}

/// The segment batches the rows of one output batch come from.
#[derive(Debug, Default)]
struct Sources {
    batches: Vec<RecordBatch>,
    /// (cursor, generation) of each batch.
    origins: Vec<(usize, u64)>,
}

impl Sources {
    /// The position of `cursor`'s current batch, added if new.
    fn position(&mut self, cursor: usize, rows: &RowCursor) -> Option<usize> {
        let origin = (cursor, rows.generation());
        if let Some(i) = self.origins.iter().position(|&o| o == origin) {
            return Some(i);
        }
        self.batches.push(rows.batch()?.clone());
        self.origins.push(origin);
        Some(self.batches.len() - 1)
    }

    fn clear(&mut self) {
        self.batches.clear();
        self.origins.clear();
    }
}

/// Rows of one table in key order as Arrow batches; see the module docs.
#[derive(Debug)]
pub struct BatchScan {
    def: Arc<TableDef>,
    /// Positions in the table's columns of the returned columns.
    projection: Vec<usize>,
    schema: SchemaRef,
    with_keys: bool,
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
    /// The transaction's own writes in range (key, row or `None` for a
    /// delete), copied so that the scan borrows nothing.
    own: std::iter::Peekable<std::vec::IntoIter<(Bytes, Option<Bytes>)>>,
    memtables: Vec<MemtableCursor>,
    segments: Vec<SegmentCursor>,
    /// Segments this transaction drops: their live rows read as deleted.
    hiding: Vec<SegmentCursor>,
    /// The id of each segment cursor's segment.
    segment_ids: Vec<u64>,
    batch_rows: usize,
    done: bool,
    /// Batches the rows of the output batch being built come from.
    sources: Sources,
    /// Set when a single segment holds every row of the scan.
    direct: Option<DirectScan>,
    /// Whether the scan has looked for a single source yet.
    direct_checked: bool,
}

/// A scan whose rows all come from segments that share no key: their
/// batches, in key order, are filtered down to the visible versions, with
/// no per-row merge.
#[derive(Debug)]
struct DirectScan {
    /// Batches loaded ahead, then those still to read; each with whether
    /// all its rows are visible versions ([`SegmentBatches::all_visible_at`]).
    queue: VecDeque<(RecordBatch, bool)>,
    rest: Option<(SegmentBatches, bool)>,
    /// The rest's batches hold only the output's table columns: every row
    /// is in range and visible ([`SegmentBatches::without_system_columns`]).
    table_only: bool,
    visibility: Visibility,
    /// Output rows beyond the last returned batch.
    pending: Option<RecordBatch>,
}

fn filter(batch: &RecordBatch, keep: &BooleanArray) -> Result<RecordBatch> {
    arrow::compute::filter_record_batch(batch, keep)
        .map_err(|e| StorageError::internal(format!("filtering a scan batch: {e}")))
}

/// The rows of a segment batch between `from` and `to` that are not
/// tombstones, when every row is the only and a visible version of its
/// key: the bounds cut a slice, and only tombstones need a filter.
fn live_in_range(
    batch: &RecordBatch,
    from: &Bound<Vec<u8>>,
    to: &Bound<Vec<u8>>,
) -> Result<RecordBatch> {
    let keys = batch.column(KEY).as_binary::<i32>();
    let start = partition_by(0..keys.len(), |i| !after_start(keys.value(i), from));
    let end = partition_by(0..keys.len(), |i| before_end(keys.value(i), to)).max(start);
    let batch = batch.slice(start, end - start);
    let deleted = batch.column(DELETED).as_boolean();
    if deleted.true_count() == 0 {
        return Ok(batch);
    }
    let live = arrow::compute::not(deleted)
        .map_err(|e| StorageError::internal(format!("filtering a scan batch: {e}")))?;
    filter(&batch, &live)
}

/// Picks the visible versions out of consecutive segment batches.
#[derive(Debug)]
struct Visibility {
    snapshot: u64,
    /// The key whose visible version has been seen last: the next batch
    /// may still hold older versions of it.
    decided: Option<Vec<u8>>,
}

impl Visibility {
    /// Which rows of `batch` (sorted by key, newest version first) are
    /// visible versions of keys between `from` and `to`; `None` if all.
    fn mask(
        &mut self,
        batch: &RecordBatch,
        from: &Bound<Vec<u8>>,
        to: &Bound<Vec<u8>>,
    ) -> Option<BooleanBuffer> {
        let keys = batch.column(KEY).as_binary::<i32>();
        let ts = batch.column(TS).as_primitive::<UInt64Type>().values();
        let deleted = batch.column(DELETED).as_boolean();
        let mut keep = BooleanBufferBuilder::new(batch.num_rows());
        let mut all = true;
        let mut decided_row: Option<usize> = None;
        for (i, &version) in ts.iter().enumerate() {
            let key = keys.value(i);
            let seen = match decided_row {
                Some(row) => keys.value(row) == key,
                None => self.decided.as_deref() == Some(key),
            };
            let mut visible = false;
            if !seen && version <= self.snapshot {
                decided_row = Some(i);
                visible = !deleted.value(i) && after_start(key, from) && before_end(key, to);
            }
            all &= visible;
            keep.append(visible);
        }
        if let Some(row) = decided_row {
            self.decided = Some(keys.value(row).to_vec());
        }
        (!all).then(|| keep.finish())
    }
}

impl BatchScan {
    pub(crate) fn new(
        def: Arc<TableDef>,
        own: &std::collections::BTreeMap<(TableId, Bytes), PendingWrite>,
        snapshot: Snapshot,
        request: &ScanRequest,
        own_drops: &[SegmentDrop],
    ) -> Result<BatchScan> {
        let table = def.id;
        let projection = match &request.columns {
            None => (0..def.columns.len()).collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    def.column(name).and_then(|c| {
                        def.position(c.id)
                            .ok_or_else(|| StorageError::internal("column position"))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let mut fields: Vec<Field> = projection
            .iter()
            .map(|&i| {
                Field::new(
                    &def.columns[i].name,
                    def.columns[i].data_type.arrow_type(),
                    def.columns[i].nullable,
                )
            })
            .collect();
        if request.with_keys {
            fields.push(Field::new(KEY_COLUMN, ArrowType::Binary, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let bounds = request.range.encode(def.key_codec())?;
        let done = bounds.is_none();
        let (from, to) = bounds.unwrap_or((Bound::Unbounded, Bound::Unbounded));
        let own: Vec<(Bytes, Option<Bytes>)> = if done {
            Vec::new()
        } else {
            own.range((own_bound(table, &from, false), own_bound(table, &to, true)))
                .map(|((_, key), write)| (key.clone(), write.row.clone()))
                .collect()
        };
        let memtables = snapshot
            .view
            .memtables()
            .map(|memtable| MemtableCursor {
                memtable: memtable.clone(),
                table,
                snapshot: snapshot.ts,
                from: from.clone(),
                to: to.clone(),
                buffer: VecDeque::new(),
                exhausted: done,
            })
            .collect();
        let predicates = request
            .predicates
            .iter()
            .map(|p| {
                def.column(&p.column).map(|c| {
                    let in_key = def.primary_key.contains(&c.id);
                    (c.clone(), p.clone(), in_key)
                })
            })
            .collect::<Result<Vec<(ColumnDef, Predicate, bool)>>>()?;
        let columns: Vec<_> = projection.iter().map(|&i| def.columns[i].id).collect();
        let own_ids: Vec<u64> = own_drops.iter().map(|d| d.segment).collect();
        let overlapping: Vec<Arc<Segment>> = snapshot
            .view
            .live_segments(table, snapshot.ts, &own_ids)
            .filter(|s| {
                !done && before_end(&s.meta.min_key, &to) && after_start(&s.meta.max_key, &from)
            })
            .cloned()
            .collect();
        let mut segment_ids = Vec::with_capacity(overlapping.len());
        let mut segments = Vec::with_capacity(overlapping.len());
        for (i, segment) in overlapping.iter().enumerate() {
            let older = match request.lower_bound_only {
                true => &[],
                false => &overlapping[i + 1..],
            };
            let prune = |s: &Segment, group: usize| prunable(s, group, &predicates, older);
            if let Some(mut batches) = segment.scan(&def, &columns, (&from, &to), &prune)? {
                if let Some(limit) = request.limit {
                    batches.read_through_cache_for(limit);
                }
                segment_ids.push(segment.meta.id);
                segments.push(SegmentCursor {
                    rows: RowCursor::new(batches),
                    snapshot: snapshot.ts,
                });
            }
        }
        // Segments this transaction drops hide the rows they held live at
        // the drop, even from newer versions committed since.
        let mut hiding = Vec::new();
        for drop in own_drops.iter().filter(|d| d.table == table) {
            if let Some(batches) = drop.source.scan(&def, &[], (&from, &to), &|_, _| false)? {
                hiding.push(SegmentCursor {
                    rows: RowCursor::new(batches),
                    snapshot: drop.read_ts,
                });
            }
        }
        Ok(BatchScan {
            def,
            projection,
            schema,
            with_keys: request.with_keys,
            from,
            to,
            own: own.into_iter().peekable(),
            memtables,
            segments,
            hiding,
            segment_ids,
            batch_rows: request.batch_rows.max(1),
            done,
            sources: Sources::default(),
            direct: None,
            direct_checked: false,
        })
    }

    /// Rows the scan will read from segments, row groups skipped by zone
    /// maps left out (recent writes not counted): its cost, before it
    /// starts.
    pub fn segment_rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows.rows_left()).sum()
    }

    /// The schema of the returned batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The next key in range and where its deciding version lives (`None`
    /// for a deleted key), or `None` at the end.
    fn next_key(&mut self) -> Result<Option<(Bytes, Option<Pick>)>> {
        loop {
            let mut smallest: Option<Bytes> = self.own.peek().map(|(key, _)| key.clone());
            for cursor in &mut self.memtables {
                if let Some(version) = cursor.peek()
                    && smallest.as_ref().is_none_or(|s| version.key < *s)
                {
                    smallest = Some(version.key.clone());
                }
            }
            for cursor in self.segments.iter_mut().chain(&mut self.hiding) {
                if cursor.settle()?
                    && let Some(key) = cursor.key()
                    && smallest.as_deref().is_none_or(|s| key < s)
                {
                    smallest = Some(Bytes::copy_from_slice(key));
                }
            }
            let Some(key) = smallest.filter(|k| before_end(k, &self.to)) else {
                return Ok(None);
            };

            let mut decided: Option<Option<Pick>> = None;
            if self.own.peek().is_some_and(|(k, _)| *k == key)
                && let Some((_, row)) = self.own.next()
            {
                decided = Some(row.map(Pick::Encoded));
            }
            for cursor in &mut self.hiding {
                if cursor.key() == Some(key.as_ref()) {
                    if !cursor.deleted() {
                        decided.get_or_insert(None);
                    }
                    cursor.skip(&key)?;
                }
            }
            for cursor in &mut self.memtables {
                if cursor.peek().is_some_and(|v| v.key == key)
                    && let Some(version) = cursor.buffer.pop_front()
                {
                    decided.get_or_insert(version.row.map(Pick::Encoded));
                }
            }
            for (i, cursor) in self.segments.iter_mut().enumerate() {
                if cursor.key() != Some(key.as_ref()) {
                    continue;
                }
                if decided.is_none() {
                    let source = match cursor.deleted() {
                        false => self.sources.position(i, &cursor.rows),
                        true => None,
                    };
                    decided = Some(source.map(|source| Pick::Segment {
                        cursor: i,
                        source,
                        row: cursor.rows.row(),
                    }));
                }
                cursor.skip(&key)?;
            }
            // Segment scans may start a few keys early.
            if after_start(&key, &self.from) {
                return Ok(Some((key, decided.flatten())));
            }
        }
    }

    /// The next live key and, if a segment decided it, that segment's id;
    /// without decoding any value.
    pub(crate) fn next_live_key(&mut self) -> Result<Option<(Bytes, Option<u64>)>> {
        // No batch is built: the sources are not needed.
        self.sources.clear();
        while let Some((key, pick)) = self.next_key()? {
            match pick {
                Some(Pick::Encoded(_)) => return Ok(Some((key, None))),
                Some(Pick::Segment { cursor, .. }) => {
                    return Ok(Some((key, Some(self.segment_ids[cursor]))));
                }
                None => {}
            }
        }
        Ok(None)
    }

    /// Takes the direct path when segments hold every row in range and no
    /// two of them share a key: one segment, or short scans of several
    /// whose rows in range do not interleave (segments cut by time hold
    /// disjoint stretches of one device's readings).
    fn check_direct(&mut self) -> Result<()> {
        self.direct_checked = true;
        let Some(snapshot) = self.segments.first().map(|c| c.snapshot) else {
            return Ok(());
        };
        let segments_only = self.own.peek().is_none()
            && self.hiding.is_empty()
            && self.memtables.iter_mut().all(|m| m.peek().is_none());
        if !segments_only {
            return Ok(());
        }
        let mut scans = Vec::with_capacity(self.segments.len());
        for cursor in &self.segments {
            match cursor.rows.fresh_batches() {
                Some(batches) if self.segments.len() == 1 || batches.is_short() => {
                    scans.push(batches);
                }
                _ => return Ok(()),
            }
        }
        let mut table_only = false;
        let (queue, rest) = if scans.len() == 1 {
            let rest = scans.pop().map(|mut scan| {
                let visible = scan.all_visible_at(snapshot);
                let in_range = |scan: &SegmentBatches| {
                    scan.end_keys().is_some_and(|(first, last)| {
                        after_start(&first, &self.from) && before_end(&last, &self.to)
                    })
                };
                table_only =
                    visible && !self.with_keys && in_range(&scan) && scan.without_system_columns();
                (scan, visible)
            });
            (VecDeque::new(), rest)
        } else {
            // Short scans read cached blocks: load them all and order them.
            let mut runs = Vec::with_capacity(scans.len());
            for scan in scans {
                let visible = scan.all_visible_at(snapshot);
                let run: Vec<(RecordBatch, bool)> = scan
                    .filter(|b| b.as_ref().map_or(true, |b| b.num_rows() > 0))
                    .map(|b| b.map(|b| (b, visible)))
                    .collect::<Result<_>>()?;
                if !run.is_empty() {
                    runs.push(run);
                }
            }
            // Runs and their batches are non-empty (filtered above).
            let first_key = |run: &[(RecordBatch, bool)]| {
                run[0].0.column(KEY).as_binary::<i32>().value(0).to_vec()
            };
            let last_key = |run: &[(RecordBatch, bool)]| {
                let keys = run[run.len() - 1].0.column(KEY).as_binary::<i32>();
                keys.value(keys.len() - 1).to_vec()
            };
            runs.sort_by_cached_key(|run| first_key(run));
            let disjoint = runs
                .windows(2)
                .all(|pair| last_key(&pair[0]) < first_key(&pair[1]));
            if !disjoint {
                return Ok(());
            }
            (runs.into_iter().flatten().collect(), None)
        };
        self.segments.clear();
        self.direct = Some(DirectScan {
            queue,
            rest,
            table_only,
            visibility: Visibility {
                snapshot,
                decided: None,
            },
            pending: None,
        });
        Ok(())
    }

    /// The next output batch of a direct scan.
    fn next_direct_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(direct) = self.direct.as_mut() else {
            return Ok(None);
        };
        loop {
            if let Some(pending) = direct.pending.take() {
                if pending.num_rows() > self.batch_rows {
                    let rest = pending.num_rows() - self.batch_rows;
                    direct.pending = Some(pending.slice(self.batch_rows, rest));
                    return Ok(Some(pending.slice(0, self.batch_rows)));
                }
                return Ok(Some(pending));
            }
            let next = match direct.queue.pop_front() {
                Some(next) => Some(next),
                None => match direct.rest.as_mut() {
                    Some((scan, visible)) => scan.next().transpose()?.map(|b| (b, *visible)),
                    None => None,
                },
            };
            let Some((batch, all_visible)) = next else {
                return Ok(None);
            };
            if direct.table_only {
                if batch.num_rows() > 0 {
                    let (columns, rows) = (batch.columns().to_vec(), batch.num_rows());
                    direct.pending =
                        Some(output_batch(&self.schema, &self.def.name, columns, rows)?);
                }
                continue;
            }
            let batch = if all_visible {
                live_in_range(&batch, &self.from, &self.to)?
            } else {
                match direct.visibility.mask(&batch, &self.from, &self.to) {
                    None => batch,
                    Some(keep) => filter(&batch, &BooleanArray::new(keep, None))?,
                }
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let mut columns = batch.columns()[SYSTEM_COLUMNS..].to_vec();
            if self.with_keys {
                columns.push(batch.column(KEY).clone());
            }
            let rows = batch.num_rows();
            direct.pending = Some(output_batch(&self.schema, &self.def.name, columns, rows)?);
        }
    }

    /// Takes a run of rows from the segment cursor with the smallest key,
    /// up to the first key any other source (own writes, memtables, other
    /// segments) holds: those rows are decided within their segment (the
    /// first version at or below the snapshot of each key), with no
    /// key-by-key merge. Segments cut by time interleave in long runs (one
    /// device's readings of one time window), so a scan over them costs
    /// little more than over one segment. Returns whether it took rows.
    fn take_run(
        &mut self,
        picks: &mut Vec<(usize, usize)>,
        keys: &mut BinaryBuilder,
    ) -> Result<bool> {
        for cursor in self.segments.iter_mut().chain(&mut self.hiding) {
            cursor.settle()?;
        }
        let Some(first) = (0..self.segments.len())
            .filter(|&i| self.segments[i].key().is_some())
            .min_by(|&a, &b| self.segments[a].key().cmp(&self.segments[b].key()))
        else {
            return Ok(false);
        };
        let mut other: Option<Bytes> = self.own.peek().map(|(key, _)| key.clone());
        for cursor in &mut self.memtables {
            if let Some(version) = cursor.peek()
                && other.as_ref().is_none_or(|o| version.key < *o)
            {
                other = Some(version.key.clone());
            }
        }
        let others = self
            .segments
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != first);
        let mut bound: Option<&[u8]> = other.as_deref();
        for cursor in others.map(|(_, c)| c).chain(&self.hiding) {
            if let Some(key) = cursor.key()
                && bound.is_none_or(|b| key < b)
            {
                bound = Some(key);
            }
        }
        let cursor = &self.segments[first];
        let (Some(batch), Some(start_key)) = (cursor.rows.batch(), cursor.key()) else {
            return Ok(false);
        };
        if bound.is_some_and(|b| b <= start_key) || !after_start(start_key, &self.from) {
            return Ok(false);
        }
        let start = cursor.rows.row();
        let batch_keys = batch.column(KEY).as_binary::<i32>();
        let rows = batch.num_rows();
        // The last key's versions may go on in the next batch: the
        // key-by-key path takes it.
        let last = batch_keys.value(rows - 1);
        let mut end = partition_by(start..rows, |j| batch_keys.value(j) < last);
        if let Some(bound) = bound {
            end = partition_by(start..end, |j| batch_keys.value(j) < bound);
        }
        end = partition_by(start..end, |j| before_end(batch_keys.value(j), &self.to));
        if end - start < MIN_RUN {
            return Ok(false);
        }
        let Some(source) = self.sources.position(first, &cursor.rows) else {
            return Ok(false);
        };
        let ts = batch.column(TS).as_primitive::<UInt64Type>().values();
        let deleted = batch.column(DELETED).as_boolean();
        let mut decided: Option<&[u8]> = None;
        let mut stop = end;
        for row in start..end {
            let key = batch_keys.value(row);
            if decided == Some(key) {
                continue;
            }
            // A new key: the output batch may end before it.
            if picks.len() >= self.batch_rows {
                stop = row;
                break;
            }
            // Versions come newest first: the first at or below the
            // snapshot decides the key (a flush that raced a commit can
            // leave a newer one in a segment the snapshot sees).
            if ts[row] > cursor.snapshot {
                continue;
            }
            decided = Some(key);
            if !deleted.value(row) {
                picks.push((source + 1, row));
                if self.with_keys {
                    keys.append_value(key);
                }
            }
        }
        self.segments[first].rows.skip_to(stop);
        Ok(true)
    }

    /// Builds the next output batch.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if !self.direct_checked {
            self.check_direct()?;
        }
        if self.direct.is_some() {
            return self.next_direct_batch();
        }
        let mut builders: Vec<ColumnBuilder> = self
            .projection
            .iter()
            .map(|&i| ColumnBuilder::new(&self.def.columns[i].data_type, 64))
            .collect();
        let mut keys = BinaryBuilder::new();
        self.sources.clear();
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.batch_rows);
        let mut decoded = 0;
        while picks.len() < self.batch_rows {
            if self.take_run(&mut picks, &mut keys)? {
                continue;
            }
            let Some((key, pick)) = self.next_key()? else {
                self.done = true;
                break;
            };
            let Some(pick) = pick else {
                continue;
            };
            match pick {
                Pick::Encoded(bytes) => {
                    let values = decode_checked(&self.def, &bytes)?;
                    for (builder, &i) in builders.iter_mut().zip(&self.projection) {
                        builder.append(&values[i])?;
                    }
                    picks.push((0, decoded));
                    decoded += 1;
                }
                // Position 0 holds the decoded rows.
                Pick::Segment { source, row, .. } => picks.push((source + 1, row)),
            }
            if self.with_keys {
                keys.append_value(&key);
            }
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (j, builder) in builders.iter_mut().enumerate() {
            let decoded = builder.finish();
            let mut arrays: Vec<&dyn Array> = vec![decoded.as_ref()];
            arrays.extend(
                self.sources
                    .batches
                    .iter()
                    .map(|b| b.column(SYSTEM_COLUMNS + j).as_ref()),
            );
            let column = arrow::compute::interleave(&arrays, &picks)
                .map_err(|e| StorageError::internal(format!("assembling a scan batch: {e}")))?;
            columns.push(column);
        }
        if self.with_keys {
            columns.push(Arc::new(keys.finish()));
        }
        output_batch(&self.schema, &self.def.name, columns, picks.len()).map(Some)
    }
}

/// An output batch of `rows` rows of `table`; a scan of no columns (as for
/// `count(*)`) still counts its rows.
fn output_batch(
    schema: &SchemaRef,
    table: &str,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch> {
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| StorageError::internal(format!("scan batch of {table}: {e}")))
}

impl Iterator for BatchScan {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn own_bound(table: TableId, bound: &Bound<Vec<u8>>, end: bool) -> Bound<(TableId, Bytes)> {
    match bound {
        Bound::Included(k) => Bound::Included((table, Bytes::copy_from_slice(k))),
        Bound::Excluded(k) => Bound::Excluded((table, Bytes::copy_from_slice(k))),
        Bound::Unbounded if end => match table.checked_add(1) {
            Some(next) => Bound::Excluded((next, Bytes::new())),
            None => Bound::Unbounded,
        },
        Bound::Unbounded => Bound::Included((table, Bytes::new())),
    }
}

/// Whether zone maps let a scan skip `group` of `segment`: some predicate
/// rules it out and no older segment has keys in its range, or a predicate
/// on a key column rules it out. (Every version of a key has the same key
/// columns, so then no version under it in any segment matches either; a
/// zone with NULLs is not trusted for this, as tombstones store their
/// table columns as NULL.) Unreadable statistics never prune.
fn prunable(
    segment: &Segment,
    group: usize,
    predicates: &[(ColumnDef, Predicate, bool)],
    older: &[Arc<Segment>],
) -> bool {
    let mut ruled_out = false;
    for (column, predicate, in_key) in predicates {
        if let Ok(Some(zone)) = segment.zone(group, column)
            && !predicate.may_match(&zone)
        {
            if *in_key && !zone.has_nulls {
                return true;
            }
            ruled_out = true;
        }
    }
    if !ruled_out || older.is_empty() {
        return ruled_out;
    }
    let Ok(Some((low, high))) = segment.group_keys(group) else {
        return false;
    };
    !older.iter().any(|o| {
        o.meta.min_key.as_ref() <= high.as_slice() && low.as_slice() <= o.meta.max_key.as_ref()
    })
}

/// Rows (as values) of a scan, for callers that want them one by one.
#[derive(Debug)]
pub struct RowScan {
    batches: BatchScan,
    types: Vec<DataType>,
    current: Option<(RecordBatch, usize)>,
}

impl RowScan {
    pub(crate) fn new(batches: BatchScan) -> RowScan {
        let types = batches
            .projection
            .iter()
            .map(|&i| batches.def.columns[i].data_type.clone())
            .collect();
        RowScan {
            batches,
            types,
            current: None,
        }
    }

    fn row(&self, batch: &RecordBatch, i: usize) -> Result<Row> {
        let values = self
            .types
            .iter()
            .enumerate()
            .map(|(c, ty)| value_at(batch.column(c).as_ref(), i, ty))
            .collect::<Result<Vec<_>>>()?;
        let key = batch.column(self.types.len()).as_binary::<i32>().value(i);
        Ok(Row {
            key: Bytes::copy_from_slice(key),
            values,
        })
    }
}

impl Iterator for RowScan {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        loop {
            if let Some((batch, i)) = self.current.take()
                && i < batch.num_rows()
            {
                let row = self.row(&batch, i);
                self.current = Some((batch, i + 1));
                return Some(row);
            }
            match self.batches.next()? {
                Ok(batch) => self.current = Some((batch, 0)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_every_extension_of_a_prefix() {
        assert_eq!(successor(vec![1, 2]), Some(vec![1, 3]));
        assert_eq!(successor(vec![1, 0xff]), Some(vec![2]));
        assert_eq!(successor(vec![0xff, 0xff]), None);
        assert_eq!(successor(Vec::new()), None);
    }

    /// A segment batch of `(key, ts, deleted)` rows.
    fn versions(rows: &[(&[u8], u64, bool)]) -> RecordBatch {
        let keys: arrow::array::BinaryArray = rows.iter().map(|r| Some(r.0)).collect();
        let ts: arrow::array::UInt64Array = rows.iter().map(|r| Some(r.1)).collect();
        let deleted: BooleanArray = rows.iter().map(|r| Some(r.2)).collect();
        RecordBatch::try_from_iter([
            ("_key", Arc::new(keys) as ArrayRef),
            ("_ts", Arc::new(ts) as ArrayRef),
            ("_deleted", Arc::new(deleted) as ArrayRef),
        ])
        .unwrap()
    }

    fn kept(mask: Option<BooleanBuffer>, rows: usize) -> Vec<usize> {
        (0..rows)
            .filter(|&i| mask.as_ref().is_none_or(|m| m.value(i)))
            .collect()
    }

    #[test]
    fn direct_scans_keep_the_newest_version_at_or_below_the_snapshot() {
        let all = (Bound::Unbounded, Bound::Unbounded);
        let first = versions(&[
            (b"a", 9, false), // too new
            (b"a", 5, false), // visible
            (b"a", 2, false),
            (b"b", 4, true), // deleted
            (b"b", 3, false),
            (b"c", 8, false), // too new
        ]);
        let second = versions(&[
            (b"c", 6, false), // visible: "c" not yet decided
            (b"c", 1, false),
            (b"d", 7, false), // too new, no older version
        ]);
        let mut visibility = Visibility {
            snapshot: 6,
            decided: None,
        };
        assert_eq!(kept(visibility.mask(&first, &all.0, &all.1), 6), vec![1]);
        assert_eq!(kept(visibility.mask(&second, &all.0, &all.1), 3), vec![0]);

        // A key decided at the end of one batch stays decided in the next.
        let mut visibility = Visibility {
            snapshot: 9,
            decided: None,
        };
        let split = versions(&[(b"c", 8, false)]);
        assert_eq!(kept(visibility.mask(&split, &all.0, &all.1), 1), vec![0]);
        assert_eq!(kept(visibility.mask(&second, &all.0, &all.1), 3), vec![2]);

        // Keys outside the bounds are left out.
        let mut visibility = Visibility {
            snapshot: 9,
            decided: None,
        };
        let (from, to) = (
            Bound::Excluded(b"a".to_vec()),
            Bound::Included(b"c".to_vec()),
        );
        let batch = versions(&[
            (b"a", 1, false),
            (b"b", 1, false),
            (b"c", 1, false),
            (b"d", 1, false),
        ]);
        assert_eq!(kept(visibility.mask(&batch, &from, &to), 4), vec![1, 2]);
        let mut visibility = Visibility {
            snapshot: 9,
            decided: None,
        };
        let unmasked = versions(&[(b"b", 1, false), (b"c", 1, false)]);
        assert!(
            visibility.mask(&unmasked, &from, &to).is_none(),
            "all visible"
        );
    }

    #[test]
    fn single_versions_are_cut_to_the_bounds_and_lose_their_tombstones() {
        let batch = versions(&[
            (b"a", 1, false),
            (b"b", 1, true),
            (b"c", 1, false),
            (b"d", 1, false),
            (b"e", 1, false),
        ]);
        let keys = |batch: RecordBatch| -> Vec<Vec<u8>> {
            let column = batch.column(KEY).as_binary::<i32>();
            column.iter().map(|k| k.unwrap().to_vec()).collect()
        };
        let bound = |k: &[u8]| k.to_vec();
        let cut = live_in_range(
            &batch,
            &Bound::Excluded(bound(b"a")),
            &Bound::Excluded(bound(b"e")),
        )
        .unwrap();
        assert_eq!(keys(cut), vec![b"c".to_vec(), b"d".to_vec()]);
        let cut = live_in_range(&batch, &Bound::Included(bound(b"c")), &Bound::Unbounded).unwrap();
        assert_eq!(keys(cut), vec![b"c".to_vec(), b"d".to_vec(), b"e".to_vec()]);
        let none = live_in_range(&batch, &Bound::Included(bound(b"f")), &Bound::Unbounded).unwrap();
        assert_eq!(none.num_rows(), 0);
    }

    #[test]
    fn predicates_rule_out_zones_only_when_no_value_can_match() {
        let zone = Zone {
            min: Value::Int32(10),
            max: Value::Int32(20),
            all_null: false,
            has_nulls: false,
        };
        let p = |op, v| Predicate {
            column: "x".into(),
            op,
            value: Value::Int32(v),
        };
        assert!(p(CmpOp::Eq, 10).may_match(&zone));
        assert!(!p(CmpOp::Eq, 21).may_match(&zone));
        assert!(!p(CmpOp::Lt, 10).may_match(&zone));
        assert!(p(CmpOp::Le, 10).may_match(&zone));
        assert!(!p(CmpOp::Gt, 20).may_match(&zone));
        assert!(p(CmpOp::Ge, 20).may_match(&zone));
        let nulls = Zone {
            min: Value::Null,
            max: Value::Null,
            all_null: true,
            has_nulls: true,
        };
        assert!(!p(CmpOp::Eq, 1).may_match(&nulls));
        let odd = Zone {
            min: Value::Text("a".into()),
            max: Value::Text("b".into()),
            all_null: false,
            has_nulls: false,
        };
        assert!(p(CmpOp::Eq, 1).may_match(&odd), "incomparable: keep");
    }
}
