//! OmenDB's SQL layer: SQL text in, results out, over the storage engine.
//!
//! ```text
//!   SQL text (from the server, through the QueryHandler trait)
//!          |
//!          v
//!   engine: transaction control, DDL and DML over storage;
//!           queries planned and run by Apache DataFusion
//!          |   provider: storage tables read through the
//!          |   session's transaction
//!          v
//!   omendb-storage
//! ```
//!
//! Errors carry a class that maps to a PostgreSQL SQLSTATE (`error.rs`).
//! It never speaks a wire protocol.

mod arith;
mod average;
mod copy;
mod copy_format;
mod ddl;
mod dml;
mod engine;
mod error;
mod handler;
mod insert;
mod interrupt;
mod keywords;
mod names;
mod pg_catalog;
mod pg_syntax;
mod point_dml;
mod prepared;
mod provider;
mod pushdown;
mod schemas;
mod settings;
mod single_row;
mod skip_scan;
mod sum;
mod text;
mod timeseries;
mod types;

/// The DataFusion this crate is built on: its `ScalarValue` parameters and
/// record-batch streams are part of the handler's interface.
pub use datafusion;
pub use engine::{SqlEngine, SqlSession};
pub use error::{ErrorClass, Result, SqlError};
pub use handler::{CopyData, QueryHandler, StatementResult, TransactionStatus};
pub use interrupt::Canceller;
pub use text::{VECTOR_ITEM, pg_text, timestamp_micros};
