//! End to end: PostgreSQL's own benchmark client, unmodified. `pgbench -i`
//! (COPY ... WITH (FREEZE on), VACUUM, ALTER TABLE ADD PRIMARY KEY, its
//! catalog queries), a short select-only run with prepared statements,
//! and short runs of the default tpcb-like script (simple and prepared),
//! whose concurrent updates of one branch row must all wait their turn:
//! no failures, and every balance adds up to the history's deltas.

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
fn pgbench_initializes_and_runs_select_only_and_tpcb_like_without_errors() {
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

    // -n: pgbench's own vacuum step would truncate the history between
    // the runs, and the balances could no longer be checked against it.
    for mode in ["simple", "prepared"] {
        let args = ["-n", "-M", mode, "-c", "4", "-j", "2", "-T", "3"];
        let (out, err, ok) = pgbench(&server, &args);
        assert!(ok, "{mode}: {err}");
        assert!(
            out.contains("number of failed transactions: 0 "),
            "{mode}: {out}"
        );
    }
    let (out, _, _) = server.psql(&[
        "SELECT count(*) > 0 FROM pgbench_history",
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history)",
        "SELECT (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(delta) FROM pgbench_history)",
        "SELECT (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(delta) FROM pgbench_history)",
    ]);
    assert_eq!(out, "t\nt\nt\nt\n", "a lost or doubled update");
    assert!(server.stop().success());
}
