//! OmenDB's benchmarks. Each binary measures OmenDB next to its peers in
//! the same run on the same data, and reports medians and ratios: this
//! machine is shared and noisy, so a lone absolute time means little.
//!
//! - `index-bench`: the learned index against `BTreeMap` and binary search.
//! - `storage-bench`: the storage engine against SQLite on a time-series
//!   table.
//! - `sql-bench` (feature `sql`): the SQL layer against SQLite on the same
//!   table.

pub mod datasets;
pub mod scratch;
pub mod stores;
pub mod timeseries;
pub mod timing;
