//! OmenDB's SQL layer (not built yet).
//!
//! ```text
//!   SQL text + params (from the server, through a query-handler trait)
//!          |
//!          v
//!   parse -> plan -> execute on Apache DataFusion
//!          |   table providers over storage snapshots,
//!          |   primary-key predicates pushed into the learned index
//!          v
//!   omendb-storage
//! ```
//!
//! It will own the DataFusion session, the table providers, DML,
//! transactions and PostgreSQL functions. It never speaks a wire protocol.
