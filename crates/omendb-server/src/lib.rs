//! OmenDB's server: it puts the SQL engine in front of clients.
//!
//! ```text
//!   psql / drivers (PostgreSQL wire)
//!                 |
//!   pg: connections, sessions, the simple query flow
//!                 |
//!   QueryHandler trait of omendb-sql
//! ```
//!
//! Protocol code calls the SQL handler trait and never reaches into
//! storage; only the binary (`main.rs`) opens the database. Built so far:
//! the PostgreSQL protocol's startup (trust) and simple query flow. HTTP,
//! metrics, the extended protocol, COPY, authentication and TLS are to come.

pub mod pg;
