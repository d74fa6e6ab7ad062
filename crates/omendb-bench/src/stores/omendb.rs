//! OmenDB's storage engine, used directly (no SQL): a transaction per
//! operation, as a SQL statement in autocommit mode would run.

use std::ops::Bound;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use omendb_storage::{
    ColumnSpec, DataType, Database, ErrorKind, Isolation, KeyRange, Options, ScanRequest,
    StorageError, TableId, Transaction, Value,
};

use super::{BenchResult, Reading, Session, Store, TABLE};

#[derive(Debug)]
pub struct OmenDb {
    db: Database,
    table: TableId,
}

impl OmenDb {
    /// Creates the database and its table in `dir`, with default options
    /// (synchronous commit) and the benchmark's cache budget.
    pub fn create(dir: &Path, cache_bytes: usize) -> BenchResult<OmenDb> {
        let options = Options {
            cache_bytes,
            ..Options::default()
        };
        let db = Database::open(dir, options)?;
        let mut txn = db.begin(Isolation::ReadCommitted);
        let columns = vec![
            ColumnSpec::new("device_id", DataType::Int32).not_null(),
            ColumnSpec::new("ts", DataType::Timestamp).not_null(),
            ColumnSpec::new("cpu", DataType::Float64),
            ColumnSpec::new("mem", DataType::Float64),
        ];
        let table = txn.create_table(TABLE, columns, &["device_id", "ts"])?.id;
        txn.commit()?;
        Ok(OmenDb { db, table })
    }

    /// The database, for layers above storage (the SQL benchmark).
    pub fn database(&self) -> &Database {
        &self.db
    }
}

impl Store for OmenDb {
    fn name(&self) -> &'static str {
        "omendb"
    }

    fn session(&self) -> BenchResult<Box<dyn Session>> {
        Ok(Box::new(OmenSession {
            db: self.db.clone(),
        }))
    }

    fn settle(&self) -> BenchResult<()> {
        Ok(self.db.flush()?)
    }

    fn describe(&self) -> String {
        format!("{} segments", self.db.segment_count(self.table))
    }
}

struct OmenSession {
    db: Database,
}

fn row(r: &Reading) -> Vec<Value> {
    vec![
        Value::Int32(r.device),
        Value::Timestamp(r.ts),
        Value::Float64(r.cpu),
        Value::Float64(r.mem),
    ]
}

impl OmenSession {
    /// Runs `op` in a transaction of its own and commits it, again if a
    /// concurrent commit wins a write conflict (as a client retries a
    /// serialization failure).
    fn commit_one(
        &self,
        op: impl Fn(&mut Transaction) -> Result<(), StorageError>,
    ) -> BenchResult<()> {
        loop {
            let mut txn = self.db.begin(Isolation::ReadCommitted);
            match op(&mut txn).and_then(|()| txn.commit()) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::SerializationFailure => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Session for OmenSession {
    fn insert_batch(&mut self, rows: &[Reading]) -> BenchResult<()> {
        let mut txn = self.db.begin(Isolation::ReadCommitted);
        for r in rows {
            txn.insert(TABLE, row(r))?;
        }
        txn.commit()?;
        Ok(())
    }

    fn insert(&mut self, r: &Reading) -> BenchResult<()> {
        self.commit_one(|txn| txn.insert(TABLE, row(r)))
    }

    fn upsert(&mut self, r: &Reading) -> BenchResult<()> {
        self.commit_one(|txn| txn.upsert(TABLE, row(r)))
    }

    fn get(&mut self, device: i32, ts: i64) -> BenchResult<Option<f64>> {
        let mut txn = self.db.begin(Isolation::ReadCommitted);
        let key = txn.key(TABLE, &[Value::Int32(device), Value::Timestamp(ts)])?;
        match txn.get(TABLE, &key)?.as_deref() {
            Some([_, _, Value::Float64(cpu), _]) => Ok(Some(*cpu)),
            Some([_, _, Value::Null, _]) => Ok(Some(0.0)),
            Some(other) => Err(format!("unexpected row {other:?}").into()),
            None => Ok(None),
        }
    }

    fn scan(&mut self, device: i32, from: i64, to: i64) -> BenchResult<(u64, f64)> {
        let mut txn = self.db.begin(Isolation::ReadCommitted);
        let request = ScanRequest {
            range: KeyRange {
                start: Bound::Included(vec![Value::Int32(device), Value::Timestamp(from)]),
                end: Bound::Excluded(vec![Value::Int32(device), Value::Timestamp(to)]),
            },
            columns: Some(vec!["ts".into(), "cpu".into(), "mem".into()]),
            ..ScanRequest::default()
        };
        let (mut rows, mut sum) = (0, 0.0);
        for batch in txn.scan_batches(TABLE, &request)? {
            let batch = batch?;
            let cpu = batch.column(1).as_primitive::<Float64Type>();
            let mem = batch.column(2).as_primitive::<Float64Type>();
            if cpu.null_count() + mem.null_count() == 0 {
                // Row by row, as SQLite's side adds: the checksums must match.
                for (c, m) in cpu.values().iter().zip(mem.values()) {
                    sum += c + m;
                }
            } else {
                // The data set has no NULLs; a NULL would count as 0 in both engines.
                for i in 0..batch.num_rows() {
                    if cpu.is_valid(i) && mem.is_valid(i) {
                        sum += cpu.value(i) + mem.value(i);
                    }
                }
            }
            rows += batch.num_rows() as u64;
        }
        Ok((rows, sum))
    }
}
