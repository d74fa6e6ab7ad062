//! Transactions: a private write set over a snapshot, savepoints, commit.
//!
//! A transaction reads committed data as of its snapshot plus its own
//! writes. Under READ COMMITTED each statement ([`Transaction::begin_statement`])
//! takes a fresh snapshot; under REPEATABLE READ the first statement's
//! snapshot lasts the whole transaction, as in PostgreSQL. Writes stay in
//! the write set until commit, each remembering the snapshot it was made
//! against; at commit, a write to a key that someone else committed after
//! that snapshot fails the transaction (first committer wins).

use std::collections::BTreeMap;

use std::sync::Arc;

use bytes::Bytes;

use crate::catalog::{Catalog, CatalogOp, ColumnSpec, TableDef, TableId};
use crate::db::{CommitRequest, Engine, View, Visible, unique_violation};
use crate::error::{Result, StorageError};
use crate::scan::{BatchScan, KeyRange, RowScan, ScanRequest};
use crate::types::{Value, decode_row, encode_row};

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
    undo: Vec<Undo>,
    savepoints: Vec<(String, usize)>,
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
            undo: Vec::new(),
            savepoints: Vec::new(),
        }
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Marks a statement boundary: under READ COMMITTED the next read or
    /// write takes a fresh snapshot.
    pub fn begin_statement(&mut self) {
        if self.isolation == Isolation::ReadCommitted {
            self.snapshot = None;
        }
    }

    fn snapshot(&mut self) -> &Snapshot {
        self.snapshot.get_or_insert_with(|| {
            let ts = self.engine.clock.visible();
            // Taken after the timestamp: the view holds every commit up to it.
            let view = self.engine.view();
            Snapshot {
                ts,
                view,
                catalog: self.engine.catalog_at(ts),
            }
        })
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

    /// Drops a table and, with it, its rows.
    pub fn drop_table(&mut self, name: &str) -> Result<()> {
        let id = self.table(name)?.id;
        self.change_catalog(CatalogOp::DropTable(id))
    }

    /// Replaces a table's definition, built from the current one with
    /// [`TableDef::with_column_added`] and its siblings.
    pub fn alter_table(&mut self, def: TableDef) -> Result<()> {
        self.change_catalog(CatalogOp::AlterTable(def))
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
        self.write(def.id, key, Some(encoded), WriteKind::Insert);
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
        self.write(def.id, key, Some(encoded), WriteKind::Overwrite);
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
        self.write(
            def.id,
            Bytes::copy_from_slice(key),
            Some(encoded),
            WriteKind::Overwrite,
        );
        Ok(())
    }

    /// Deletes the row under `key`; returns whether one was there.
    pub fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        let def = self.table(table)?;
        let key = Bytes::copy_from_slice(key);
        let existed = self.exists(&def, &key)?;
        if existed {
            self.write(def.id, key, None, WriteKind::Overwrite);
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
        match self.visible(&def, key)? {
            Some(visible) => Engine::values(&def, &visible),
            None => Ok(None),
        }
    }

    /// Rows of `table` in key order within `range`, as this transaction
    /// sees them, one by one.
    pub fn scan(&mut self, table: &str, range: KeyRange) -> Result<RowScan<'_>> {
        let request = ScanRequest {
            range,
            with_keys: true,
            ..ScanRequest::default()
        };
        Ok(RowScan::new(self.scan_batches(table, &request)?))
    }

    /// Rows of `table` as the request asks, as Arrow batches.
    pub fn scan_batches(&mut self, table: &str, request: &ScanRequest) -> Result<BatchScan<'_>> {
        let def = self.table(table)?;
        let snapshot = self.snapshot().clone();
        BatchScan::new(def, &self.writes, snapshot, request)
    }

    /// Where the row under `key` lives for this transaction: own writes
    /// first, then the snapshot.
    fn visible(&mut self, def: &TableDef, key: &[u8]) -> Result<Option<Visible>> {
        if let Some(write) = self.writes.get(&(def.id, Bytes::copy_from_slice(key))) {
            return Ok(Some(
                write.row.clone().map_or(Visible::Deleted, Visible::Encoded),
            ));
        }
        let snapshot = self.snapshot();
        Engine::read(&snapshot.view, def.id, key, snapshot.ts)
    }

    fn exists(&mut self, def: &TableDef, key: &[u8]) -> Result<bool> {
        Ok(matches!(
            self.visible(def, key)?,
            Some(Visible::Encoded(_) | Visible::Segment(..))
        ))
    }

    fn write(&mut self, table: TableId, key: Bytes, row: Option<Bytes>, kind: WriteKind) {
        let read_ts = self.snapshot().ts;
        let slot = (table, key.clone());
        let previous = self.writes.get(&slot).cloned();
        // A key written twice keeps its first kind and snapshot: the
        // conflict check then covers the whole transaction.
        let (kind, read_ts) = previous
            .as_ref()
            .map_or((kind, read_ts), |p| (p.kind, p.read_ts));
        self.writes
            .insert(slot, PendingWrite { row, kind, read_ts });
        self.undo.push(Undo::Write {
            table,
            key,
            previous,
        });
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
                None => break,
            }
        }
        Ok(())
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
    pub fn commit(mut self) -> Result<u64> {
        if self.writes.is_empty() && self.catalog_ops.is_empty() {
            return Ok(self.snapshot.as_ref().map_or(0, |s| s.ts));
        }
        let base_catalog = self.snapshot().catalog.clone();
        let writes: Vec<(TableId, Bytes, PendingWrite)> = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|((t, k), w)| (t, k, w))
            .collect();
        let request = CommitRequest {
            base_catalog: &base_catalog,
            catalog_ops: &self.catalog_ops,
            writes: &writes,
        };
        self.engine.commit(request)
    }

    /// Discards the transaction's writes.
    pub fn rollback(self) {}
}

/// Checks a row against its table and encodes it.
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
