//! OmenDB's server: it puts the SQL engine in front of clients.
//!
//! ```text
//!   psql / drivers (PostgreSQL wire)      curl / apps (HTTP, JSON)
//!                 |                                 |
//!   pg: startup, simple and extended      http: POST /v1/sql,
//!   queries, COPY, cancel                 /health, /ready, /metrics
//!                 |                                 |
//!                 +---- QueryHandler trait of omendb-sql
//! ```
//!
//! Protocol code calls the SQL handler trait and never reaches into
//! storage; only the binary (`main.rs`) opens the database.

pub mod config;
pub mod http;
pub mod metrics;
pub mod pg;
