//! End to end: psycopg 3 (Python) against the `omendb` binary, running
//! `tests/clients/psycopg_client.py`. `.ci/run` installs psycopg.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, scratch};

#[test]
fn psycopg_binds_parameters_prepares_and_sees_settings_and_errors() {
    let dir = scratch("psycopg");
    let server = Server::start(&dir);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/psycopg_client.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(server.port.to_string())
        .output()
        .expect("python3 runs (psycopg 3: pip install 'psycopg[binary]')");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "{stdout}\n{stderr}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
