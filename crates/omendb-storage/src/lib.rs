//! OmenDB's storage engine: durable, crash-safe HTAP tables.
//!
//! ```text
//!   write set at COMMIT                          snapshot reads (get, scans)
//!          |                                            ^
//!          v                                            |
//!   WAL (group commit, crc32c) -> memtable (MVCC) ------+
//!                                   | flush (freeze)    |
//!                                   v                   |
//!   immutable sorted Parquet segments ------------------+
//!     learned PK index, zone maps; compaction merges them
//! ```
//!
//! [`Database`] opens a directory (recovering from the manifest and the
//! WAL) and begins [`Transaction`]s; every file goes through the
//! [`FileSystem`] trait so tests can inject crashes and I/O errors. Formats:
//! `docs/design/wal-format.md`, `docs/design/segment-format.md`. This crate
//! never depends on tokio or DataFusion.

mod cache;
mod catalog;
mod clock;
mod compaction;
mod db;
mod error;
mod index;
mod io;
mod manifest;
mod memtable;
mod metrics;
mod scan;
mod segment;
#[cfg(test)]
mod test_rng;
mod txn;
mod types;
mod wal;

pub use catalog::{
    Catalog, CatalogOp, ColumnDef, ColumnId, ColumnSpec, PUBLIC_SCHEMA, TableDef, TableId,
    UniqueIndex, name_in_schema, schema_of,
};
pub use db::{Database, Options};
pub use error::{ErrorKind, Result, StorageError};
pub use io::fault::{CrashMode, Fault, FaultFs, Op as FaultOp};
pub use io::{FileSystem, OsFs, ReadFile, WriteFile};
pub use metrics::{Histogram, HistogramSnapshot, LATENCY_BUCKETS, StorageStats};
pub use scan::{BatchScan, CmpOp, KEY_COLUMN, KeyRange, Predicate, RowScan, ScanRequest};
pub use txn::locks::LockWait;
pub use txn::{Isolation, Row, StatementMark, StatementRestart, Transaction, TxnReader};
pub use types::{
    ColumnBuilder, DataType, Interval, KeyCodec, MAX_NUMERIC_PRECISION, Value, compare,
    ordered_u64, value_at,
};
pub use wal::RecoveryProgress;

pub use index::key_encoding;
pub use index::learned::search as last_mile;
pub use index::learned::{
    BuildError, DecodeError, LearnedIndex, LearnedIndexConfig, MAX_EPSILON, MAX_KEYS, SearchWindow,
};
