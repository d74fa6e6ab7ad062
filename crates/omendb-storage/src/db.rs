//! The database: opening and recovery, the commit pipeline, flushing
//! memtables into segments, and the view of committed data that
//! transactions read.
//!
//! ```text
//!  Transaction::commit
//!    commit lock ── validate the write set against newer commits (first committer wins)
//!                ── take the next timestamp, append the WAL record,
//!                   apply versions to the memtable (still invisible)
//!    Wal::sync   ── group commit: one fsync for all waiting committers
//!    Clock       ── finish: visible once every earlier commit finished
//!
//!  flush (background worker, or Database::flush)
//!    freeze      ── under the commit lock: rotate the WAL, start a new memtable
//!    write       ── one segment per table, synced, directory synced
//!    install     ── new manifest (atomic), new view, then old WAL files deleted
//! ```
//!
//! On a failed WAL write the commit's versions are removed again and its
//! timestamp finishes as a no-op, so nothing half-done is ever visible.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{Counters, StorageStats};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::Cache;
use crate::catalog::{Catalog, CatalogOp, TableDef, TableId};
use crate::clock::Clock;
use crate::compaction;
use crate::error::{Result, StorageError};
use crate::io::{FileSystem, OsFs};
use crate::manifest::{MANIFEST, Manifest};
use crate::memtable::{Memtable, Write};
use crate::segment::{Segment, SegmentMeta, SegmentWriter, segment_id, segment_path};
use crate::txn::locks::RowLocks;
use crate::txn::{
    Isolation, PendingWrite, Snapshot, Transaction, TxnReader, WriteKind, decode_checked,
};
use crate::types::Value;
use crate::wal::RecoveryProgress;
use crate::wal::record::{self, RecordBuilder, WalOp};
use crate::wal::{self, Lsn, Wal};

/// How a database behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Wait for the WAL fsync before a commit returns (PostgreSQL's
    /// `synchronous_commit = on`). Off: commits return once logged in
    /// memory, the worker syncs every few milliseconds, and a crash may
    /// lose the last commits, never half of one.
    pub synchronous_commit: bool,
    /// A memtable larger than this is frozen and flushed into segments.
    pub memtable_bytes: usize,
    /// Memory for decoded segment data (key columns, row groups).
    pub cache_bytes: usize,
    /// Where opening counts the WAL replay's progress, if anyone watches.
    pub recovery_progress: Option<Arc<RecoveryProgress>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            synchronous_commit: true,
            memtable_bytes: 64 << 20,
            cache_bytes: 256 << 20,
            recovery_progress: None,
        }
    }
}

/// An open database. Cheap to clone; clones share it. The background
/// worker stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Database {
    engine: Arc<Engine>,
    _worker: Arc<Worker>,
}

/// What a frozen memtable's flush installs with its segments.
#[derive(Debug)]
pub(crate) struct Seal {
    /// The catalog as of the freeze.
    catalog: Arc<Catalog>,
    /// The last commit in the memtable.
    max_ts: u64,
    next_row_ids: BTreeMap<TableId, i64>,
    /// The WAL file where commits after the freeze begin.
    wal_file: u64,
}

/// The committed state readers see.
#[derive(Debug, Clone)]
pub(crate) struct View {
    /// The memtable taking commits.
    pub memtable: Arc<Memtable>,
    /// Memtables waiting to be flushed, newest first.
    pub frozen: Vec<(Arc<Memtable>, Arc<Seal>)>,
    /// Each table's segments, newest first.
    pub segments: HashMap<TableId, Vec<Arc<Segment>>>,
    /// Segments deleted whole (retention), by id, with the commit that
    /// dropped them: snapshots at or after it skip them.
    pub dropped: HashMap<u64, u64>,
}

impl View {
    /// Segments of `table` that a snapshot at `ts` reads, newest first,
    /// leaving out those dropped by then or by the reader itself.
    pub(crate) fn live_segments<'v>(
        &'v self,
        table: TableId,
        ts: u64,
        own_drops: &'v [u64],
    ) -> impl Iterator<Item = &'v Arc<Segment>> + 'v {
        self.segments(table).iter().filter(move |s| {
            self.dropped.get(&s.meta.id).is_none_or(|&at| at > ts)
                && !own_drops.contains(&s.meta.id)
        })
    }
    /// Memtables, newest first.
    pub(crate) fn memtables(&self) -> impl Iterator<Item = &Arc<Memtable>> {
        std::iter::once(&self.memtable).chain(self.frozen.iter().map(|(m, _)| m))
    }

    /// Segments of `table`, newest first.
    pub(crate) fn segments(&self, table: TableId) -> &[Arc<Segment>] {
        self.segments.get(&table).map_or(&[], Vec::as_slice)
    }
}

/// Where the newest version of a key, as a snapshot sees it, lives.
#[derive(Debug)]
pub(crate) enum Visible {
    /// An encoded row in a memtable.
    Encoded(Bytes),
    /// A row of a segment.
    Segment(Arc<Segment>, usize),
    Deleted,
}

#[derive(Debug)]
pub(crate) struct Engine {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segment_dir: PathBuf,
    options: Options,
    wal: Wal,
    commit: Mutex<CommitState>,
    pub(crate) clock: Clock,
    view: RwLock<Arc<View>>,
    /// Catalog versions by commit timestamp, oldest first.
    catalogs: RwLock<Vec<(u64, Arc<Catalog>)>>,
    /// The next hidden row id of each table that has one.
    row_ids: Mutex<BTreeMap<TableId, i64>>,
    /// Handed out at CREATE TABLE, so concurrent creations never collide.
    next_table_id: AtomicU64,
    cache: Arc<Cache>,
    /// The manifest on disk; its lock also orders manifest installs.
    manifest: Mutex<Manifest>,
    /// One flush at a time.
    flushing: Mutex<()>,
    /// One compaction at a time.
    compacting: Mutex<()>,
    /// Live snapshots (timestamp → count), for the compaction horizon.
    snapshots: Mutex<BTreeMap<u64, usize>>,
    /// Segments open transactions mean to drop whole (id → count):
    /// compaction leaves them be.
    pins: Mutex<HashMap<u64, usize>>,
    /// Wakes the background worker.
    signal: Arc<Signal>,
    counters: Counters,
    /// Rows open transactions overwrite, for writers that come after.
    pub(crate) locks: Arc<RowLocks>,
}

#[derive(Debug)]
struct CommitState {
    next_ts: u64,
}

#[derive(Debug, Default)]
struct Signal {
    state: Mutex<WorkerState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct WorkerState {
    stop: bool,
    flush: bool,
    /// The last background failure, kept until someone asks.
    error: Option<String>,
}

/// The background worker: flushes full memtables and, without synchronous
/// commit, syncs the WAL every few milliseconds.
#[derive(Debug)]
struct Worker {
    signal: Arc<Signal>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        lock(&self.signal.state).stop = true;
        self.signal.wake.notify_all();
        if let Some(handle) = lock(&self.handle).take() {
            // A panic in the worker already failed its work; nothing to add.
            let _ = handle.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The engine's critical sections leave their state consistent before
    // anything that can panic, so a poisoned lock still guards valid state.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Database {
    /// Opens (or creates) the database in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Database> {
        Database::open_with(Arc::new(OsFs), dir, options)
    }

    /// Opens (or creates) the database in `dir` on `fs`: reads the
    /// manifest, removes files a crash left behind, replays the WAL.
    pub fn open_with(
        fs: Arc<dyn FileSystem>,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<Database> {
        let engine = Arc::new(Engine::open(fs, dir.as_ref().to_path_buf(), options)?);
        let signal = engine.signal.clone();
        let handle = {
            let engine = engine.clone();
            std::thread::Builder::new()
                .name("omendb-worker".into())
                .spawn(move || engine.work())
                .map_err(|e| {
                    StorageError::internal(format!("starting the background worker: {e}"))
                })?
        };
        let worker = Worker {
            signal,
            handle: Mutex::new(Some(handle)),
        };
        Ok(Database {
            engine,
            _worker: Arc::new(worker),
        })
    }

    /// Starts a transaction.
    pub fn begin(&self, isolation: Isolation) -> Transaction {
        Transaction::new(self.engine.clone(), isolation)
    }

    /// A read-only view of the latest visible commit: what a statement
    /// that only reads needs outside a transaction block, without the
    /// transaction (it is the reader of a transaction begun now).
    pub fn reader(&self) -> TxnReader {
        TxnReader::of_snapshot(self.engine.snapshot())
    }

    /// The catalog as of the latest visible commit.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.engine.catalog_at(self.engine.clock.visible())
    }

    /// The directory the database lives in.
    pub fn dir(&self) -> &Path {
        &self.engine.dir
    }

    /// Freezes the memtable and flushes every frozen memtable into
    /// segments, now.
    pub fn flush(&self) -> Result<()> {
        self.engine.flush()
    }

    /// Merges every table's segments into one, now.
    pub fn compact(&self) -> Result<()> {
        let tables: Vec<TableId> = self.engine.view().segments.keys().copied().collect();
        for table in tables {
            self.engine.compact_table(table, true)?;
        }
        Ok(())
    }

    /// The last error of background work (a flush), if any; clears it.
    pub fn take_background_error(&self) -> Option<String> {
        lock(&self.engine.signal.state).error.take()
    }

    /// Segments per table, for tests and statistics.
    pub fn segment_count(&self, table: TableId) -> usize {
        self.engine.view().segments(table).len()
    }

    /// The engine's metrics now.
    pub fn stats(&self) -> StorageStats {
        let engine = &self.engine;
        let view = engine.view();
        let memtable_bytes = std::iter::once(&view.memtable)
            .chain(view.frozen.iter().map(|(m, _)| m))
            .map(|m| m.size_bytes() as u64)
            .sum();
        let counters = &engine.counters;
        StorageStats {
            wal_fsync: engine.wal.fsyncs.snapshot(),
            rows_written: counters.rows_written.load(Ordering::Relaxed),
            flushes: counters.flushes.load(Ordering::Relaxed),
            compactions: counters.compactions.load(Ordering::Relaxed),
            memtable_bytes,
            segments: view.segments.values().map(|s| s.len() as u64).sum(),
        }
    }
}

impl Engine {
    fn open(fs: Arc<dyn FileSystem>, dir: PathBuf, options: Options) -> Result<Engine> {
        let wal_dir = dir.join("wal");
        let segment_dir = dir.join("segments");
        for d in [&dir, &wal_dir, &segment_dir] {
            fs.create_dir_all(d).map_err(|e| StorageError::io(d, e))?;
        }
        let manifest = Manifest::load(fs.as_ref(), &dir)?.unwrap_or_else(Manifest::empty);
        remove_orphans(fs.as_ref(), &dir, &segment_dir, &wal_dir, &manifest)?;

        let memtable = Arc::new(Memtable::new());
        let mut dropped = HashMap::new();
        let mut catalogs = vec![(0, Arc::new(manifest.catalog.clone()))];
        let mut row_ids = manifest.next_row_ids.clone();
        let mut max_ts = manifest.max_ts;
        let start = Lsn {
            file: manifest.wal_file,
            offset: 0,
        };
        let progress = options.recovery_progress.clone().unwrap_or_default();
        let replayed = wal::replay(fs.as_ref(), &wal_dir, start, &progress, |lsn, payload| {
            let at = || wal_dir.join(format!("{:020}.wal", lsn.file));
            let record = record::decode(payload)
                .map_err(|d| StorageError::corruption("WAL record", at(), lsn.offset, d))?;
            if record.ts <= max_ts {
                let detail = format!("commit timestamp {} does not follow {max_ts}", record.ts);
                return Err(StorageError::corruption(
                    "WAL record",
                    at(),
                    lsn.offset,
                    detail,
                ));
            }
            max_ts = record.ts;
            recover_record(record, &memtable, &mut catalogs, &mut row_ids, &mut dropped)
        })?;
        let wal = Wal::resume(fs.clone(), wal_dir, replayed.end.file, replayed.end.offset)?;

        let cache = Arc::new(Cache::new(options.cache_bytes));
        let mut segments: HashMap<TableId, Vec<Arc<Segment>>> = HashMap::new();
        for meta in &manifest.segments {
            let segment = Segment::new(meta.clone(), &segment_dir, fs.clone(), cache.clone());
            segments
                .entry(meta.table)
                .or_default()
                .push(Arc::new(segment));
        }
        let next_table_id = latest(&catalogs).next_table_id().max(1);
        Ok(Engine {
            fs,
            dir,
            segment_dir,
            options,
            wal,
            commit: Mutex::new(CommitState {
                next_ts: max_ts + 1,
            }),
            clock: Clock::new(max_ts),
            view: RwLock::new(Arc::new(View {
                memtable,
                frozen: Vec::new(),
                segments,
                dropped,
            })),
            catalogs: RwLock::new(catalogs),
            row_ids: Mutex::new(row_ids),
            next_table_id: AtomicU64::new(next_table_id),
            cache,
            manifest: Mutex::new(manifest),
            flushing: Mutex::new(()),
            compacting: Mutex::new(()),
            snapshots: Mutex::new(BTreeMap::new()),
            pins: Mutex::new(HashMap::new()),
            signal: Arc::new(Signal::default()),
            counters: Counters::default(),
            locks: Arc::default(),
        })
    }

    /// The catalog as of timestamp `ts`.
    pub(crate) fn catalog_at(&self, ts: u64) -> Arc<Catalog> {
        let catalogs = self.catalogs.read().unwrap_or_else(|p| p.into_inner());
        let i = catalogs.partition_point(|(at, _)| *at <= ts);
        // Entry 0 has timestamp 0, so `i >= 1`.
        catalogs[i.saturating_sub(1)].1.clone()
    }

    /// The committed data readers see now.
    pub(crate) fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the view; read-modify-write under its lock, so freezes,
    /// flushes and compactions never lose each other's changes.
    fn update_view(&self, change: impl FnOnce(&mut View)) {
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        let mut next = view.as_ref().clone();
        change(&mut next);
        *view = Arc::new(next);
    }

    /// A snapshot of everything visible now, registered until dropped so
    /// that compaction keeps the versions it sees.
    pub(crate) fn snapshot(self: &Arc<Self>) -> Snapshot {
        let ts = {
            let mut snapshots = lock(&self.snapshots);
            // Read under the registry lock: a horizon computed concurrently
            // either counts this snapshot or is at most its timestamp.
            let ts = self.clock.visible();
            *snapshots.entry(ts).or_insert(0) += 1;
            ts
        };
        // Taken after the timestamp: the view holds every commit up to it.
        let view = self.view();
        let lease = Arc::new(SnapshotLease {
            engine: self.clone(),
            ts,
        });
        Snapshot {
            ts,
            view,
            catalog: self.catalog_at(ts),
            _lease: lease,
        }
    }

    /// The oldest timestamp a live or future snapshot can read at.
    fn horizon(&self) -> u64 {
        let snapshots = lock(&self.snapshots);
        snapshots
            .keys()
            .next()
            .copied()
            .unwrap_or(u64::MAX)
            .min(self.clock.visible())
    }

    /// The newest version of `key` at or below `snapshot` in `view`,
    /// segments in `own_drops` left out.
    pub(crate) fn read(
        view: &View,
        table: TableId,
        key: &[u8],
        snapshot: u64,
        own_drops: &[u64],
    ) -> Result<Option<Visible>> {
        for memtable in view.memtables() {
            if let Some(version) = memtable.get(table, key, snapshot) {
                return Ok(Some(version.row.map_or(Visible::Deleted, Visible::Encoded)));
            }
        }
        for segment in view.live_segments(table, snapshot, own_drops) {
            if let Some(found) = segment.find_to_read(key, snapshot)? {
                return Ok(Some(if found.deleted {
                    Visible::Deleted
                } else {
                    Visible::Segment(segment.clone(), found.row)
                }));
            }
        }
        Ok(None)
    }

    /// Whether a transaction that read at `seen` would lose a write to
    /// `key` to a commit since: a newer version exists.
    pub(crate) fn changed_since(&self, table: TableId, key: &[u8], seen: u64) -> Result<bool> {
        Ok(newest_version(&self.view(), table, key, seen)?.is_some_and(|(ts, _)| ts > seen))
    }

    /// The values of a visible row.
    pub(crate) fn values(def: &TableDef, visible: &Visible) -> Result<Option<Vec<Value>>> {
        match visible {
            Visible::Encoded(bytes) => decode_checked(def, bytes).map(Some),
            Visible::Segment(segment, row) => segment.row(def, *row).map(Some),
            Visible::Deleted => Ok(None),
        }
    }

    /// A table id no other table has had.
    pub(crate) fn next_table_id(&self) -> TableId {
        self.next_table_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The next hidden row id of `table`.
    pub(crate) fn next_row_id(&self, table: TableId) -> i64 {
        let mut row_ids = lock(&self.row_ids);
        let next = row_ids.entry(table).or_insert(1);
        let id = *next;
        *next += 1;
        id
    }

    /// Validates and commits a write set; returns its commit timestamp.
    pub(crate) fn commit(&self, request: CommitRequest<'_>) -> Result<u64> {
        let mut writes = Vec::with_capacity(request.writes.len());
        let (ts, appended, memtable, catalog) = {
            let mut state = lock(&self.commit);
            // Segment drops validate and apply under the manifest lock, so a
            // compaction install cannot merge a segment away in between.
            let _manifest = (!request.drops.is_empty()).then(|| lock(&self.manifest));
            let view = self.view();
            let catalog = self.validate(&view, &request)?;
            let ts = state.next_ts;

            let mut builder = RecordBuilder::new(ts);
            for op in request.catalog_ops {
                builder.catalog(op);
            }
            for drop in request.drops {
                builder.drop_segment(drop.table, drop.segment);
            }
            for (table, key, write) in request.writes {
                match &write.row {
                    Some(row) => builder.put(*table, key, row),
                    None => builder.delete(*table, key),
                }
                writes.push(Write {
                    table: *table,
                    key: key.clone(),
                    row: write.row.clone(),
                });
            }
            let appended = self.wal.append(&builder.finish())?;
            state.next_ts += 1;

            view.memtable.apply(ts, &writes);
            if !request.drops.is_empty() {
                self.update_view(|v| {
                    v.dropped
                        .extend(request.drops.iter().map(|d| (d.segment, ts)))
                });
            }
            if let Some(catalog) = &catalog {
                self.catalogs
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((ts, catalog.clone()));
            }
            (ts, appended, view.memtable.clone(), catalog)
        };

        if self.options.synchronous_commit
            && let Err(error) = self.wal.sync(appended)
        {
            memtable.revert(ts, &writes);
            if !request.drops.is_empty() {
                self.update_view(|v| v.dropped.retain(|_, at| *at != ts));
            }
            if catalog.is_some() {
                self.catalogs
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|(at, _)| *at != ts);
            }
            self.clock.finish(ts);
            return Err(error);
        }
        self.clock.finish(ts);
        self.clock.wait_visible(ts);
        self.counters
            .rows_written
            .fetch_add(writes.len() as u64, Ordering::Relaxed);
        if memtable.size_bytes() >= self.options.memtable_bytes {
            lock(&self.signal.state).flush = true;
            self.signal.wake.notify_all();
        }
        Ok(ts)
    }

    /// Checks a write set against the commits it did not see: the first
    /// committer wins. Returns the new catalog if the transaction changes it.
    fn validate(&self, view: &View, request: &CommitRequest<'_>) -> Result<Option<Arc<Catalog>>> {
        let latest = {
            let catalogs = self.catalogs.read().unwrap_or_else(|p| p.into_inner());
            latest(&catalogs).clone()
        };
        let catalog = if request.catalog_ops.is_empty() {
            None
        } else {
            let mut next = latest.as_ref().clone();
            for op in request.catalog_ops {
                // DDL on a table another transaction changed since ours began
                // would silently undo that change.
                // (A schema operation checks itself against the latest
                // catalog when applied.)
                if let Some(id) = op.table_id()
                    && request.base_catalog.table_by_id(id) != latest.table_by_id(id)
                {
                    let name = latest
                        .table_by_id(id)
                        .map_or_else(|| format!("with id {id}"), |t| t.name.clone());
                    return Err(StorageError::SerializationFailure { table: name });
                }
                next.apply(op)?;
            }
            Some(Arc::new(next))
        };
        let after = catalog.as_ref().unwrap_or(&latest);
        for (table, key, write) in request.writes {
            let Some(def) = after.table_by_id(*table) else {
                return Err(StorageError::SerializationFailure {
                    table: format!("with id {table}"),
                });
            };
            let Some((ts, live)) = newest_version(view, *table, key, write.read_ts)? else {
                continue;
            };
            if ts <= write.read_ts {
                continue;
            }
            if write.kind == WriteKind::Insert && live {
                return Err(unique_violation(def, key));
            }
            return Err(StorageError::SerializationFailure {
                table: def.name.clone(),
            });
        }
        for drop in request.drops {
            if drop_conflicts(view, drop)? {
                let name = after
                    .table_by_id(drop.table)
                    .map_or_else(String::new, |t| t.name.clone());
                return Err(StorageError::SerializationFailure { table: name });
            }
        }
        Ok(catalog)
    }

    /// The background worker's loop.
    fn work(&self) {
        loop {
            let flush = {
                let mut state = lock(&self.signal.state);
                if !state.stop && !state.flush {
                    let timeout = Duration::from_millis(if self.options.synchronous_commit {
                        1000
                    } else {
                        10
                    });
                    state = self
                        .signal
                        .wake
                        .wait_timeout(state, timeout)
                        .map(|(s, _)| s)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                if state.stop {
                    return;
                }
                std::mem::take(&mut state.flush)
            };
            let result = if flush {
                self.flush().and_then(|()| self.compact_due())
            } else {
                self.retire_dropped();
                self.sync_async_commits()
            };
            if let Err(error) = result {
                lock(&self.signal.state).error = Some(error.to_string());
            }
        }
    }

    /// Makes commits that did not wait for the WAL durable. If that fails,
    /// acknowledged commits may be lost: no further write is accepted.
    fn sync_async_commits(&self) -> Result<()> {
        if self.options.synchronous_commit {
            return Ok(());
        }
        let end = self.wal.end();
        self.wal.sync_to(end).inspect_err(|error| {
            self.wal.poison(format!(
                "syncing commits that did not wait for the WAL failed: {error}"
            ));
        })
    }

    /// Freezes the memtable (if it holds anything) and flushes every frozen
    /// memtable, oldest first.
    pub(crate) fn flush(&self) -> Result<()> {
        let _one = lock(&self.flushing);
        self.freeze()?;
        while let Some((memtable, seal)) = self.view().frozen.last().cloned() {
            self.flush_frozen(&memtable, &seal)?;
        }
        Ok(())
    }

    /// Starts a new memtable and WAL file; the old memtable waits for flush.
    fn freeze(&self) -> Result<()> {
        let state = lock(&self.commit);
        let view = self.view();
        if view.memtable.is_empty() {
            return Ok(());
        }
        let next_file = self.wal.rotate()?.file;
        let seal = Seal {
            catalog: self.catalog_at(u64::MAX),
            max_ts: state.next_ts - 1,
            next_row_ids: lock(&self.row_ids).clone(),
            wal_file: next_file,
        };
        let frozen = view.memtable.clone();
        self.update_view(|next| {
            next.frozen.insert(0, (frozen, Arc::new(seal)));
            next.memtable = Arc::new(Memtable::new());
        });
        Ok(())
    }

    /// Writes one frozen memtable into segments and installs them.
    fn flush_frozen(&self, memtable: &Arc<Memtable>, seal: &Seal) -> Result<()> {
        let versions = memtable.versions();
        let mut metas: Vec<SegmentMeta> = Vec::new();
        let mut start = 0;
        while start < versions.len() {
            let table = versions[start].0;
            let end = start
                + versions[start..]
                    .iter()
                    .take_while(|(t, _)| *t == table)
                    .count();
            // Rows of tables dropped by the time of the freeze are not kept.
            if let Some(def) = seal.catalog.table_by_id(table) {
                let id = self.next_segment_id();
                let written = self.write_segment(id, def, &versions[start..end]);
                match written {
                    Ok(meta) => metas.push(meta),
                    Err(error) => {
                        for meta in &metas {
                            let _ = self.fs.remove(&segment_path(&self.segment_dir, meta.id));
                        }
                        return Err(error);
                    }
                }
            }
            start = end;
        }
        self.fs
            .sync_dir(&self.segment_dir)
            .map_err(|e| StorageError::io(&self.segment_dir, e))?;

        let mut manifest = lock(&self.manifest);
        let mut next = manifest.clone();
        next.max_ts = seal.max_ts;
        next.wal_file = seal.wal_file;
        next.catalog = seal.catalog.as_ref().clone();
        next.next_row_ids = seal.next_row_ids.clone();
        next.segments = metas
            .iter()
            .cloned()
            .chain(manifest.segments.iter().cloned())
            .collect();
        // Drops the manifest now covers leave it: after a restart nothing
        // would replay them. The view keeps them for older snapshots.
        let view = self.view();
        let gone: Vec<u64> = view
            .dropped
            .iter()
            .filter(|(_, at)| **at <= seal.max_ts)
            .map(|(id, _)| *id)
            .collect();
        next.segments
            .retain(|s| next.catalog.table_by_id(s.table).is_some() && !gone.contains(&s.id));
        next.store(self.fs.as_ref(), &self.dir)?;
        *manifest = next;

        self.update_view(|view| {
            view.frozen.retain(|(m, _)| !Arc::ptr_eq(m, memtable));
            for meta in metas {
                let segment = Arc::new(Segment::new(
                    meta,
                    &self.segment_dir,
                    self.fs.clone(),
                    self.cache.clone(),
                ));
                view.segments
                    .entry(segment.meta.table)
                    .or_default()
                    .insert(0, segment);
            }
            view.segments.retain(|table, segments| {
                let keep = seal.catalog.table_by_id(*table).is_some();
                if !keep {
                    segments.iter().for_each(|s| s.mark_obsolete());
                }
                keep
            });
        });
        for segment in view
            .segments
            .values()
            .flatten()
            .filter(|s| gone.contains(&s.meta.id))
        {
            segment.mark_obsolete();
        }
        drop(manifest);
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.retire_dropped();
        self.wal.remove_files_before(seal.wal_file)
    }

    /// Lets go of dropped segments no snapshot can read any more and that
    /// the manifest no longer lists.
    fn retire_dropped(&self) {
        let horizon = self.horizon();
        let manifest = lock(&self.manifest);
        self.update_view(|view| {
            let retired: Vec<u64> = view
                .dropped
                .iter()
                .filter(|(id, at)| {
                    **at <= horizon && !manifest.segments.iter().any(|s| s.id == **id)
                })
                .map(|(id, _)| *id)
                .collect();
            for segments in view.segments.values_mut() {
                segments.retain(|s| !retired.contains(&s.meta.id));
            }
            view.dropped.retain(|id, _| !retired.contains(id));
        });
    }

    /// Compacts `table`: its due run of segments, or all of them when
    /// `full`. Returns whether it merged anything.
    pub(crate) fn compact_table(&self, table: TableId, full: bool) -> Result<bool> {
        let _one = lock(&self.compacting);
        let view = self.view();
        // Runs stop before a dropped segment (it leaves whole, not merged)
        // and before one a transaction means to drop.
        let pins = lock(&self.pins).clone();
        let segments: Vec<Arc<Segment>> = view
            .segments(table)
            .iter()
            .take_while(|s| {
                !view.dropped.contains_key(&s.meta.id) && !pins.contains_key(&s.meta.id)
            })
            .cloned()
            .collect();
        let bottom = segments.len() == view.segments(table).len();
        let range = if full {
            (segments.len() >= 2).then_some(0..segments.len())
        } else {
            compaction::pick(&segments)
        };
        let Some(range) = range else {
            return Ok(false);
        };
        let Some(def) = self.catalog_at(u64::MAX).table_by_id(table).cloned() else {
            return Ok(false);
        };
        let run = &segments[range.clone()];
        let id = self.next_segment_id();
        let writer = SegmentWriter::create(self.fs.as_ref(), &self.segment_dir, id, def.clone())?;
        let horizon = self.horizon();
        let bottom = bottom && range.end == segments.len();
        let merged = compaction::merge(&def, run, horizon, bottom, writer, self.fs.as_ref())?;
        self.fs
            .sync_dir(&self.segment_dir)
            .map_err(|e| StorageError::io(&self.segment_dir, e))?;
        self.install_compaction(table, run, merged)
    }

    /// Replaces `run` by `merged` in the manifest and the view.
    fn install_compaction(
        &self,
        table: TableId,
        run: &[Arc<Segment>],
        merged: Option<SegmentMeta>,
    ) -> Result<bool> {
        let run_ids: Vec<u64> = run.iter().map(|s| s.meta.id).collect();
        let mut manifest = lock(&self.manifest);
        let listed: Vec<u64> = manifest
            .segments
            .iter()
            .filter(|s| s.table == table)
            .map(|s| s.id)
            .collect();
        let view = self.view();
        let pins = lock(&self.pins).clone();
        let touched = run_ids
            .iter()
            .any(|id| view.dropped.contains_key(id) || pins.contains_key(id));
        if touched
            || !listed
                .windows(run_ids.len())
                .any(|w| w == run_ids.as_slice())
        {
            // The table was dropped, or a segment of the run was dropped or
            // pinned for dropping since the merge began: installing the merge
            // would bring its rows back.
            if let Some(meta) = merged {
                let _ = self.fs.remove(&segment_path(&self.segment_dir, meta.id));
            }
            return Ok(false);
        }
        let mut next = manifest.clone();
        next.segments = Vec::with_capacity(manifest.segments.len());
        for meta in &manifest.segments {
            if meta.id == run_ids[0] {
                next.segments.extend(merged.clone());
            } else if !run_ids.contains(&meta.id) {
                next.segments.push(meta.clone());
            }
        }
        next.store(self.fs.as_ref(), &self.dir)?;
        *manifest = next;
        let merged = merged.map(|meta| {
            Arc::new(Segment::new(
                meta,
                &self.segment_dir,
                self.fs.clone(),
                self.cache.clone(),
            ))
        });
        self.update_view(|view| {
            if let Some(segments) = view.segments.get_mut(&table) {
                let position = segments
                    .iter()
                    .position(|s| s.meta.id == run_ids[0])
                    .unwrap_or(0);
                segments.retain(|s| !run_ids.contains(&s.meta.id));
                if let Some(merged) = merged {
                    segments.insert(position.min(segments.len()), merged);
                }
            }
        });
        run.iter().for_each(|s| s.mark_obsolete());
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// A segment id never used before.
    fn next_segment_id(&self) -> u64 {
        let mut manifest = lock(&self.manifest);
        manifest.next_segment_id += 1;
        manifest.next_segment_id - 1
    }

    /// Compacts every table whose segments are due.
    fn compact_due(&self) -> Result<()> {
        let tables: Vec<TableId> = self.view().segments.keys().copied().collect();
        for table in tables {
            while self.compact_table(table, false)? {}
        }
        Ok(())
    }

    fn write_segment(
        &self,
        id: u64,
        def: &Arc<TableDef>,
        versions: &[(TableId, crate::memtable::Version)],
    ) -> Result<SegmentMeta> {
        let mut writer =
            SegmentWriter::create(self.fs.as_ref(), &self.segment_dir, id, def.clone())?;
        for (_, version) in versions {
            let values = version
                .row
                .as_ref()
                .map(|row| decode_checked(def, row))
                .transpose()?;
            writer.push(version.key.clone(), version.ts, values.as_deref())?;
        }
        writer.finish()
    }
}

/// The commit timestamp of the newest version of `key` and whether it is a
/// row (not a delete), looking only at data newer than `seen`. A segment
/// dropped after `seen` deleted, at the drop, the keys it held live (a
/// dropped segment alone decided its keys, so those are the rows the drop
/// deleted); its tombstones stay what they were.
fn newest_version(
    view: &View,
    table: TableId,
    key: &[u8],
    seen: u64,
) -> Result<Option<(u64, bool)>> {
    for memtable in view.memtables() {
        if let Some(version) = memtable.get(table, key, u64::MAX) {
            return Ok(Some((version.ts, version.row.is_some())));
        }
    }
    let segments = view.segments(table);
    let drop_since = |s: &Segment| {
        view.dropped
            .get(&s.meta.id)
            .copied()
            .filter(|&at| at > seen)
    };
    // Segments are newest first: once one holds nothing newer than `seen`,
    // neither do the rest, unless one of them was dropped since.
    let any_drop = segments.iter().any(|s| drop_since(s).is_some());
    for segment in segments
        .iter()
        .take_while(|s| any_drop || s.meta.max_ts > seen)
    {
        if view
            .dropped
            .get(&segment.meta.id)
            .is_some_and(|&at| at <= seen)
        {
            continue;
        }
        if let Some(found) = segment.find(key, u64::MAX)? {
            return Ok(Some(match drop_since(segment) {
                Some(at) if !found.deleted => (at, false),
                _ => (found.ts, !found.deleted),
            }));
        }
    }
    Ok(None)
}

/// Whether dropping a segment whole would silently undo a commit the
/// dropping transaction did not see: a key whose visible version (at the
/// drop's snapshot) is a live row of the segment got a newer version since.
/// Keys written since that the segment does not decide (new inserts, rows
/// already deleted) are no conflict, as for a per-row DELETE.
fn drop_conflicts(view: &View, drop: &SegmentDrop) -> Result<bool> {
    let segments = view.segments(drop.table);
    let Some(position) = segments.iter().position(|s| s.meta.id == drop.segment) else {
        // Pinned segments are never compacted, so this is defensive only.
        return Ok(true);
    };
    let segment = &segments[position];
    let (low, high) = (&segment.meta.min_key, &segment.meta.max_key);
    let newer = &segments[..position];
    // Another transaction's drop of the same segment is a newer write too.
    let touched = view.dropped.contains_key(&drop.segment)
        || view
            .memtables()
            .any(|m| m.any_version(drop.table, low, high, |ts| ts > drop.read_ts))
        || newer.iter().any(|s| {
            s.meta.max_ts > drop.read_ts && s.meta.min_key <= *high && *low <= s.meta.max_key
        });
    if !touched {
        return Ok(false);
    }
    let mut batches = segment.scan_keys()?;
    while let Some(key) = batches.next_key()? {
        let Some((ts, _)) = newest_version(view, drop.table, &key, drop.read_ts)? else {
            continue;
        };
        if ts <= drop.read_ts {
            continue;
        }
        // Someone wrote `key` since: a conflict if the segment decided it.
        let decided = match Engine::read(view, drop.table, &key, drop.read_ts, &[])? {
            Some(Visible::Segment(s, _)) => s.meta.id == drop.segment,
            _ => false,
        };
        if decided {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes what a crash can leave behind: a half-written manifest, segment
/// files the manifest does not list, WAL files it already covers.
fn remove_orphans(
    fs: &dyn FileSystem,
    dir: &Path,
    segment_dir: &Path,
    wal_dir: &Path,
    manifest: &Manifest,
) -> Result<()> {
    let listed: std::collections::HashSet<u64> = manifest.segments.iter().map(|s| s.id).collect();
    let names = |d: &Path| fs.list(d).map_err(|e| StorageError::io(d, e));
    for name in names(dir)? {
        if name.starts_with(MANIFEST) && name != MANIFEST {
            let path = dir.join(&name);
            fs.remove(&path).map_err(|e| StorageError::io(&path, e))?;
        }
    }
    for name in names(segment_dir)? {
        if segment_id(&name).is_some_and(|id| !listed.contains(&id)) {
            let path = segment_dir.join(&name);
            fs.remove(&path).map_err(|e| StorageError::io(&path, e))?;
        }
    }
    for name in names(wal_dir)? {
        if wal::file_number(&name).is_some_and(|n| n < manifest.wal_file) {
            let path = wal_dir.join(&name);
            fs.remove(&path).map_err(|e| StorageError::io(&path, e))?;
        }
    }
    for d in [dir, segment_dir, wal_dir] {
        fs.sync_dir(d).map_err(|e| StorageError::io(d, e))?;
    }
    Ok(())
}

/// Applies one replayed commit to the recovering state.
fn recover_record(
    record: record::CommitRecord,
    memtable: &Memtable,
    catalogs: &mut Vec<(u64, Arc<Catalog>)>,
    row_ids: &mut BTreeMap<TableId, i64>,
    dropped: &mut HashMap<u64, u64>,
) -> Result<()> {
    let mut writes = Vec::new();
    let mut catalog: Option<Catalog> = None;
    for op in record.ops {
        match op {
            WalOp::Catalog(op) => {
                let current = catalog.get_or_insert_with(|| latest(catalogs).as_ref().clone());
                current.apply(&op)?;
            }
            WalOp::Put { table, key, row } => {
                note_row_id(
                    catalog.as_ref().unwrap_or(latest(catalogs)),
                    table,
                    &key,
                    row_ids,
                );
                writes.push(Write {
                    table,
                    key,
                    row: Some(row),
                });
            }
            WalOp::Delete { table, key } => writes.push(Write {
                table,
                key,
                row: None,
            }),
            WalOp::DropSegment { segment, .. } => {
                dropped.insert(segment, record.ts);
            }
        }
    }
    memtable.apply(record.ts, &writes);
    if let Some(catalog) = catalog {
        catalogs.push((record.ts, Arc::new(catalog)));
    }
    Ok(())
}

fn latest(catalogs: &[(u64, Arc<Catalog>)]) -> &Arc<Catalog> {
    // The history always starts with a catalog at timestamp 0.
    &catalogs[catalogs.len() - 1].1
}

/// Keeps the next hidden row id of `table` above the key of a replayed row.
fn note_row_id(
    catalog: &Catalog,
    table: TableId,
    key: &[u8],
    row_ids: &mut BTreeMap<TableId, i64>,
) {
    let Some(def) = catalog.table_by_id(table).filter(|def| def.has_row_id()) else {
        return;
    };
    if let Ok(values) = def.key_codec().decode(key)
        && let Some(Value::Int64(id)) = values.first()
    {
        let next = row_ids.entry(table).or_insert(1);
        *next = (*next).max(id.saturating_add(1));
    }
}

/// Keeps segments from compaction while a transaction means to drop them.
#[derive(Debug)]
pub(crate) struct SegmentPins {
    engine: Arc<Engine>,
    segments: Vec<u64>,
}

impl SegmentPins {
    pub(crate) fn new(engine: &Arc<Engine>, segments: Vec<u64>) -> SegmentPins {
        let mut pins = lock(&engine.pins);
        for id in &segments {
            *pins.entry(*id).or_insert(0) += 1;
        }
        SegmentPins {
            engine: engine.clone(),
            segments,
        }
    }
}

impl Drop for SegmentPins {
    fn drop(&mut self) {
        let mut pins = lock(&self.engine.pins);
        for id in &self.segments {
            if let Some(count) = pins.get_mut(id) {
                *count -= 1;
                if *count == 0 {
                    pins.remove(id);
                }
            }
        }
    }
}

/// Keeps a snapshot's timestamp registered while anything uses it.
#[derive(Debug)]
pub(crate) struct SnapshotLease {
    engine: Arc<Engine>,
    ts: u64,
}

impl Drop for SnapshotLease {
    fn drop(&mut self) {
        let mut snapshots = lock(&self.engine.snapshots);
        if let Some(count) = snapshots.get_mut(&self.ts) {
            *count -= 1;
            if *count == 0 {
                snapshots.remove(&self.ts);
            }
        }
    }
}

/// What a committing transaction hands to the engine.
pub(crate) struct CommitRequest<'a> {
    /// The catalog the transaction's DDL started from.
    pub base_catalog: &'a Catalog,
    pub catalog_ops: &'a [CatalogOp],
    pub writes: &'a [(TableId, Bytes, PendingWrite)],
    pub drops: &'a [SegmentDrop],
}

/// A segment a transaction deletes whole.
#[derive(Clone, Debug)]
pub(crate) struct SegmentDrop {
    pub table: TableId,
    pub segment: u64,
    /// The snapshot the drop was decided on.
    pub read_ts: u64,
    /// The segment itself: its live rows at `read_ts` are what it deletes.
    pub source: Arc<Segment>,
}

/// The unique-violation error for `key` in `def`, with the key spelled out.
/// A key value as an error message shows it (PostgreSQL's text for the
/// common key types).
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => if *b { "t" } else { "f" }.into(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Float32(v) => v.to_string(),
        Value::Float64(v) => v.to_string(),
        Value::Text(v) | Value::Json(v) => v.clone(),
        Value::Numeric { unscaled, scale } if *scale > 0 => {
            let digits = format!(
                "{:0>width$}",
                unscaled.unsigned_abs(),
                width = *scale as usize + 1
            );
            let (whole, fraction) = digits.split_at(digits.len() - *scale as usize);
            let sign = if *unscaled < 0 { "-" } else { "" };
            format!("{sign}{whole}.{fraction}")
        }
        Value::Numeric { unscaled, .. } => unscaled.to_string(),
        other => format!("{other:?}"),
    }
}

pub(crate) fn unique_violation(def: &TableDef, key: &[u8]) -> StorageError {
    let columns: Vec<&str> = def
        .key_positions()
        .into_iter()
        .map(|i| def.columns[i].name.as_str())
        .collect();
    let values = match def.key_codec().decode(key) {
        Ok(values) => values.iter().map(shown).collect(),
        Err(_) => vec![format!("{key:?}")],
    };
    StorageError::UniqueViolation {
        // An index table is named after its constraint.
        constraint: match def.index_of {
            Some(_) => def.name.clone(),
            None => def.primary_key_name(),
        },
        key: format!("Key ({})=({})", columns.join(", "), values.join(", ")),
    }
}

#[cfg(test)]
mod model_tests;

#[cfg(test)]
mod crash_tests;
