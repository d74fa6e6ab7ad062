//! End to end: psycopg 3 (Python) against the `omendb` binary, running
//! `tests/clients/psycopg_client.py`. `.ci/run` installs psycopg.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, run_client, scratch};

#[test]
fn psycopg_binds_parameters_prepares_and_sees_settings_and_errors() {
    let dir = scratch("psycopg");
    let server = Server::start(&dir);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/psycopg_client.py"
    );
    let mut command = Command::new("python3");
    command.arg(script);
    run_client(
        &server,
        command,
        "python3 with psycopg 3: pip install 'psycopg[binary]'",
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
