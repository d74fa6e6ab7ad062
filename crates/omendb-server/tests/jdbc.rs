//! End to end: pgjdbc (Debian's `libpostgresql-jdbc-java`, which
//! `.ci/run` installs) against the `omendb` binary, running
//! `tests/clients/JdbcClient.java` with Java's single-file launcher: the
//! driver's metadata calls, prepared statements (server-side after five
//! runs), result metadata and errors. The same program passes against
//! PostgreSQL 15.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, scratch};

const DRIVER: &str = "/usr/share/java/postgresql.jar";

#[test]
fn pgjdbc_reads_metadata_and_runs_prepared_statements() {
    let dir = scratch("jdbc");
    let server = Server::start(&dir);
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/JdbcClient.java");
    let output = Command::new("java")
        .args(["-cp", DRIVER, program])
        .arg(server.port.to_string())
        .output()
        .expect("java runs (Java 17 and libpostgresql-jdbc-java)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "{stdout}\n{stderr}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
