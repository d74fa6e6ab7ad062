//! End to end: the HTTP API driven with curl: SQL in, JSON (or Arrow IPC)
//! out, errors with their SQLSTATE and a fitting status.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::process::Command;

use common::{Server, scratch};

/// `curl` of `path` (a POST of `body` if given, with `headers`): the
/// status and the body.
fn curl(server: &Server, path: &str, body: Option<&str>, headers: &[&str]) -> (u16, Vec<u8>) {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{}{path}", server.http_port));
    if let Some(body) = body {
        command.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.output().expect("curl runs");
    assert!(output.status.success(), "{output:?}");
    let mut out = output.stdout;
    let split = out.iter().rposition(|&b| b == b'\n').unwrap();
    let status = std::str::from_utf8(&out[split + 1..])
        .unwrap()
        .parse()
        .unwrap();
    out.truncate(split);
    (status, out)
}

fn sql(server: &Server, body: &str) -> (u16, String) {
    let (status, out) = curl(server, "/v1/sql", Some(body), &[]);
    (status, String::from_utf8(out).unwrap())
}

#[test]
fn http_runs_sql_with_parameters_and_reports_errors() {
    let dir = scratch("http");
    let server = Server::start(&dir);
    assert_eq!(curl(&server, "/health", None, &[]), (200, b"ok\n".to_vec()));
    assert_eq!(
        curl(&server, "/ready", None, &[]),
        (200, b"ready\n".to_vec())
    );

    let (status, body) = sql(
        &server,
        r#"{"sql": "CREATE TABLE m (ts timestamp, device int, cpu float8, note text, PRIMARY KEY (device, ts))"}"#,
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"columns":[],"command":"CREATE TABLE","rows":[]}"#)
    );
    let (status, body) = sql(
        &server,
        r#"{"sql": "INSERT INTO m VALUES ($1, $2, $3, $4), ('2026-01-01 00:01:00', 1, 'NaN', NULL)", "params": ["2026-01-01 00:00:00", 1, 0.5, "first"]}"#,
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"columns":[],"command":"INSERT 0 2","rows":[]}"#)
    );
    // Rows come back typed: numbers, NaN as a string, NULL as null,
    // timestamps as PostgreSQL's text.
    let (status, body) = sql(
        &server,
        r#"{"sql": "SELECT ts, device, cpu, note FROM m WHERE device = $1 ORDER BY ts", "params": [1]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"columns":[{"name":"ts","type":"timestamp"},{"name":"device","type":"int4"},{"name":"cpu","type":"float8"},{"name":"note","type":"text"}],"command":"SELECT 2","rows":[["2026-01-01 00:00:00",1,0.5,"first"],["2026-01-01 00:01:00",1,"NaN",null]]}"#
    );

    // Errors: the SQLSTATE, the message, a status by class.
    for (request, code, status) in [
        (r#"{"sql": "SELEC 1"}"#, "42601", 400),
        (r#"{"sql": "SELECT * FROM nope"}"#, "42P01", 400),
        (r#"{"sql": "SELECT 1/0"}"#, "22012", 400),
        (
            r#"{"sql": "INSERT INTO m VALUES ('2026-01-01 00:00:00', 1, 0, '')"}"#,
            "23505",
            409,
        ),
        (
            r#"{"sql": "SELECT * FROM m WHERE device = $1", "params": ["x"]}"#,
            "22P02",
            400,
        ),
        (r#"{"not sql": 1}"#, "42601", 400),
    ] {
        let (got, body) = sql(&server, request);
        assert_eq!(got, status, "{request}: {body}");
        assert!(
            body.starts_with(&format!(r#"{{"error":{{"code":"{code}","message":"#)),
            "{request}: {body}"
        );
    }

    // Arrow IPC when asked for: the stream's magic and the column names.
    let (status, body) = curl(
        &server,
        "/v1/sql",
        Some(r#"{"sql": "SELECT device, cpu FROM m"}"#),
        &["Accept: application/vnd.apache.arrow.stream"],
    );
    assert_eq!(status, 200);
    assert_eq!(&body[..4], &[0xff, 0xff, 0xff, 0xff]);
    assert!(body.windows(6).any(|w| w == b"device"));

    // Metrics count what ran above, by protocol and kind, and the errors
    // by class; storage's counters too.
    let (out, err, ok) = server.psql(&["SELECT 1", "SELECT * FROM nope"]);
    assert!(out == "1\n" && !ok, "{out} {err}");
    let (status, body) = curl(&server, "/metrics", None, &[]);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for line in [
        r#"omendb_statement_duration_seconds_count{protocol="http",kind="insert"} 1"#,
        r#"omendb_statement_duration_seconds_count{protocol="http",kind="select"} 2"#,
        r#"omendb_statement_duration_seconds_count{protocol="http",kind="ddl"} 1"#,
        r#"omendb_statement_duration_seconds_count{protocol="pg",kind="select"} 1"#,
        r#"omendb_errors_total{class="22"} 2"#,
        r#"omendb_errors_total{class="23"} 1"#,
        r#"omendb_errors_total{class="42"} 4"#,
        "omendb_rows_written_total 2",
        "omendb_segments 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("omendb_wal_fsync_duration_seconds_count ")),
        "{text}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
