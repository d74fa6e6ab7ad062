//! The engines the storage benchmark compares, behind one small trait so
//! that each workload is written once.
//!
//! Both store `readings (device_id, ts, cpu, mem)` keyed by
//! `(device_id, ts)`, commit durably (fsync before a commit returns) and
//! get the same memory for cached data.

mod omendb;
mod sqlite;

use std::path::Path;

pub use self::omendb::OmenDb;
pub use self::sqlite::Sqlite;
use crate::timeseries::Reading;

/// Any benchmark failure; the benchmark reports it and stops.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
pub type BenchResult<T> = Result<T, BenchError>;

/// The table every engine creates.
pub const TABLE: &str = "readings";

/// A database under test. Sessions are per thread, like connections.
pub trait Store: Sync {
    /// The engine's name in reports: `omendb` or `sqlite`.
    fn name(&self) -> &'static str;
    /// A new session (a connection).
    fn session(&self) -> BenchResult<Box<dyn Session>>;
    /// Moves recent writes to the engine's read-optimized form: OmenDB
    /// flushes its memtable into segments, SQLite checkpoints its WAL.
    fn settle(&self) -> BenchResult<()>;
    /// A line about the engine's state, for the report.
    fn describe(&self) -> String;
}

/// One connection's operations. Every write commits durably.
pub trait Session {
    /// Inserts `rows` in one transaction.
    fn insert_batch(&mut self, rows: &[Reading]) -> BenchResult<()>;
    /// Inserts one row in its own transaction.
    fn insert(&mut self, row: &Reading) -> BenchResult<()>;
    /// Inserts or replaces one row in its own transaction.
    fn upsert(&mut self, row: &Reading) -> BenchResult<()>;
    /// The `cpu` of the row with key `(device, ts)`.
    fn get(&mut self, device: i32, ts: i64) -> BenchResult<Option<f64>>;
    /// Reads `ts, cpu, mem` of `device`'s rows with `from <= ts < to`;
    /// returns how many and the sum of `cpu + mem`.
    fn scan(&mut self, device: i32, from: i64, to: i64) -> BenchResult<(u64, f64)>;
}

/// Opens the store named `name` in a new directory `dir`, caching up to
/// `cache_bytes` of data: OmenDB's segment cache, SQLite's page cache (per
/// connection, as SQLite has it).
pub fn create(name: &str, dir: &Path, cache_bytes: usize) -> BenchResult<Box<dyn Store>> {
    std::fs::create_dir_all(dir)?;
    match name {
        "omendb" => Ok(Box::new(OmenDb::create(dir, cache_bytes)?)),
        "sqlite" => Ok(Box::new(Sqlite::create(dir, cache_bytes)?)),
        _ => Err(format!("unknown engine {name:?}").into()),
    }
}
