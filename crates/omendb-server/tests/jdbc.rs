//! End to end: pgjdbc (Debian's `libpostgresql-jdbc-java`, which
//! `.ci/run` installs) against the `omendb` binary, running
//! `tests/clients/JdbcClient.java` with Java's single-file launcher: the
//! driver's metadata calls, prepared statements (server-side after five
//! runs), result metadata and errors. The same program passes against
//! PostgreSQL 15.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, run_client, scratch};

const DRIVER: &str = "/usr/share/java/postgresql.jar";

#[test]
fn pgjdbc_reads_metadata_and_runs_prepared_statements() {
    let dir = scratch("jdbc");
    let server = Server::start(&dir);
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/JdbcClient.java");
    let mut command = Command::new("java");
    command.args(["-cp", DRIVER, program]);
    run_client(&server, command, "Java 17 and libpostgresql-jdbc-java");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
