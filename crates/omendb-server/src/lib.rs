//! OmenDB's server (not built yet).
//!
//! ```text
//!   psql / drivers (PostgreSQL wire)   curl (HTTP JSON)   Prometheus
//!                 \                        |               /
//!                  connections, auth, sessions, limits, metrics
//!                                  |
//!                  query-handler trait of omendb-sql
//! ```
//!
//! It will own the protocols, configuration and the `omendb` binary, and
//! will never reach into storage except through the SQL layer.
