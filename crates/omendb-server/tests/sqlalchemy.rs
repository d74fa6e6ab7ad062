//! End to end: SQLAlchemy's PostgreSQL dialect introspecting the `omendb`
//! binary, running `tests/clients/sqlalchemy_client.py` (the same script
//! passes against PostgreSQL 15). `.ci/run` installs SQLAlchemy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, run_client, scratch};

#[test]
fn sqlalchemy_reflects_tables_columns_and_constraints() {
    let dir = scratch("sqlalchemy");
    let server = Server::start(&dir);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/sqlalchemy_client.py"
    );
    let mut command = Command::new("python3");
    command.arg(script);
    run_client(&server, command, "python3 with sqlalchemy and psycopg 3");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
