//! Transactions: a private write set over a snapshot, savepoints, commit.
//!
//! A transaction reads committed data as of its snapshot plus its own
//! writes. Under READ COMMITTED each statement ([`Transaction::begin_statement`])
//! takes a fresh snapshot; under REPEATABLE READ the first statement's
//! snapshot lasts the whole transaction, as in PostgreSQL. Writes stay in
//! the write set until commit, each remembering the snapshot it was made
//! against; at commit, a write to a key that someone else committed after
//! that snapshot fails the transaction (first committer wins).
//!
//! An overwrite or delete also locks its row until the transaction ends
//! ([`locks`]). A row locked by another transaction, or changed by a commit
//! the statement's snapshot did not see, stops the write: under READ
//! COMMITTED the caller rolls the statement back, waits for the holder
//! ([`Transaction::take_restart`]) and runs the statement again at a new
//! snapshot, so that concurrent updates of one row queue up instead of
//! failing, as in PostgreSQL.

use std::collections::BTreeMap;

use std::sync::Arc;

use bytes::Bytes;

use crate::catalog::{Catalog, CatalogOp, ColumnSpec, TableDef, TableId, UniqueIndex};
use crate::db::{
    CommitRequest, Engine, SegmentDrop, SegmentPins, SnapshotLease, View, Visible, unique_violation,
};
use crate::error::{Result, StorageError};
use crate::scan::{BatchScan, KeyRange, RowScan, ScanRequest};
use crate::segment::Segment;
use crate::types::{Value, compare, decode_row, encode_row};

pub(crate) mod locks;

use locks::{HeldLocks, Lock, LockWait};

/// Isolation levels. PostgreSQL's SERIALIZABLE is the SQL layer's to map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Isolation {
    #[default]
    ReadCommitted,
    RepeatableRead,
}

/// How a write treats a concurrent commit to the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// A new key: a concurrent insert of it is a unique violation.
    Insert,
    /// Replaces or deletes what the snapshot saw: a concurrent write is a
    /// serialization failure.
    Overwrite,
}

/// A write waiting for commit.
#[derive(Clone, Debug)]
pub(crate) struct PendingWrite {
    /// The encoded row, or `None` for a delete.
    pub row: Option<Bytes>,
    pub kind: WriteKind,
    /// The snapshot the write was made against.
    pub read_ts: u64,
}

/// A row with its encoded primary key (the hidden row id for tables
/// without one).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: Bytes,
    pub values: Vec<Value>,
}

#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub ts: u64,
    pub view: Arc<View>,
    pub catalog: Arc<Catalog>,
    /// Keeps `ts` registered, so compaction keeps what it reads.
    pub _lease: Arc<SnapshotLease>,
}

#[derive(Debug)]
enum Undo {
    Write {
        table: TableId,
        key: Bytes,
        previous: Option<PendingWrite>,
    },
    Catalog {
        ops: usize,
        catalog: Option<Arc<Catalog>>,
    },
    Drops {
        len: usize,
    },
}

/// A frozen read-only view of a transaction; see [`Transaction::reader`].
#[derive(Clone, Debug)]
pub struct TxnReader {
    catalog: Arc<Catalog>,
    snapshot: Snapshot,
    writes: Arc<BTreeMap<(TableId, Bytes), PendingWrite>>,
    drops: Vec<SegmentDrop>,
}

impl TxnReader {
    /// A reader of `snapshot` alone: a transaction that has written nothing.
    pub(crate) fn of_snapshot(snapshot: Snapshot) -> TxnReader {
        TxnReader {
            catalog: snapshot.catalog.clone(),
            snapshot,
            writes: Arc::default(),
            drops: Vec::new(),
        }
    }

    /// The table named `name`, as the transaction saw it.
    pub fn table(&self, name: &str) -> Result<Arc<TableDef>> {
        self.catalog.table(name).cloned()
    }

    /// The catalog the transaction saw.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The row whose key columns hold `key`, as the transaction saw it:
    /// the point read of [`Transaction::get`] (a segment's row file, not a
    /// scan).
    pub fn get(&self, table: &str, key: &[Value]) -> Result<Option<Vec<Value>>> {
        let def = self.table(table)?;
        let key = encode_key(&def, key)?;
        match visible(&self.writes, &self.drops, &self.snapshot, &def, &key)? {
            Some(found) => Engine::values(&def, &found),
            None => Ok(None),
        }
    }

    /// The smallest and largest value of the first key column over the
    /// table's segments, and the versions they hold: where a caller may cut
    /// a scan into parts of similar size. Recent writes (the memtable) are
    /// not counted. `None` without segments.
    pub fn segment_key_span(&self, table: &str) -> Result<Option<(Value, Value, u64)>> {
        let def = self.table(table)?;
        let first = |key: &[u8]| -> Result<Value> {
            let values = def.key_codec().decode(key).map_err(|detail| {
                StorageError::corruption("segment key", format!("table {}", def.name), 0, detail)
            })?;
            values
                .into_iter()
                .next()
                .ok_or_else(|| StorageError::internal("a segment key without columns"))
        };
        let less = |a: &Value, b: &Value| compare(a, b) == Some(std::cmp::Ordering::Less);
        let mut span: Option<(Value, Value, u64)> = None;
        for segment in self
            .snapshot
            .view
            .live_segments(def.id, self.snapshot.ts, &[])
        {
            let (low, high) = (first(&segment.meta.min_key)?, first(&segment.meta.max_key)?);
            let rows = segment.meta.rows;
            span = Some(match span {
                None => (low, high, rows),
                Some((l, h, n)) => (
                    if less(&low, &l) { low } else { l },
                    if less(&h, &high) { high } else { h },
                    n + rows,
                ),
            });
        }
        Ok(span)
    }

    /// The bytes on disk of the segments the snapshot reads for the table
    /// with id `table` (what `pg_table_size` reports; recent writes, in
    /// the WAL and the memtable, are not counted).
    pub fn segment_bytes(&self, table: TableId) -> u64 {
        self.snapshot
            .view
            .live_segments(table, self.snapshot.ts, &[])
            .map(|segment| segment.disk_bytes())
            .sum()
    }

    /// Rows of `table` as the request asks, as the transaction saw them.
    pub fn scan_batches(&self, table: &str, request: &ScanRequest) -> Result<BatchScan> {
        let def = self.table(table)?;
        let own_drops: Vec<SegmentDrop> = self
            .drops
            .iter()
            .filter(|d| d.table == def.id)
            .cloned()
            .collect();
        BatchScan::new(
            def,
            &self.writes,
            self.snapshot.clone(),
            request,
            &own_drops,
        )
    }
}

/// The version of `key` that a transaction with these writes, segment
/// drops and snapshot sees.
fn visible(
    writes: &BTreeMap<(TableId, Bytes), PendingWrite>,
    drops: &[SegmentDrop],
    snapshot: &Snapshot,
    def: &TableDef,
    key: &[u8],
) -> Result<Option<Visible>> {
    // A read-only transaction has nothing to look up (and copy the key for).
    let own = (!writes.is_empty())
        .then(|| writes.get(&(def.id, Bytes::copy_from_slice(key))))
        .flatten();
    if let Some(write) = own {
        return Ok(Some(
            write.row.clone().map_or(Visible::Deleted, Visible::Encoded),
        ));
    }
    // Rows this transaction's segment drops decided stay deleted for it,
    // whatever committed since (the commit then fails on the conflict).
    for drop in drops.iter().filter(|d| d.table == def.id) {
        if drop
            .source
            .find(key, drop.read_ts)?
            .is_some_and(|found| !found.deleted)
        {
            return Ok(Some(Visible::Deleted));
        }
    }
    let own_ids: Vec<u64> = drops.iter().map(|d| d.segment).collect();
    Engine::read(&snapshot.view, def.id, key, snapshot.ts, &own_ids)
}

/// A transaction. Dropping it without commit rolls it back.
#[derive(Debug)]
pub struct Transaction {
    engine: Arc<Engine>,
    isolation: Isolation,
    snapshot: Option<Snapshot>,
    /// The transaction's own catalog once it ran DDL.
    catalog: Option<Arc<Catalog>>,
    catalog_ops: Vec<CatalogOp>,
    writes: BTreeMap<(TableId, Bytes), PendingWrite>,
    /// The snapshot of the first write stays registered until the end:
    /// compaction then keeps every version newer than any write's
    /// snapshot, which the commit's conflict check needs (under READ
    /// COMMITTED the statement's own snapshot is long gone by then).
    write_lease: Option<Arc<SnapshotLease>>,
    /// Segments deleted whole by this transaction, and the pins that keep
    /// compaction off them until it ends.
    drops: Vec<SegmentDrop>,
    pins: Vec<SegmentPins>,
    undo: Vec<Undo>,
    savepoints: Vec<(String, usize)>,
    /// The rows this transaction locked; released when it is dropped.
    locks: Option<HeldLocks>,
    /// Set when a write stopped for a locked or changed row.
    restart: Option<StatementRestart>,
}

/// Where a statement began in its transaction: what
/// [`Transaction::rollback_statement`] undoes to.
#[derive(Clone, Copy, Debug)]
pub struct StatementMark(usize);

/// A statement stopped by a row another transaction holds or changed: roll
/// it back, [`wait`](StatementRestart::wait), begin the statement again.
#[derive(Debug)]
pub struct StatementRestart {
    wait: Option<LockWait>,
}

impl StatementRestart {
    /// Completes when the transaction holding the row has ended (at once
    /// when the row was changed by a commit that has already ended).
    pub async fn wait(self) {
        if let Some(wait) = self.wait {
            wait.await;
        }
    }

    /// [`wait`](StatementRestart::wait), blocking the thread.
    pub fn wait_blocking(self) {
        if let Some(wait) = self.wait {
            wait.wait_blocking();
        }
    }
}

impl Transaction {
    pub(crate) fn new(engine: Arc<Engine>, isolation: Isolation) -> Transaction {
        Transaction {
            engine,
            isolation,
            snapshot: None,
            catalog: None,
            catalog_ops: Vec::new(),
            writes: BTreeMap::new(),
            write_lease: None,
            drops: Vec::new(),
            pins: Vec::new(),
            undo: Vec::new(),
            savepoints: Vec::new(),
            locks: None,
            restart: None,
        }
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Marks a statement boundary: under READ COMMITTED the next read or
    /// write takes a fresh snapshot.
    pub fn begin_statement(&mut self) {
        self.restart = None;
        if self.isolation == Isolation::ReadCommitted {
            self.snapshot = None;
        }
    }

    fn snapshot(&mut self) -> &Snapshot {
        let engine = &self.engine;
        self.snapshot.get_or_insert_with(|| engine.snapshot())
    }

    /// The catalog this transaction sees: its snapshot's plus its own DDL.
    pub fn catalog(&mut self) -> Arc<Catalog> {
        match &self.catalog {
            Some(own) => own.clone(),
            None => self.snapshot().catalog.clone(),
        }
    }

    /// The table named `name`.
    pub fn table(&mut self, name: &str) -> Result<Arc<TableDef>> {
        self.catalog().table(name).cloned()
    }

    fn change_catalog(&mut self, op: CatalogOp) -> Result<()> {
        let mut next = self.catalog().as_ref().clone();
        next.apply(&op)?;
        self.undo.push(Undo::Catalog {
            ops: self.catalog_ops.len(),
            catalog: self.catalog.take(),
        });
        self.catalog = Some(Arc::new(next));
        self.catalog_ops.push(op);
        Ok(())
    }

    /// Creates a table. `primary_key` names its key columns; none gives the
    /// table a hidden row id.
    pub fn create_table(
        &mut self,
        name: &str,
        columns: Vec<ColumnSpec>,
        primary_key: &[&str],
    ) -> Result<Arc<TableDef>> {
        if self.catalog().table(name).is_ok() {
            return Err(StorageError::DuplicateTable { table: name.into() });
        }
        let def = TableDef::new(self.engine.next_table_id(), name, columns, primary_key)?;
        self.change_catalog(CatalogOp::CreateTable(def))?;
        self.table(name)
    }

    /// Creates a schema (tables go into it as `schema.table`).
    pub fn create_schema(&mut self, name: &str) -> Result<()> {
        self.change_catalog(CatalogOp::CreateSchema(name.into()))
    }

    /// Drops a schema that holds no tables.
    pub fn drop_schema(&mut self, name: &str) -> Result<()> {
        self.change_catalog(CatalogOp::DropSchema(name.into()))
    }

    /// Drops a table and, with it, its rows and unique constraints.
    pub fn drop_table(&mut self, name: &str) -> Result<()> {
        let def = self.table(name)?;
        for unique in &def.unique {
            self.change_catalog(CatalogOp::DropTable(unique.table))?;
        }
        self.change_catalog(CatalogOp::DropTable(def.id))
    }

    /// Replaces a table's definition, built from the current one with
    /// [`TableDef::with_column_added`] and its siblings. Unique constraints
    /// the new definition no longer has are dropped; new ones come only
    /// through [`Self::add_unique`].
    pub fn alter_table(&mut self, def: TableDef) -> Result<()> {
        let current = self.catalog().table_by_id(def.id).cloned();
        let Some(current) = current else {
            return Err(StorageError::UndefinedTable { table: def.name });
        };
        let kept = |u: &UniqueIndex| def.unique.iter().any(|d| d.table == u.table);
        if def.unique.iter().any(|d| !current.unique.contains(d)) {
            return Err(StorageError::invalid(
                "unique constraints are added with add_unique",
            ));
        }
        for unique in current.unique.iter().filter(|u| !kept(u)) {
            self.change_catalog(CatalogOp::DropTable(unique.table))?;
        }
        self.change_catalog(CatalogOp::AlterTable(def))
    }

    /// Gives `table`, keyed by its hidden row id, the primary key
    /// `columns` (NOT NULL from now on): the table is made again under the
    /// new key, with its rows, columns and unique constraints, so a NULL
    /// or a repeated key fails the transaction as an insert would.
    pub fn add_primary_key(&mut self, table: &str, columns: &[&str]) -> Result<()> {
        let def = self.table(table)?;
        if !def.has_row_id() {
            return Err(StorageError::invalid(format!(
                "table \"{table}\" has a primary key already"
            )));
        }
        let rows: Vec<Row> = self.scan(table, KeyRange::all())?.collect::<Result<_>>()?;
        let specs = def
            .columns
            .iter()
            .map(|c| ColumnSpec {
                name: c.name.clone(),
                data_type: c.data_type.clone(),
                nullable: c.nullable,
                default: c.default.clone(),
            })
            .collect();
        let uniques: Vec<(String, Vec<String>)> = def
            .unique
            .iter()
            .map(|u| {
                let names = def
                    .unique_positions(u)
                    .into_iter()
                    .map(|p| def.columns[p].name.clone())
                    .collect();
                (u.name.clone(), names)
            })
            .collect();
        self.drop_table(table)?;
        self.create_table(table, specs, columns)?;
        for row in rows {
            self.insert(table, row.values)?;
        }
        for (name, columns) in uniques {
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            self.add_unique(table, &name, &columns)?;
        }
        Ok(())
    }

    /// Adds the unique constraint `name` on `columns` of `table`, indexing
    /// the rows it has (a unique violation if two share their values).
    pub fn add_unique(&mut self, table: &str, name: &str, columns: &[&str]) -> Result<()> {
        let def = self.table(table)?;
        if def.unique.iter().any(|u| u.name == name) {
            return Err(StorageError::DuplicateTable { table: name.into() });
        }
        let index = def.unique_index(self.engine.next_table_id(), name, columns)?;
        let unique = UniqueIndex {
            name: name.into(),
            columns: columns
                .iter()
                .map(|c| def.column(c).map(|c| c.id))
                .collect::<Result<_>>()?,
            table: index.id,
        };
        let mut next = def.as_ref().clone();
        next.unique.push(unique.clone());
        self.change_catalog(CatalogOp::CreateTable(index))?;
        self.change_catalog(CatalogOp::AlterTable(next))?;
        let rows: Vec<Row> = self.scan(table, KeyRange::all())?.collect::<Result<_>>()?;
        for row in rows {
            let index = self.index_def(&unique)?;
            if let Some(entry) = index_entry(&def, &unique, &index, &row.key, &row.values)? {
                self.add_index_entry(&index, entry)?;
            }
        }
        Ok(())
    }

    /// The index table of `unique`.
    fn index_def(&mut self, unique: &UniqueIndex) -> Result<Arc<TableDef>> {
        self.catalog()
            .table_by_id(unique.table)
            .cloned()
            .ok_or_else(|| StorageError::internal(format!("no index table for {}", unique.name)))
    }

    /// Fails unless `entry` is free in `index` for this transaction.
    fn check_index_entry(&mut self, index: &TableDef, entry: &IndexEntry) -> Result<()> {
        match self.exists(index, &entry.key)? {
            true => Err(unique_violation(index, &entry.key)),
            false => Ok(()),
        }
    }

    fn add_index_entry(&mut self, index: &TableDef, entry: IndexEntry) -> Result<()> {
        self.check_index_entry(index, &entry)?;
        self.write(index.id, entry.key, Some(entry.row), WriteKind::Insert)
    }

    /// Moves `def`'s index entries from `old` (a row stored under `key`,
    /// if there was one) to `new` (if there is one). Every new entry is
    /// checked before anything is written, so a violation changes nothing.
    fn reindex(
        &mut self,
        def: &TableDef,
        key: &[u8],
        old: Option<&[Value]>,
        new: Option<&[Value]>,
    ) -> Result<()> {
        // Per index whose entry changes: the entry to remove, the one to add.
        let mut changes = Vec::new();
        for unique in &def.unique {
            let index = self.index_def(unique)?;
            let entry = |row: Option<&[Value]>| match row {
                Some(row) => index_entry(def, unique, &index, key, row),
                None => Ok(None),
            };
            let (gone, added) = (entry(old)?, entry(new)?);
            if gone.as_ref().map(|e| &e.key) != added.as_ref().map(|e| &e.key) {
                changes.push((index, gone, added));
            }
        }
        for (index, _, added) in &changes {
            if let Some(entry) = added {
                self.check_index_entry(index, entry)?;
            }
        }
        for (index, gone, added) in changes {
            if let Some(entry) = gone {
                self.write(index.id, entry.key, None, WriteKind::Overwrite)?;
            }
            if let Some(entry) = added {
                self.write(index.id, entry.key, Some(entry.row), WriteKind::Insert)?;
            }
        }
        Ok(())
    }

    /// The values of the row under `key`, as this transaction sees it.
    fn current_row(&mut self, def: &TableDef, key: &[u8]) -> Result<Option<Vec<Value>>> {
        match self.visible(def, key)? {
            Some(visible) => Engine::values(def, &visible),
            None => Ok(None),
        }
    }

    /// Inserts a row (one value per column); a row with the same key is a
    /// unique violation.
    pub fn insert(&mut self, table: &str, row: Vec<Value>) -> Result<()> {
        let def = self.table(table)?;
        let encoded = encode_checked(&def, &row)?;
        let key = if def.has_row_id() {
            encode_key(&def, &[Value::Int64(self.engine.next_row_id(def.id))])?
        } else {
            key_of(&def, &row)?
        };
        if self.exists(&def, &key)? {
            return Err(unique_violation(&def, &key));
        }
        self.reindex(&def, &key, None, Some(&row))?;
        self.write(def.id, key, Some(encoded), WriteKind::Insert)?;
        Ok(())
    }

    /// Inserts the row, or replaces the row with the same key.
    pub fn upsert(&mut self, table: &str, row: Vec<Value>) -> Result<()> {
        let def = self.table(table)?;
        if def.has_row_id() {
            return Err(StorageError::invalid(format!(
                "table \"{table}\" has no primary key to upsert on"
            )));
        }
        let encoded = encode_checked(&def, &row)?;
        let key = key_of(&def, &row)?;
        if !def.unique.is_empty() {
            let old = self.current_row(&def, &key)?;
            self.reindex(&def, &key, old.as_deref(), Some(&row))?;
        }
        self.write(def.id, key, Some(encoded), WriteKind::Overwrite)?;
        Ok(())
    }

    /// Replaces the row stored under `key` (as [`Row::key`] gives it) with
    /// `row`, whose own key columns must encode to the same key.
    pub fn update(&mut self, table: &str, key: &[u8], row: Vec<Value>) -> Result<()> {
        let def = self.table(table)?;
        let encoded = encode_checked(&def, &row)?;
        if !def.has_row_id() && key_of(&def, &row)? != key {
            return Err(StorageError::invalid(
                "update changes the primary key: delete and insert instead",
            ));
        }
        if !def.unique.is_empty() {
            let old = self.current_row(&def, key)?;
            self.reindex(&def, key, old.as_deref(), Some(&row))?;
        }
        self.write(
            def.id,
            Bytes::copy_from_slice(key),
            Some(encoded),
            WriteKind::Overwrite,
        )?;
        Ok(())
    }

    /// Deletes the row under `key`; returns whether one was there.
    pub fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        let def = self.table(table)?;
        let key = Bytes::copy_from_slice(key);
        let existed = self.exists(&def, &key)?;
        if existed {
            if !def.unique.is_empty() {
                let old = self.current_row(&def, &key)?;
                self.reindex(&def, &key, old.as_deref(), None)?;
            }
            self.write(def.id, key, None, WriteKind::Overwrite)?;
        }
        Ok(existed)
    }

    /// The encoded key of the given key column values (or of the hidden
    /// row id), for [`Self::get`], [`Self::update`] and [`Self::delete`].
    pub fn key(&mut self, table: &str, key: &[Value]) -> Result<Bytes> {
        let def = self.table(table)?;
        encode_key(&def, key)
    }

    /// The row under `key`, as this transaction sees it.
    pub fn get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<Value>>> {
        let def = self.table(table)?;
        self.current_row(&def, key)
    }

    /// The key of the row of `table` whose columns of the unique
    /// constraint `constraint` hold `values`, as this transaction sees it.
    pub fn find_unique(
        &mut self,
        table: &str,
        constraint: &str,
        values: &[Value],
    ) -> Result<Option<Bytes>> {
        let def = self.table(table)?;
        let Some(unique) = def.unique.iter().find(|u| u.name == constraint) else {
            return Err(StorageError::UndefinedTable {
                table: constraint.into(),
            });
        };
        let index = self.index_def(unique)?;
        if values.iter().any(Value::is_null) {
            return Ok(None);
        }
        let key = encode_key(&index, values)?;
        Ok(self
            .current_row(&index, &key)?
            .and_then(|row| match row.last() {
                Some(Value::Bytes(key)) => Some(Bytes::copy_from_slice(key)),
                _ => None,
            }))
    }

    /// Rows of `table` in key order within `range`, as this transaction
    /// sees them, one by one.
    pub fn scan(&mut self, table: &str, range: KeyRange) -> Result<RowScan> {
        let request = ScanRequest {
            range,
            with_keys: true,
            ..ScanRequest::default()
        };
        Ok(RowScan::new(self.scan_batches(table, &request)?))
    }

    /// Rows of `table` as the request asks, as Arrow batches.
    pub fn scan_batches(&mut self, table: &str, request: &ScanRequest) -> Result<BatchScan> {
        let def = self.table(table)?;
        let snapshot = self.snapshot().clone();
        let own_drops = self.own_drops(def.id);
        BatchScan::new(def, &self.writes, snapshot, request, &own_drops)
    }

    /// A read-only view of the transaction as it stands: its snapshot (this
    /// statement's, under READ COMMITTED), its catalog and a copy of its
    /// writes. It scans as the transaction would now, however long it
    /// lives, and never sees the transaction's later writes: what a
    /// statement's scans need, since a statement does not see its own
    /// changes and a query engine may run a scan late or more than once.
    pub fn reader(&mut self) -> TxnReader {
        let snapshot = self.snapshot().clone();
        TxnReader {
            catalog: self.catalog(),
            snapshot,
            writes: Arc::new(self.writes.clone()),
            drops: self.drops.clone(),
        }
    }

    /// The segments of `table` this transaction drops whole.
    fn own_drops(&self, table: TableId) -> Vec<SegmentDrop> {
        self.drops
            .iter()
            .filter(|d| d.table == table)
            .cloned()
            .collect()
    }

    /// Deletes every row of `table` in `range`, as this transaction sees
    /// them; returns how many. Cold segments wholly inside the range are
    /// dropped whole at commit instead of getting a tombstone per row:
    /// time-series retention (`DELETE ... WHERE ts < cutoff`) costs one WAL
    /// entry per segment. A segment is dropped whole only if, at this
    /// snapshot, nothing newer covers any of its keys (so it alone decides
    /// them) and nothing older lies under them (its tombstones go with it);
    /// its live rows then are exactly the rows the drop deletes.
    pub fn delete_range(&mut self, table: &str, range: KeyRange) -> Result<u64> {
        let def = self.table(table)?;
        if !def.unique.is_empty() {
            let everything = matches!(
                (&range.start, &range.end),
                (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
            );
            if everything {
                for unique in &def.unique {
                    let index = self.index_def(unique)?;
                    self.delete_range_of(index, KeyRange::all())?;
                }
            } else {
                let rows: Vec<Row> = self.scan(table, range.clone())?.collect::<Result<_>>()?;
                for row in rows {
                    self.reindex(&def, &row.key, Some(&row.values), None)?;
                }
            }
        }
        self.delete_range_of(def, range)
    }

    /// [`Self::delete_range`] of one table, indexes aside.
    fn delete_range_of(&mut self, def: Arc<TableDef>, range: KeyRange) -> Result<u64> {
        let Some((from, to)) = range.encode(def.key_codec())? else {
            return Ok(0);
        };
        let snapshot = self.snapshot().clone();
        let own_drops = self.own_drops(def.id);
        let own_ids: Vec<u64> = own_drops.iter().map(|d| d.segment).collect();
        let live: Vec<&Arc<Segment>> = snapshot
            .view
            .live_segments(def.id, snapshot.ts, &own_ids)
            .collect();
        let overlaps = |a: &Segment, b: &Segment| {
            a.meta.min_key <= b.meta.max_key && b.meta.min_key <= a.meta.max_key
        };
        // Oldest first, so that `whole` already holds the older candidates.
        let mut whole: Vec<Arc<Segment>> = Vec::new();
        for (i, segment) in live.iter().enumerate().rev() {
            let meta = &segment.meta;
            let inside =
                meta.max_ts <= snapshot.ts && within(&meta.min_key, &meta.max_key, &from, &to);
            let bare = live[i + 1..].iter().all(|older| {
                whole.iter().any(|w| Arc::ptr_eq(w, older)) || !overlaps(older, segment)
            });
            let cold = live[..i].iter().all(|newer| !overlaps(newer, segment))
                && !snapshot.view.memtables().any(|m| {
                    m.any_version(def.id, &meta.min_key, &meta.max_key, |ts| ts <= snapshot.ts)
                });
            if inside && bare && cold {
                whole.push((*segment).clone());
            }
        }
        // An old snapshot can show segments compaction has merged since: pin
        // first, then keep those still current (compaction skips pinned
        // ones from now on); the rest get tombstones like any other rows.
        let pins = SegmentPins::new(&self.engine, whole.iter().map(|s| s.meta.id).collect());
        let current = self.engine.view();
        whole.retain(|s| {
            current.segments(def.id).iter().any(|c| Arc::ptr_eq(c, s))
                && !current.dropped.contains_key(&s.meta.id)
        });
        let request = ScanRequest {
            range,
            columns: Some(Vec::new()),
            ..ScanRequest::default()
        };
        let mut deleted = 0;
        let mut tombstones = Vec::new();
        let mut scan = BatchScan::new(
            def.clone(),
            &self.writes,
            snapshot.clone(),
            &request,
            &own_drops,
        )?;
        while let Some((key, segment)) = scan.next_live_key()? {
            deleted += 1;
            if !segment.is_some_and(|id| whole.iter().any(|w| w.meta.id == id)) {
                tombstones.push(key);
            }
        }
        drop(scan);
        for key in tombstones {
            self.write(def.id, key, None, WriteKind::Overwrite)?;
        }
        if !whole.is_empty() {
            self.pins.push(pins);
            self.undo.push(Undo::Drops {
                len: self.drops.len(),
            });
            let (read_ts, lease) = (snapshot.ts, snapshot._lease.clone());
            self.write_lease.get_or_insert(lease);
            self.drops
                .extend(whole.into_iter().map(|source| SegmentDrop {
                    table: def.id,
                    segment: source.meta.id,
                    read_ts,
                    source,
                }));
        }
        Ok(deleted)
    }

    /// Where the row under `key` lives for this transaction: own writes
    /// first, then the snapshot.
    fn visible(&mut self, def: &TableDef, key: &[u8]) -> Result<Option<Visible>> {
        self.snapshot();
        match &self.snapshot {
            Some(snapshot) => visible(&self.writes, &self.drops, snapshot, def, key),
            None => Err(StorageError::internal("no snapshot after taking one")),
        }
    }

    fn exists(&mut self, def: &TableDef, key: &[u8]) -> Result<bool> {
        Ok(matches!(
            self.visible(def, key)?,
            Some(Visible::Encoded(_) | Visible::Segment(..))
        ))
    }

    fn write(
        &mut self,
        table: TableId,
        key: Bytes,
        row: Option<Bytes>,
        kind: WriteKind,
    ) -> Result<()> {
        let snapshot = self.snapshot();
        let (read_ts, lease) = (snapshot.ts, snapshot._lease.clone());
        self.write_lease.get_or_insert(lease);
        let slot = (table, key.clone());
        let previous = self.writes.get(&slot).cloned();
        // A key written twice keeps its first kind and snapshot, and a key
        // one of this transaction's segment drops deleted counts that
        // delete as its first write: the conflict check then covers the
        // whole transaction.
        let first = match &previous {
            Some(p) => Some((p.kind, p.read_ts)),
            None => self
                .dropped_by_own(table, &key)?
                .map(|at| (WriteKind::Overwrite, at)),
        };
        if first.is_none() && kind == WriteKind::Overwrite {
            self.lock_row(table, &key, read_ts)?;
        }
        let (kind, read_ts) = first.unwrap_or((kind, read_ts));
        self.writes
            .insert(slot, PendingWrite { row, kind, read_ts });
        self.undo.push(Undo::Write {
            table,
            key,
            previous,
        });
        Ok(())
    }

    /// The snapshot of the own segment drop that deleted `key`, if one did.
    /// Locks the row `key` of `table` before its first overwrite, made
    /// against the snapshot at `read_ts`. Under REPEATABLE READ, a row
    /// changed since that snapshot can never be written: that fails now,
    /// as in PostgreSQL, rather than at COMMIT. Under READ COMMITTED the
    /// statement restarts on it (after the holder ends, if one holds it).
    fn lock_row(&mut self, table: TableId, key: &Bytes, read_ts: u64) -> Result<()> {
        let engine = self.engine.clone();
        let held = self.locks.get_or_insert_with(|| engine.locks.holder());
        let stopped = |txn: &mut Transaction, wait: Option<LockWait>| {
            let name = txn.table_name(table);
            txn.restart = Some(StatementRestart { wait });
            Err(StorageError::RowLocked { table: name })
        };
        match engine.locks.lock(held, table, key) {
            Lock::Held => {}
            Lock::Wait(wait) => return stopped(self, Some(wait)),
            Lock::Deadlock => {
                return Err(StorageError::Deadlock {
                    table: self.table_name(table),
                });
            }
        }
        if engine.changed_since(table, key, read_ts)? {
            return match self.isolation {
                Isolation::RepeatableRead => Err(StorageError::SerializationFailure {
                    table: self.table_name(table),
                }),
                Isolation::ReadCommitted => stopped(self, None),
            };
        }
        Ok(())
    }

    fn table_name(&mut self, table: TableId) -> String {
        self.catalog()
            .table_by_id(table)
            .map_or_else(|| format!("with id {table}"), |t| t.name.clone())
    }

    /// Why the last write stopped, when it stopped for a row another
    /// transaction holds or changed ([`StorageError::RowLocked`]).
    pub fn take_restart(&mut self) -> Option<StatementRestart> {
        self.restart.take()
    }

    /// Marks where the next statement begins.
    pub fn statement_mark(&self) -> StatementMark {
        StatementMark(self.undo.len())
    }

    /// Undoes what the transaction did since `mark` (locks stay held).
    pub fn rollback_statement(&mut self, mark: StatementMark) {
        self.undo_to(mark.0);
        self.savepoints.retain(|(_, at)| *at <= mark.0);
    }

    fn dropped_by_own(&self, table: TableId, key: &[u8]) -> Result<Option<u64>> {
        for drop in self.drops.iter().filter(|d| d.table == table) {
            if drop
                .source
                .find(key, drop.read_ts)?
                .is_some_and(|found| !found.deleted)
            {
                return Ok(Some(drop.read_ts));
            }
        }
        Ok(None)
    }

    /// Sets a savepoint (a later one with the same name hides this one).
    pub fn savepoint(&mut self, name: &str) {
        self.savepoints.push((name.into(), self.undo.len()));
    }

    /// Undoes everything since savepoint `name`, which stays set.
    pub fn rollback_to(&mut self, name: &str) -> Result<()> {
        let i = self.find_savepoint(name)?;
        let mark = self.savepoints[i].1;
        self.savepoints.truncate(i + 1);
        self.undo_to(mark);
        Ok(())
    }

    fn undo_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            match self.undo.pop() {
                Some(Undo::Write {
                    table,
                    key,
                    previous,
                }) => match previous {
                    Some(previous) => {
                        self.writes.insert((table, key), previous);
                    }
                    None => {
                        self.writes.remove(&(table, key));
                    }
                },
                Some(Undo::Catalog { ops, catalog }) => {
                    self.catalog_ops.truncate(ops);
                    self.catalog = catalog;
                }
                Some(Undo::Drops { len }) => self.drops.truncate(len),
                None => break,
            }
        }
    }

    /// Forgets savepoint `name` and those set after it; their changes stay.
    pub fn release(&mut self, name: &str) -> Result<()> {
        let i = self.find_savepoint(name)?;
        self.savepoints.truncate(i);
        Ok(())
    }

    fn find_savepoint(&self, name: &str) -> Result<usize> {
        self.savepoints
            .iter()
            .rposition(|(n, _)| n == name)
            .ok_or_else(|| StorageError::invalid(format!("savepoint \"{name}\" does not exist")))
    }

    /// Commits; returns the commit timestamp (the snapshot's for a
    /// transaction that wrote nothing).
    /// Whether committing writes anything (else it is only the end of
    /// the snapshot).
    pub fn writes_anything(&self) -> bool {
        !(self.writes.is_empty() && self.catalog_ops.is_empty() && self.drops.is_empty())
    }

    pub fn commit(mut self) -> Result<u64> {
        if !self.writes_anything() {
            return Ok(self.snapshot.as_ref().map_or(0, |s| s.ts));
        }
        let base_catalog = self.snapshot().catalog.clone();
        // Writes to tables this transaction dropped again go nowhere.
        let own_catalog = self.catalog();
        let writes: Vec<(TableId, Bytes, PendingWrite)> = std::mem::take(&mut self.writes)
            .into_iter()
            .filter(|((t, _), _)| own_catalog.table_by_id(*t).is_some())
            .map(|((t, k), w)| (t, k, w))
            .collect();
        let drops = std::mem::take(&mut self.drops);
        let request = CommitRequest {
            drops: &drops,
            base_catalog: &base_catalog,
            catalog_ops: &self.catalog_ops,
            writes: &writes,
        };
        // The row locks are released when `self` drops, after the commit
        // is visible: a waiter that then locks the row sees the commit.
        self.engine.commit(request)
    }

    /// Discards the transaction's writes.
    pub fn rollback(self) {}
}

/// Whether the keys `min..=max` all lie within `from..to`.
fn within(
    min: &[u8],
    max: &[u8],
    from: &std::ops::Bound<Vec<u8>>,
    to: &std::ops::Bound<Vec<u8>>,
) -> bool {
    use std::ops::Bound;
    let start_ok = match from {
        Bound::Included(f) => min >= f.as_slice(),
        Bound::Excluded(f) => min > f.as_slice(),
        Bound::Unbounded => true,
    };
    let end_ok = match to {
        Bound::Included(t) => max <= t.as_slice(),
        Bound::Excluded(t) => max < t.as_slice(),
        Bound::Unbounded => true,
    };
    start_ok && end_ok
}

/// Checks a row against its table and encodes it.
/// A row's entry in a unique index: its key (the constrained values) and
/// its encoded row (those values and the indexed row's key).
struct IndexEntry {
    key: Bytes,
    row: Bytes,
}

/// The entry of `row`, stored under `key` in `def`, in the index table
/// `index` of `unique`; none when a constrained value is NULL.
fn index_entry(
    def: &TableDef,
    unique: &UniqueIndex,
    index: &TableDef,
    key: &[u8],
    row: &[Value],
) -> Result<Option<IndexEntry>> {
    let mut values: Vec<Value> = def
        .unique_positions(unique)
        .into_iter()
        .map(|i| row[i].clone())
        .collect();
    if values.iter().any(Value::is_null) {
        return Ok(None);
    }
    let index_key = encode_key(index, &values)?;
    values.push(Value::Bytes(key.to_vec()));
    Ok(Some(IndexEntry {
        key: index_key,
        row: encode_checked(index, &values)?,
    }))
}

fn encode_checked(def: &TableDef, row: &[Value]) -> Result<Bytes> {
    if row.len() != def.columns.len() {
        return Err(StorageError::invalid(format!(
            "table \"{}\" has {} columns, the row has {} values",
            def.name,
            def.columns.len(),
            row.len()
        )));
    }
    for (column, value) in def.columns.iter().zip(row) {
        if value.is_null() && !column.nullable {
            return Err(StorageError::NotNullViolation {
                table: def.name.clone(),
                column: column.name.clone(),
            });
        }
        column.data_type.check(value)?;
    }
    let mut out = Vec::with_capacity(16 * row.len());
    encode_row(def.columns.iter().map(|c| c.id).zip(row), &mut out);
    Ok(Bytes::from(out))
}

/// The encoded key of a full row of a table with a primary key.
fn key_of(def: &TableDef, row: &[Value]) -> Result<Bytes> {
    let values: Vec<&Value> = def.key_positions().into_iter().map(|i| &row[i]).collect();
    let mut out = Vec::new();
    def.key_codec().encode(&values, &mut out)?;
    Ok(Bytes::from(out))
}

fn encode_key(def: &TableDef, key: &[Value]) -> Result<Bytes> {
    let mut out = Vec::new();
    def.key_codec()
        .encode(&key.iter().collect::<Vec<_>>(), &mut out)?;
    Ok(Bytes::from(out))
}

/// Decodes a stored row into `def`'s columns: columns added after the row
/// was written take their missing value, dropped ones are skipped.
pub(crate) fn decode_checked(def: &TableDef, bytes: &[u8]) -> Result<Vec<Value>> {
    let stored = decode_row(bytes).map_err(|detail| {
        StorageError::corruption("row", format!("table {}", def.name), 0, detail)
    })?;
    let mut values: Vec<Value> = def.columns.iter().map(|c| c.missing.clone()).collect();
    for (id, value) in stored {
        if let Some(i) = def.position(id) {
            values[i] = value;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests;
