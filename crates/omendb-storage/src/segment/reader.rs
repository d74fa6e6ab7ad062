//! Reading a segment.
//!
//! Opening checks the file against the manifest (length, CRC-32C), the
//! footer against itself (version, table, key space, learned index, row
//! counts) and the row file against the footer; any mismatch is a
//! corruption error naming the file. After that, lookups use the cached
//! key columns and point reads the row file. Scans find both ends of their
//! key range with the learned index and read only the rows between: short
//! ranges through the block cache, long ones a row group at a time straight
//! from the file (so a full scan does not flush the cache).

use std::collections::HashMap;
use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, UInt64Array, new_null_array,
};
use arrow::buffer::{BooleanBuffer, OffsetBuffer};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef, UInt64Type};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use base64::Engine as _;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::PageIndexPolicy;

use super::key_space::KeySpace;
use super::row_file::{RowFile, RowFileSummary, row_file_path};
use super::writer::{
    FORMAT_VERSION, META_INDEX, META_KEY_SPACE, META_ROW_FILE, META_TABLE, META_VERSION,
};
use super::{
    BLOCK_ROWS, DELETED, KEY, ROW_GROUP_ROWS, SYSTEM_COLUMNS, SegmentMeta, TS, segment_path,
};
use crate::cache::{Cache, CacheKey};
use crate::catalog::{ColumnDef, ColumnId, TableDef};
use crate::error::{Result, StorageError};
use crate::index::learned::{LearnedIndex, search};
use crate::io::FileSystem;
use crate::txn::decode_checked;
use crate::types::{ColumnBuilder, Value, value_at};

/// What a row group's statistics say of one column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Zone {
    pub min: Value,
    pub max: Value,
    /// Every value in the row group is NULL.
    pub all_null: bool,
    /// Some value may be NULL (the statistics may not say).
    pub has_nulls: bool,
}

/// A version found by a point lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub row: usize,
    pub ts: u64,
    pub deleted: bool,
}

/// An immutable segment, opened on first use. Once the manifest no longer
/// lists it, it is marked obsolete, and its file is deleted when the last
/// reader lets go of it.
#[derive(Debug)]
pub(crate) struct Segment {
    pub meta: SegmentMeta,
    path: PathBuf,
    fs: Arc<dyn FileSystem>,
    cache: Arc<Cache>,
    opened: OnceLock<Arc<Opened>>,
    opening: Mutex<()>,
    obsolete: AtomicBool,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            self.cache.forget_segment(self.meta.id);
            // A file left behind by a failed removal is an orphan: the next
            // open deletes it.
            let _ = self.fs.remove(&self.path);
            let _ = self.fs.remove(&self.row_file_path());
        }
    }
}

#[derive(Debug)]
struct Opened {
    /// The Parquet file, mapped (see [`FileSystem::map_immutable`]).
    file: Bytes,
    row_file: RowFile,
    metadata: ArrowReaderMetadata,
    space: KeySpace,
    index: LearnedIndex,
    /// First row of each row group, then the row count.
    row_group_starts: Vec<usize>,
    /// Root position in the file of each table column it holds.
    columns: HashMap<ColumnId, usize>,
    /// Zone maps of every row group, per column, read from the footer
    /// statistics the first time a scan asks.
    zones: Mutex<HashMap<ColumnId, Arc<Vec<Option<Zone>>>>>,
}

impl Opened {
    /// The row group holding `row`.
    fn group_of(&self, row: usize) -> usize {
        self.row_group_starts
            .partition_point(|&first| first <= row)
            .saturating_sub(1)
    }
}

/// Scans of at most this many rows of a segment read through the block
/// cache; longer ones decode their row groups without caching them.
const CACHED_SCAN_ROWS: usize = 16 * BLOCK_ROWS;

/// The key columns of a segment, as lookups address them.
#[derive(Debug)]
struct Keys {
    index_keys: Vec<u64>,
    /// Each row's version: its commit timestamp shifted left by one, the
    /// low bit set for a tombstone, so a lookup loads both at once.
    versions: Vec<u64>,
    /// The full key bytes; only kept when the key space is a prefix.
    full: Option<BinaryArray>,
    /// No key has more than one version.
    distinct: bool,
    /// Some row is a tombstone.
    tombstones: bool,
}

fn version_ts(version: u64) -> u64 {
    version >> 1
}

fn version_deleted(version: u64) -> bool {
    version & 1 == 1
}

impl Keys {
    /// The key bytes of row `row`.
    fn key(&self, space: &KeySpace, row: usize) -> Option<Vec<u8>> {
        match &self.full {
            Some(full) => Some(full.value(row).to_vec()),
            None => space
                .keys_of(self.index_keys.get(row..row + 1)?)
                .map(|(bytes, _)| bytes),
        }
    }

    /// The system columns (`_key`, `_ts`, `_deleted`) of rows `rows`,
    /// without reading the file: key bytes from the full keys, or given
    /// back by the packed key space.
    fn system_columns(&self, space: &KeySpace, rows: Range<usize>) -> Option<Vec<ArrayRef>> {
        let n = rows.len();
        let key: ArrayRef = match &self.full {
            Some(full) => Arc::new(full.slice(rows.start, n)),
            None => {
                let (values, width) = space.keys_of(&self.index_keys[rows.clone()])?;
                let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(width, n));
                Arc::new(BinaryArray::new(offsets, values.into(), None))
            }
        };
        let versions = &self.versions[rows];
        let ts = UInt64Array::from_iter_values(versions.iter().map(|&v| version_ts(v)));
        let deleted = BooleanArray::new(
            BooleanBuffer::collect_bool(n, |i| version_deleted(versions[i])),
            None,
        );
        Some(vec![key, Arc::new(ts), Arc::new(deleted)])
    }
}

impl Segment {
    pub(crate) fn new(
        meta: SegmentMeta,
        dir: &Path,
        fs: Arc<dyn FileSystem>,
        cache: Arc<Cache>,
    ) -> Segment {
        let path = segment_path(dir, meta.id);
        Segment {
            meta,
            path,
            fs,
            cache,
            opened: OnceLock::new(),
            opening: Mutex::new(()),
            obsolete: AtomicBool::new(false),
        }
    }

    /// Deletes the file once nobody reads the segment any more.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    fn row_file_path(&self) -> PathBuf {
        row_file_path(self.path.parent().unwrap_or(Path::new("")), self.meta.id)
    }

    /// Bytes on disk: the Parquet file (as the manifest records it) and
    /// the row file beside it (0 if it cannot be opened: the size is for
    /// display, a read would report the problem).
    pub(crate) fn disk_bytes(&self) -> u64 {
        let rows = self
            .fs
            .open_read(&self.row_file_path())
            .map_or(0, |file| file.len());
        self.meta.bytes + rows
    }

    fn corrupt(&self, detail: impl Into<String>) -> StorageError {
        StorageError::corruption("segment", &self.path, 0, detail)
    }

    /// The opened segment: checked and opened by the first caller (a
    /// failure is not kept, so the next caller tries again), then shared
    /// without locking.
    fn opened(&self) -> Result<&Arc<Opened>> {
        if let Some(opened) = self.opened.get() {
            return Ok(opened);
        }
        // Guards no data, only that one thread opens at a time.
        let _opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(opened) = self.opened.get() {
            return Ok(opened);
        }
        let opened = Arc::new(self.open()?);
        Ok(self.opened.get_or_init(|| opened))
    }

    fn open(&self) -> Result<Opened> {
        let file = self
            .fs
            .map_immutable(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))?;
        if file.len() as u64 != self.meta.bytes {
            return Err(self.corrupt(format!(
                "{} bytes, the manifest says {}",
                file.len(),
                self.meta.bytes
            )));
        }
        let crc = crc32c::crc32c(&file);
        if crc != self.meta.crc {
            return Err(self.corrupt(format!(
                "checksum mismatch: file {crc:#010x}, manifest {:#010x}",
                self.meta.crc
            )));
        }

        // The offset index (page locations) lets reads skip to the pages
        // holding the rows they select.
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Required);
        let metadata =
            ArrowReaderMetadata::load(&file, options).map_err(|e| self.corrupt(e.to_string()))?;
        let kv: HashMap<&str, &str> = metadata
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| kv.value.as_deref().map(|v| (kv.key.as_str(), v)))
            .collect();
        if kv.get(META_VERSION) != Some(&FORMAT_VERSION) {
            return Err(self.corrupt("missing or unknown segment version"));
        }
        if kv.get(META_TABLE).and_then(|t| t.parse::<u64>().ok()) != Some(self.meta.table) {
            return Err(self.corrupt(format!("footer does not name table {}", self.meta.table)));
        }
        let space = kv
            .get(META_KEY_SPACE)
            .and_then(|text| KeySpace::from_text(text))
            .ok_or_else(|| self.corrupt("missing or malformed key space"))?;
        let index_bytes = kv
            .get(META_INDEX)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(|| self.corrupt("missing or malformed learned index"))?;
        let index =
            LearnedIndex::from_bytes(&index_bytes).map_err(|e| self.corrupt(e.to_string()))?;

        let row_summary = kv
            .get(META_ROW_FILE)
            .and_then(|text| {
                let (bytes, crc) = text.split_once(' ')?;
                Some(RowFileSummary {
                    bytes: bytes.parse().ok()?,
                    crc: crc.parse().ok()?,
                })
            })
            .ok_or_else(|| self.corrupt("missing or malformed row file summary"))?;

        let mut row_group_starts = vec![0usize];
        for group in metadata.metadata().row_groups() {
            let rows = usize::try_from(group.num_rows())
                .map_err(|_| self.corrupt("negative row count"))?;
            row_group_starts.push(row_group_starts[row_group_starts.len() - 1] + rows);
        }
        let rows = row_group_starts[row_group_starts.len() - 1];
        if rows as u64 != self.meta.rows || rows != index.len() {
            return Err(self.corrupt(format!(
                "{rows} rows, manifest says {}, learned index covers {}",
                self.meta.rows,
                index.len()
            )));
        }
        let schema = metadata.schema().clone();
        let system = ["_key", "_ts", "_deleted"];
        if schema.fields().len() < SYSTEM_COLUMNS
            || schema
                .fields()
                .iter()
                .zip(system)
                .any(|(field, name)| field.name() != name)
        {
            return Err(self.corrupt("system columns missing"));
        }
        let mut columns = HashMap::new();
        for (position, field) in schema.fields().iter().enumerate().skip(SYSTEM_COLUMNS) {
            let id = field
                .name()
                .strip_prefix('c')
                .and_then(|id| id.parse().ok());
            let id = id.ok_or_else(|| self.corrupt(format!("unknown column {}", field.name())))?;
            columns.insert(id, position);
        }
        let row_file = RowFile::open(
            self.fs.as_ref(),
            self.row_file_path(),
            row_summary,
            self.meta.rows,
        )?;
        Ok(Opened {
            file,
            row_file,
            metadata,
            space,
            index,
            row_group_starts,
            columns,
            zones: Mutex::default(),
        })
    }

    /// Reads the given root columns of `row_groups`, one batch per group.
    fn read(
        &self,
        opened: &Opened,
        row_groups: Vec<usize>,
        roots: Vec<usize>,
    ) -> Result<Vec<RecordBatch>> {
        self.read_selected(opened, row_groups, roots, None, ROW_GROUP_ROWS)
    }

    /// Reads the given root columns of rows `rows` (numbered within the
    /// group) of row group `group`; only the pages holding them are decoded.
    fn read_rows(
        &self,
        opened: &Opened,
        group: usize,
        rows: Range<usize>,
        roots: Vec<usize>,
    ) -> Result<RecordBatch> {
        let group_rows = opened.row_group_starts[group + 1] - opened.row_group_starts[group];
        let selection = RowSelection::from(vec![
            RowSelector::skip(rows.start),
            RowSelector::select(rows.len()),
            RowSelector::skip(group_rows.saturating_sub(rows.end)),
        ]);
        // A batch size of exactly the rows wanted: the reader allocates
        // that much, and cached blocks should not carry spare capacity.
        let batches = self.read_selected(
            opened,
            vec![group],
            roots,
            Some(selection),
            rows.len().max(1),
        )?;
        match <[RecordBatch; 1]>::try_from(batches) {
            Ok([batch]) if batch.num_rows() == rows.len() => Ok(batch),
            _ => Err(self.corrupt(format!("row group {group} does not hold rows {rows:?}"))),
        }
    }

    fn read_selected(
        &self,
        opened: &Opened,
        row_groups: Vec<usize>,
        roots: Vec<usize>,
        selection: Option<RowSelection>,
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>> {
        let mask = ProjectionMask::roots(
            opened.metadata.metadata().file_metadata().schema_descr(),
            roots,
        );
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            opened.file.clone(),
            opened.metadata.clone(),
        )
        .with_row_groups(row_groups)
        .with_projection(mask)
        .with_batch_size(batch_rows);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        let reader = builder.build().map_err(|e| self.corrupt(e.to_string()))?;
        reader
            .map(|batch| batch.map_err(|e| self.corrupt(e.to_string())))
            .collect()
    }

    /// The table columns of block `block` of row group `group`, in file
    /// order (root `r` at `r - SYSTEM_COLUMNS`), from the cache. System
    /// columns are not kept: a scan that wants them builds them for its
    /// rows from the key columns (cheaper than decoding, and the cache
    /// holds more blocks).
    fn block(&self, opened: &Opened, group: usize, block: usize) -> Result<Arc<Vec<ArrayRef>>> {
        self.cache
            .get_or_load(CacheKey::Block(self.meta.id, group, block), || {
                let group_start = opened.row_group_starts[group];
                let group_rows = opened.row_group_starts[group + 1] - group_start;
                let start = block * BLOCK_ROWS;
                let rows = start..(start + BLOCK_ROWS).min(group_rows);
                let roots = (SYSTEM_COLUMNS..SYSTEM_COLUMNS + opened.columns.len()).collect();
                let table = self.read_rows(opened, group, rows, roots)?;
                let columns = table.columns().to_vec();
                let size = columns.iter().map(|c| c.get_array_memory_size()).sum();
                Ok((columns, size))
            })
    }

    fn keys(&self, opened: &Opened) -> Result<Arc<Keys>> {
        self.cache.get_or_load(CacheKey::Keys(self.meta.id), || {
            let groups = (0..opened.row_group_starts.len() - 1).collect();
            let batches = self.read(opened, groups, vec![KEY, TS, DELETED])?;
            let rows = opened.index.len();
            let mut index_keys = Vec::with_capacity(rows);
            let mut versions = Vec::with_capacity(rows);
            let mut full = Vec::new();
            for batch in &batches {
                let keys = batch.column(0).as_binary::<i32>();
                index_keys.extend(
                    keys.iter()
                        .map(|k| opened.space.index_key(k.unwrap_or_default()).key),
                );
                let ts = batch.column(1).as_primitive::<UInt64Type>().values();
                let deleted = batch.column(2).as_boolean().values();
                if ts.iter().any(|&ts| ts >> 63 != 0) {
                    return Err(self.corrupt("a commit timestamp of 2^63 or more"));
                }
                versions.extend(
                    ts.iter()
                        .zip(deleted)
                        .map(|(&ts, deleted)| ts << 1 | u64::from(deleted)),
                );
                full.push(batch.column(0).clone());
            }
            if index_keys.len() != rows {
                return Err(self.corrupt(format!("{} keys for {rows} rows", index_keys.len())));
            }
            let full = if opened.space.is_packed() {
                None
            } else {
                let refs: Vec<&dyn Array> = full.iter().map(|a| a.as_ref()).collect();
                let all = arrow::compute::concat(&refs).map_err(|e| self.corrupt(e.to_string()))?;
                Some(all.as_binary::<i32>().clone())
            };
            let size = rows * 16 + full.as_ref().map_or(0, |f| f.get_array_memory_size());
            let distinct = match &full {
                None => index_keys.windows(2).all(|w| w[0] != w[1]),
                Some(full) => (1..rows).all(|i| full.value(i - 1) != full.value(i)),
            };
            let tombstones = versions.iter().any(|&v| version_deleted(v));
            Ok((
                Keys {
                    index_keys,
                    versions,
                    full,
                    distinct,
                    tombstones,
                },
                size,
            ))
        })
    }

    /// The newest version of `key` at or below `snapshot`.
    pub(crate) fn find(&self, key: &[u8], snapshot: u64) -> Result<Option<Found>> {
        self.find_version(key, snapshot, false)
    }

    /// [`Self::find`] for a point read, which goes on to read the row
    /// found: memory is asked for the row's bytes while its version is
    /// checked.
    pub(crate) fn find_to_read(&self, key: &[u8], snapshot: u64) -> Result<Option<Found>> {
        self.find_version(key, snapshot, true)
    }

    fn find_version(&self, key: &[u8], snapshot: u64, to_read: bool) -> Result<Option<Found>> {
        if key < self.meta.min_key.as_ref() || key > self.meta.max_key.as_ref() {
            return Ok(None);
        }
        let opened = self.opened()?;
        let wanted = opened.space.index_key(key);
        // A packed space knows a key outside its column ranges is absent.
        if opened.space.is_packed() && !wanted.exact {
            return Ok(None);
        }
        let keys = self.keys(opened)?;
        let rows = keys.index_keys.len();
        let mut i = opened.index.lower_bound(&keys.index_keys, wanted.key);
        match &keys.full {
            None if !wanted.exact => return Ok(None),
            None => {}
            Some(full) => i = search::gallop_by(i, rows, |j| full.value(j) < key),
        }
        let same = |j: usize| match &keys.full {
            None => keys.index_keys[j] == wanted.key,
            Some(full) => full.value(j) == key,
        };
        if to_read && i < rows && same(i) {
            opened.row_file.prefetch(i);
        }
        while i < rows && same(i) {
            let version = keys.versions[i];
            if version_ts(version) <= snapshot {
                return Ok(Some(Found {
                    row: i,
                    ts: version_ts(version),
                    deleted: version_deleted(version),
                }));
            }
            i += 1;
        }
        Ok(None)
    }

    /// The smallest index key a row in range from `from` can have; `None`
    /// when no row of the segment can be.
    fn first_index_key(space: &KeySpace, from: &Bound<Vec<u8>>) -> Option<u64> {
        let (Bound::Included(key) | Bound::Excluded(key)) = from else {
            return Some(0);
        };
        let bound = space.index_key(key);
        // Rows with the bound's index key all lie past a bound above them,
        // and an exact index key is the key itself.
        match from {
            _ if bound.above => bound.key.checked_add(1),
            Bound::Excluded(_) if bound.exact => bound.key.checked_add(1),
            _ => Some(bound.key),
        }
    }

    /// An index key past every row in range up to `to`: rows whose index
    /// key exceeds the bound's are past it, as keys map to index keys
    /// monotonically; `None` when no index key is.
    fn past_index_key(space: &KeySpace, to: &Bound<Vec<u8>>) -> Option<u64> {
        let (Bound::Included(key) | Bound::Excluded(key)) = to else {
            return None;
        };
        let bound = space.index_key(key);
        // Rows with the bound's index key all lie past a bound below them,
        // and an exact index key is the key itself.
        match to {
            _ if bound.below => Some(bound.key),
            Bound::Excluded(_) if bound.exact => Some(bound.key),
            _ => bound.key.checked_add(1),
        }
    }

    /// The table's columns `columns` (plus the system columns first) of
    /// the rows between `from` and `to` (and a few rows beyond either end),
    /// in batches of at most a row group; `None` when no row lies between.
    pub(crate) fn scan(
        self: &Arc<Self>,
        def: &TableDef,
        columns: &[ColumnId],
        (from, to): (&Bound<Vec<u8>>, &Bound<Vec<u8>>),
        skip_groups: &dyn Fn(&Segment, usize) -> bool,
    ) -> Result<Option<SegmentBatches>> {
        let opened = self.opened()?;
        // A bounded scan finds its ends in the key columns; a full scan does
        // not load them.
        let (start, end, keys) = match (from, to) {
            (Bound::Unbounded, Bound::Unbounded) => (0, opened.index.len(), None),
            _ => {
                let past = Self::past_index_key(&opened.space, to);
                // No index key lies between: decided without the key
                // columns, as for a time range the segment does not cover.
                let Some(first) = Self::first_index_key(&opened.space, from)
                    .filter(|&first| past.is_none_or(|past| first < past))
                else {
                    return Ok(None);
                };
                let keys = self.keys(opened)?;
                let start = opened.index.lower_bound(&keys.index_keys, first);
                let end = past.map_or(opened.index.len(), |past| {
                    opened.index.lower_bound(&keys.index_keys, past)
                });
                // The caller skips the few keys out of range at either end
                // (none when the key space is packed).
                (start, end.max(start), Some(keys))
            }
        };
        if start == end {
            return Ok(None);
        }
        let group = opened.group_of(start);
        let defs = columns
            .iter()
            .map(|id| {
                def.columns
                    .iter()
                    .find(|c| c.id == *id)
                    .cloned()
                    .ok_or_else(|| {
                        StorageError::internal(format!(
                            "scan of unknown column {id} in {}",
                            def.name
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        // The file's own fields where it has the column: no per-scan names.
        let file_fields = opened.metadata.schema().fields();
        let table = defs.iter().map(|d| match opened.columns.get(&d.id) {
            Some(&position) => file_fields[position].clone(),
            None => Arc::new(Field::new(
                super::column_name(d.id),
                d.data_type.arrow_type(),
                true,
            )),
        });
        let fields: Vec<FieldRef> = file_fields[..SYSTEM_COLUMNS]
            .iter()
            .cloned()
            .chain(table)
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let last = opened.group_of(end.saturating_sub(1).max(start));
        let groups = opened.row_group_starts.len() - 1;
        let skipped = (0..groups)
            .map(|g| (group..=last).contains(&g) && skip_groups(self, g))
            .collect();
        Ok(Some(SegmentBatches {
            segment: self.clone(),
            opened: opened.clone(),
            next_row: start,
            end_row: end,
            short: keys.is_some() && end - start <= CACHED_SCAN_ROWS,
            cached: keys.is_some() && end - start <= CACHED_SCAN_ROWS,
            distinct: keys.as_ref().is_some_and(|k| k.distinct),
            system: true,
            keys,
            defs,
            schema,
            skipped,
        }))
    }

    /// The zone map of `column` in row group `group`; `None` when the
    /// statistics say nothing.
    pub(crate) fn zone(&self, group: usize, column: &ColumnDef) -> Result<Option<Zone>> {
        let opened = self.opened()?;
        if !opened.columns.contains_key(&column.id) {
            // The segment predates the column: every row holds its missing value.
            let missing = column.missing.clone();
            let all_null = missing.is_null();
            return Ok(Some(Zone {
                min: missing.clone(),
                max: missing,
                all_null,
                has_nulls: all_null,
            }));
        }
        let zones = {
            // Only inserts under the lock: a poisoned map is still whole.
            let cached = opened.zones.lock().unwrap_or_else(|p| p.into_inner());
            cached.get(&column.id).cloned()
        };
        let zones = match zones {
            Some(zones) => zones,
            None => {
                let zones = Arc::new(self.read_zones(opened, column)?);
                let mut cached = opened.zones.lock().unwrap_or_else(|p| p.into_inner());
                cached.insert(column.id, zones.clone());
                zones
            }
        };
        Ok(zones.get(group).cloned().flatten())
    }

    /// The zone map of `column` in every row group, from the statistics.
    fn read_zones(&self, opened: &Opened, column: &ColumnDef) -> Result<Vec<Option<Zone>>> {
        let name = super::column_name(column.id);
        let bad = |e: ParquetError| self.corrupt(e.to_string());
        let converter = StatisticsConverter::try_new(
            &name,
            opened.metadata.schema(),
            opened.metadata.parquet_schema(),
        )
        .map_err(bad)?;
        let groups = opened.metadata.metadata().row_groups();
        let mins = converter.row_group_mins(groups.iter()).map_err(bad)?;
        let maxes = converter.row_group_maxes(groups.iter()).map_err(bad)?;
        let nulls = converter
            .row_group_null_counts(groups.iter())
            .map_err(bad)?;
        (0..groups.len())
            .map(|group| {
                let rows =
                    (opened.row_group_starts[group + 1] - opened.row_group_starts[group]) as u64;
                let all_null = nulls.is_valid(group) && nulls.value(group) == rows;
                let has_nulls = !nulls.is_valid(group) || nulls.value(group) > 0;
                if mins.is_null(group) || maxes.is_null(group) {
                    return Ok(all_null.then_some(Zone {
                        min: Value::Null,
                        max: Value::Null,
                        all_null,
                        has_nulls,
                    }));
                }
                let min = value_at(mins.as_ref(), group, &column.data_type)?;
                let max = value_at(maxes.as_ref(), group, &column.data_type)?;
                Ok(Some(Zone {
                    min,
                    max,
                    all_null,
                    has_nulls,
                }))
            })
            .collect()
    }

    /// The smallest and largest key of row group `group`, if recorded.
    pub(crate) fn group_keys(&self, group: usize) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let opened = self.opened()?;
        let chunk = opened.metadata.metadata().row_group(group).column(KEY);
        Ok(chunk
            .statistics()
            .and_then(|s| Some((s.min_bytes_opt()?.to_vec(), s.max_bytes_opt()?.to_vec()))))
    }

    /// The distinct keys of the segment, in order; reads only the system
    /// columns.
    pub(crate) fn scan_keys(self: &Arc<Self>) -> Result<KeyScan> {
        let opened = self.opened()?;
        let fields: Vec<FieldRef> = vec![
            Arc::new(Field::new(
                super::KEY_COLUMN,
                arrow::datatypes::DataType::Binary,
                false,
            )),
            Arc::new(Field::new(
                super::TS_COLUMN,
                arrow::datatypes::DataType::UInt64,
                false,
            )),
            Arc::new(Field::new(
                super::DELETED_COLUMN,
                arrow::datatypes::DataType::Boolean,
                false,
            )),
        ];
        let groups = opened.row_group_starts.len() - 1;
        let rows = opened.index.len();
        let batches = SegmentBatches {
            segment: self.clone(),
            opened: opened.clone(),
            next_row: 0,
            end_row: rows,
            short: false,
            cached: false,
            distinct: false,
            system: true,
            keys: None,
            defs: Vec::new(),
            schema: Arc::new(Schema::new(fields)),
            skipped: vec![false; groups],
        };
        Ok(KeyScan {
            rows: RowCursor::new(batches),
            last: None,
        })
    }

    /// All table columns of `row`, for point reads: from the row file, so
    /// a read touches two small stretches of mapped memory.
    pub(crate) fn row(&self, def: &TableDef, row: usize) -> Result<Vec<Value>> {
        let opened = self.opened()?;
        decode_checked(def, opened.row_file.row(row)?)
    }
}

/// The rows of a scan: each batch holds `_key`, `_ts`, `_deleted` (unless
/// [`SegmentBatches::without_system_columns`]), then the requested table
/// columns (a column the segment predates holds its missing value).
#[derive(Clone, Debug)]
pub(crate) struct SegmentBatches {
    segment: Arc<Segment>,
    opened: Arc<Opened>,
    /// The next row to return, and the end of the scan's rows.
    next_row: usize,
    end_row: usize,
    /// The range holds few rows (a few blocks).
    short: bool,
    /// Read through the block cache (a short scan, or one its caller stops
    /// early), not straight from the file.
    cached: bool,
    /// Known: no key of the segment has more than one version.
    distinct: bool,
    /// Batches begin with the system columns.
    system: bool,
    /// The key columns, which a bounded scan has loaded: short scans take
    /// their system columns from them.
    keys: Option<Arc<Keys>>,
    defs: Vec<ColumnDef>,
    schema: SchemaRef,
    /// Row groups pruned by zone maps.
    skipped: Vec<bool>,
}

impl Iterator for SegmentBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if self.next_row >= self.end_row {
                return None;
            }
            let group = self.opened.group_of(self.next_row);
            let group_start = self.opened.row_group_starts[group];
            let group_end = self.opened.row_group_starts[group + 1];
            if self.skipped[group] {
                self.next_row = group_end;
                continue;
            }
            let in_group = self.next_row - group_start;
            let batch = if self.cached {
                let block = in_group / BLOCK_ROWS;
                let block_start = block * BLOCK_ROWS;
                let end = (self.end_row - group_start).min(block_start + BLOCK_ROWS);
                let rows = self.next_row..group_start + end;
                self.next_row = rows.end;
                self.short_batch(group, block, rows)
            } else {
                let end = self.end_row.min(group_end) - group_start;
                self.next_row = group_start + end;
                self.read_group(group, in_group..end)
            };
            return Some(batch);
        }
    }
}

impl SegmentBatches {
    /// Reads through the block cache when the caller wants at most `rows`
    /// rows and the scan is bounded (its key columns are loaded).
    pub(crate) fn read_through_cache_for(&mut self, rows: usize) {
        if rows <= CACHED_SCAN_ROWS && self.keys.is_some() {
            self.cached = true;
        }
    }

    /// Rows still to read, row groups skipped by zone maps left out.
    pub(crate) fn rows_left(&self) -> u64 {
        let mut rows = 0;
        let mut row = self.next_row;
        while row < self.end_row {
            let group = self.opened.group_of(row);
            let group_end = self.opened.row_group_starts[group + 1].min(self.end_row);
            if !self.skipped[group] {
                rows += (group_end - row) as u64;
            }
            row = group_end;
        }
        rows
    }

    /// Whether the scan's range holds few rows (a few blocks).
    pub(crate) fn is_short(&self) -> bool {
        self.short
    }

    /// Whether every row is the only version of its key and visible at
    /// `snapshot`, so only tombstones hide rows.
    pub(crate) fn all_visible_at(&self, snapshot: u64) -> bool {
        self.distinct && self.segment.meta.max_ts <= snapshot
    }

    /// The keys of the first and last row in the scan's range, when its
    /// key columns are loaded (a bounded scan).
    pub(crate) fn end_keys(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let keys = self.keys.as_ref()?;
        let space = &self.opened.space;
        Some((
            keys.key(space, self.next_row)?,
            keys.key(space, self.end_row.checked_sub(1)?)?,
        ))
    }

    /// Leaves the system columns out of the batches (they then hold only
    /// the requested columns) when the segment holds no tombstone, as its
    /// loaded key columns say; returns whether it did. For a caller that
    /// has checked that every row is in range and visible, and so needs
    /// neither keys, versions nor tombstone bits: decoding them is most of
    /// a wide scan's work.
    pub(crate) fn without_system_columns(&mut self) -> bool {
        if self.keys.as_ref().is_none_or(|k| k.tombstones) {
            return false;
        }
        self.system = false;
        self.schema = Arc::new(Schema::new(self.schema.fields()[SYSTEM_COLUMNS..].to_vec()));
        true
    }

    /// Root positions of the system columns the batches hold: all, or
    /// none once left out.
    fn system_roots(&self) -> Range<usize> {
        0..if self.system { SYSTEM_COLUMNS } else { 0 }
    }

    /// Root positions in the file of the system columns (unless left out)
    /// and the requested columns the segment holds, in file order.
    fn roots(&self) -> Vec<usize> {
        let present = self
            .defs
            .iter()
            .filter_map(|c| self.opened.columns.get(&c.id).copied());
        let mut roots: Vec<usize> = self.system_roots().chain(present).collect();
        roots.sort_unstable();
        roots
    }

    fn read_group(&self, group: usize, rows: Range<usize>) -> Result<RecordBatch> {
        let roots = self.roots();
        let batch = self
            .segment
            .read_rows(&self.opened, group, rows.clone(), roots.clone())?;
        self.assemble(batch.num_rows(), |root| {
            let i = roots.iter().position(|&r| r == root)?;
            Some(batch.column(i).clone())
        })
    }

    /// Rows `rows` (numbered in the segment) of a short scan, all in block
    /// `block` of row group `group`: table columns from the cached block,
    /// system columns (unless left out) from the key columns.
    fn short_batch(&self, group: usize, block: usize, rows: Range<usize>) -> Result<RecordBatch> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| StorageError::internal("a short scan without its key columns"))?;
        let block_start = self.opened.row_group_starts[group] + block * BLOCK_ROWS;
        let block = self.segment.block(&self.opened, group, block)?;
        let offset = rows.start - block_start;
        let system = match self.system {
            true => keys
                .system_columns(&self.opened.space, rows.clone())
                .ok_or_else(|| self.segment.corrupt("a prefix key space without full keys"))?,
            false => Vec::new(),
        };
        self.assemble(rows.len(), |root| match root.checked_sub(SYSTEM_COLUMNS) {
            None => system.get(root).cloned(),
            Some(i) => block.get(i).map(|c| c.slice(offset, rows.len())),
        })
    }

    /// The scan's batch of `rows` rows: the system columns, then the
    /// requested ones, taking file column (root) `r` from `column(r)`, or
    /// a column's missing value where the segment predates it.
    fn assemble(
        &self,
        rows: usize,
        column: impl Fn(usize) -> Option<ArrayRef>,
    ) -> Result<RecordBatch> {
        let mut columns = Vec::with_capacity(SYSTEM_COLUMNS + self.defs.len());
        for root in self.system_roots() {
            columns.push(column(root).ok_or_else(|| {
                self.segment
                    .corrupt(format!("system column {root} missing"))
            })?);
        }
        for def in &self.defs {
            let present = self.opened.columns.get(&def.id).and_then(|&p| column(p));
            let array = match present {
                Some(array) => array,
                None => constant(&def.missing, def, rows)?,
            };
            columns.push(array);
        }
        // Without system columns, a scan of no columns is only a row count.
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| self.segment.corrupt(e.to_string()))
    }
}

/// A segment's rows one by one, decoding a row group at a time.
#[derive(Debug)]
pub(crate) struct RowCursor {
    batches: SegmentBatches,
    batch: Option<RecordBatch>,
    row: usize,
    /// Counts loaded batches, to tell them apart.
    generation: u64,
}

impl RowCursor {
    pub(crate) fn new(batches: SegmentBatches) -> RowCursor {
        RowCursor {
            batches,
            batch: None,
            row: 0,
            generation: 0,
        }
    }

    /// Rows the cursor's scan has yet to read (before it starts: all).
    pub(crate) fn rows_left(&self) -> u64 {
        self.batches.rows_left()
    }

    /// A copy of the batches still to come, if the cursor has not loaded
    /// any yet.
    pub(crate) fn fresh_batches(&self) -> Option<SegmentBatches> {
        (self.generation == 0).then(|| self.batches.clone())
    }

    /// Whether there is a current row, loading the next batch if needed.
    pub(crate) fn valid(&mut self) -> Result<bool> {
        while self.batch.as_ref().is_none_or(|b| self.row >= b.num_rows()) {
            match self.batches.next().transpose()? {
                Some(batch) => {
                    self.batch = Some(batch);
                    self.row = 0;
                    self.generation += 1;
                }
                None => {
                    self.batch = None;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The batch holding the current row (after `valid`).
    pub(crate) fn batch(&self) -> Option<&RecordBatch> {
        self.batch.as_ref()
    }

    pub(crate) fn row(&self) -> usize {
        self.row
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn advance(&mut self) {
        self.row += 1;
    }

    /// Moves to row `row` of the current batch.
    pub(crate) fn skip_to(&mut self, row: usize) {
        self.row = row;
    }

    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.batch
            .as_ref()
            .map(|b| b.column(KEY).as_binary::<i32>().value(self.row))
    }

    pub(crate) fn ts(&self) -> Option<u64> {
        self.batch
            .as_ref()
            .map(|b| b.column(TS).as_primitive::<UInt64Type>().value(self.row))
    }

    pub(crate) fn deleted(&self) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|b| b.column(DELETED).as_boolean().value(self.row))
    }
}

/// The distinct keys of a segment, in order.
#[derive(Debug)]
pub(crate) struct KeyScan {
    rows: RowCursor,
    last: Option<Bytes>,
}

impl KeyScan {
    pub(crate) fn next_key(&mut self) -> Result<Option<Bytes>> {
        while self.rows.valid()? {
            let key = self.rows.key().unwrap_or_default();
            if self.last.as_deref() != Some(key) {
                let key = Bytes::copy_from_slice(key);
                self.rows.advance();
                self.last = Some(key.clone());
                return Ok(Some(key));
            }
            self.rows.advance();
        }
        Ok(None)
    }
}

/// An array of `rows` copies of `value` for a column of `def`'s type.
fn constant(value: &Value, def: &ColumnDef, rows: usize) -> Result<ArrayRef> {
    if value.is_null() {
        return Ok(new_null_array(&def.data_type.arrow_type(), rows));
    }
    let mut builder = ColumnBuilder::new(&def.data_type, rows);
    for _ in 0..rows {
        builder.append(value)?;
    }
    Ok(builder.finish())
}
