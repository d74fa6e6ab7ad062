//! End to end: PostgreSQL's own benchmark client, unmodified. `pgbench -i`
//! (COPY ... WITH (FREEZE on), VACUUM, ALTER TABLE ADD PRIMARY KEY, its
//! catalog queries), then a short select-only run with prepared
//! statements.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, scratch};

fn pgbench(server: &Server, args: &[&str]) -> (String, String, bool) {
    let output = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "omendb", "-p"])
        .arg(server.port.to_string())
        .args(args)
        .arg("omendb")
        .output()
        .unwrap();
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
        output.status.success(),
    )
}

#[test]
fn pgbench_initializes_and_runs_select_only_without_errors() {
    let dir = scratch("pgbench");
    let server = Server::start(&dir);
    let (_, err, ok) = pgbench(&server, &["-i", "-s", "1"]);
    assert!(ok, "{err}");
    assert!(err.contains("creating primary keys..."), "{err}");
    let (out, _, _) = server.psql(&[
        "SELECT count(*) FROM pgbench_accounts",
        "SELECT count(*) FROM pgbench_branches",
        "SELECT conname FROM pg_constraint WHERE conrelid = 'pgbench_accounts'::regclass",
    ]);
    assert_eq!(out, "100000\n1\npgbench_accounts_pkey\n");

    let (out, err, ok) = pgbench(
        &server,
        &["-S", "-M", "prepared", "-c", "2", "-j", "2", "-T", "2"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("number of failed transactions: 0 "), "{out}");
    assert!(server.stop().success());
}
