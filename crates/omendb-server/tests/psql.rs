//! End to end: the `omendb` binary on a free port, driven by `psql`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, scratch};

#[test]
fn psql_runs_statements_sees_errors_with_sqlstates_and_data_survives_a_restart() {
    let dir = scratch("psql");
    let server = Server::start(&dir);
    let (out, err, ok) = server.psql(&[
        "CREATE TABLE readings (device int, ts timestamp, cpu float8, PRIMARY KEY (device, ts))",
        "INSERT INTO readings VALUES (1, '2026-01-01 00:00:00', 0.5), (1, '2026-01-01 00:00:10', NULL), (2, '2026-01-01 00:00:00', 1.25)",
        "SELECT device, count(*), sum(cpu) FROM readings GROUP BY device ORDER BY device",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "CREATE TABLE\nINSERT 0 3\n1|2|0.5\n2|1|1.25\n");

    // Errors carry their SQLSTATE; one in a block fails the block until
    // ROLLBACK; several statements in one Query run in order.
    let (out, err, _) = server.psql(&[
        "SELECT * FROM nope",
        "BEGIN; SELECT 1/0",
        "SELECT 1",
        "ROLLBACK; SELECT 'after', NULL IS NULL",
        "",
    ]);
    assert!(err.contains("ERROR:  42P01"), "{err}");
    assert!(err.contains("ERROR:  22012"), "{err}");
    assert!(err.contains("ERROR:  25P02"), "{err}");
    assert!(out.ends_with("after|t\n"), "{out}");

    assert!(server.stop().success(), "SIGTERM exits 0");
    let server = Server::start(&dir);
    let (out, err, ok) = server.psql(&["SELECT count(*) FROM readings"]);
    assert!(ok, "{err}");
    assert_eq!(out, "3\n");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_bytes_close_that_connection_and_the_server_serves_others() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    let dir = scratch("bad-bytes");
    let server = Server::start(&dir);
    let garbage: [&[u8]; 4] = [
        // Not a startup packet at all.
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // A startup packet claiming 2 GiB.
        &[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
        // A truncated startup packet, then the end of the stream.
        &[0, 0, 0, 40, 0, 3, 0, 0, b'u', b's'],
        // A negative length.
        &[0xff, 0xff, 0xff, 0xf0, 0, 3, 0, 0],
    ];
    for bytes in garbage {
        let mut socket = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        socket.write_all(bytes).unwrap();
        socket.shutdown(std::net::Shutdown::Write).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // The server answers (an error) or not, then closes: the read
        // ends rather than timing out.
        let mut answer = Vec::new();
        socket
            .read_to_end(&mut answer)
            .unwrap_or_else(|e| panic!("after {bytes:?}: {e}"));
        let (out, err, ok) = server.psql(&["SELECT 1"]);
        assert!(ok && out == "1\n", "after {bytes:?}: {out} {err}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_loopback_address_is_refused_without_authentication() {
    let dir = scratch("refuse");
    let output = Command::new(env!("CARGO_BIN_EXE_omendb"))
        .args(["serve", "--pg-listen", "0.0.0.0:0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("refusing to listen on 0.0.0.0"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_file_sets_json_logs_and_the_slow_statement_threshold() {
    let dir = scratch("config");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("omendb.toml");
    std::fs::write(&config, "log_format = \"json\"\nslow_query_ms = 1\n").unwrap();
    let log_path = dir.join("log.jsonl");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server::start_logging(
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
        log.into(),
    );
    let slow = "SELECT count(*) FROM generate_series(1, 3000000)";
    let (out, err, ok) = server.psql(&[slow]);
    assert!(ok && out == "3000000\n", "{out} {err}");
    assert!(server.stop().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let slow_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "slow statement")
        .unwrap_or_else(|| panic!("no slow statement in {log}"));
    assert_eq!(slow_line["fields"]["sql"], slow);
    assert_eq!(slow_line["fields"]["protocol"], "pg");
    assert!(slow_line["fields"]["ms"].as_u64().unwrap() >= 1);
    assert!(lines.iter().any(|l| l["fields"]["message"] == "serving"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn psql_describes_tables_schemas_databases_and_roles() {
    let dir = scratch("psql-describe");
    let server = Server::start(&dir);
    let (out, err, ok) = server.psql(&[
        "CREATE SCHEMA s",
        "CREATE TABLE s.readings (device int, ts timestamptz, cpu float8 DEFAULT 0, label varchar(10), PRIMARY KEY (device, ts), UNIQUE (label))",
        "CREATE TABLE notes (body text)",
        "\\dt",
        "\\dt s.*",
        "\\d s.readings",
        "\\l",
        "\\dn",
        "\\du",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "CREATE SCHEMA\nCREATE TABLE\nCREATE TABLE\n\
         public|notes|table|omendb\n\
         s|readings|table|omendb\n\
         device|integer||not null|\n\
         ts|timestamp with time zone||not null|\n\
         cpu|double precision|||0\n\
         label|character varying(10)|||\n\
         omendb|omendb|UTF8|C|C||libc|\n\
         public|omendb\ns|omendb\n\
         omendb|Superuser, Create role, Create DB, Replication, Bypass RLS|\n"
    );
    // Out of tuples-only mode `\d` also lists the indexes.
    let output = Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-U",
            "omendb",
            "-d",
            "omendb",
            "-p",
        ])
        .arg(server.port.to_string())
        .args(["-c", "\\d s.readings", "-c", "\\d nosuch"])
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(out.contains("Table \"s.readings\""), "{out}");
    assert!(
        out.contains("\"readings_pkey\" PRIMARY KEY, btree (device, ts)"),
        "{out}"
    );
    assert!(
        out.contains("\"readings_label_key\" UNIQUE CONSTRAINT, btree (label)"),
        "{out}"
    );
    assert!(
        err.contains("Did not find any relation named \"nosuch\""),
        "{err}"
    );

    // Sizes count the segments on disk: none before a flush, some after
    // (a restart flushes).
    let (out, err, ok) = server.psql(&[
        "INSERT INTO notes SELECT 'note ' || x FROM generate_series(1, 1000) AS g(x)",
        "SELECT pg_total_relation_size('notes'), pg_size_pretty(10240::bigint)",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "INSERT 0 1000\n0|10 kB\n");
    assert!(server.stop().success());
    let server = Server::start(&dir);
    let (out, err, ok) = server.psql(&[
        "SELECT pg_total_relation_size('notes') > 0, pg_database_size('omendb') >= pg_table_size('s.readings')",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "t|t\n");
    assert!(server.stop().success());
}
