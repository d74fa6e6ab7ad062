//! End to end: SQLAlchemy's PostgreSQL dialect introspecting the `omendb`
//! binary, running `tests/clients/sqlalchemy_client.py` (the same script
//! passes against PostgreSQL 15). `.ci/run` installs SQLAlchemy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, scratch};

#[test]
fn sqlalchemy_reflects_tables_columns_and_constraints() {
    let dir = scratch("sqlalchemy");
    let server = Server::start(&dir);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/sqlalchemy_client.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(server.port.to_string())
        .output()
        .expect("python3 runs (pip install sqlalchemy 'psycopg[binary]')");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "{stdout}\n{stderr}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
