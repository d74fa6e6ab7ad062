//! Bad input gets an error, never a panic: odd statements, and random
//! soups of SQL tokens, against a session with a table in it. After each,
//! the session must still answer a plain query.

#![allow(clippy::unwrap_used)] // A test fails loudly on any unexpected error.

mod common;

use common::Fixture;
use futures::TryStreamExt;
use omendb_sql::{QueryHandler, StatementResult};

/// Runs `sql`, reading any rows to the end, and returns whether every
/// statement succeeded. Panics propagate and fail the test.
async fn run(f: &mut Fixture, sql: &str) -> bool {
    let mut ok = true;
    for result in f.engine.execute(&mut f.session, sql, &[]).await {
        match result {
            Ok(StatementResult::Rows { stream, .. }) => {
                ok &= stream.try_collect::<Vec<_>>().await.is_ok();
            }
            Ok(StatementResult::Command { .. }) => {}
            // Feed a COPY FROM odd data: an error or a count, no panic.
            Ok(StatementResult::CopyIn { .. }) => {
                for data in [&b"1\tx\n\\N"[..], b"\t\\\x00\xff\"\n", b"\n\n"] {
                    ok &= f.engine.copy_data(&mut f.session, data).await.is_ok();
                }
                ok &= f.engine.copy_done(&mut f.session).await.is_ok();
            }
            Ok(StatementResult::CopyOut { data, .. }) => {
                ok &= data.try_collect::<Vec<_>>().await.is_ok();
            }
            Err(error) => {
                // Every error carries a SQLSTATE of five characters.
                assert_eq!(error.class.sqlstate().len(), 5, "{sql}: {error}");
                ok = false;
            }
        }
    }
    ok
}

const ODD: &[&str] = &[
    "",
    ";",
    ";;;",
    "   ",
    "-- only a comment",
    "SELECT",
    "SELECT FROM",
    "SELECT * FROM",
    "SELECT (((((((((((((((((((1)))))))))))))))))))",
    "SELECT 99999999999999999999999999999999999999999999",
    "SELECT -9223372036854775808",
    "SELECT 9223372036854775807 + 1",
    "SELECT 1/0",
    "SELECT 1 % 0",
    "SELECT 'abc'::int",
    "SELECT '2026-13-45'::timestamp",
    "SELECT 'é漢字🙂'",
    "SELECT E'\\xff'",
    "SELECT $1",
    "SELECT $0",
    "SELECT $99999999999",
    "SELECT * FROM t WHERE k = $1",
    "SELECT * FROM nope",
    "COPY t FROM STDIN",
    "COPY t (k, k) FROM STDIN WITH (FORMAT csv, HEADER)",
    "COPY t FROM STDIN WITH (FORMAT binary)",
    "COPY t FROM STDIN WITH (DELIMITER 'ab')",
    "COPY t FROM '/etc/passwd'",
    "COPY nope FROM STDIN",
    "COPY t (nope) FROM STDIN",
    "COPY t TO STDOUT WITH (FORMAT csv, HEADER, NULL 'x', QUOTE '''')",
    "COPY (SELECT 1/0) TO STDOUT",
    "COPY (SELECT 1) FROM STDIN",
    "SELECT nope FROM t",
    "SELECT t.nope.deeper FROM t",
    "SELECT count(*) FROM t GROUP BY 99",
    "SELECT * FROM t ORDER BY 0",
    "SELECT * FROM t LIMIT -1",
    "SELECT * FROM t OFFSET -5",
    "SELECT generate_series(1, 0)",
    "SELECT * FROM generate_series(1, 3, 0)",
    "SELECT repeat('x', -1)",
    "SELECT substr('abc', -5, -1)",
    "SELECT time_bucket('0 seconds', now())",
    "SELECT time_bucket('-1 hour', now())",
    "SELECT date_trunc('nonsense', now())",
    "SELECT first(v, k) FROM t WHERE false",
    "INSERT INTO t VALUES",
    "INSERT INTO t VALUES (1)",
    "INSERT INTO t VALUES (1, 2, 3, 4)",
    "INSERT INTO t (nope) VALUES (1)",
    "INSERT INTO t VALUES (NULL, 'x')",
    "INSERT INTO t VALUES ('not a number', 'x')",
    "INSERT INTO t SELECT * FROM t",
    "UPDATE t SET nope = 1",
    "UPDATE t SET k = NULL",
    "UPDATE t SET v = v, v = v",
    "DELETE FROM nope",
    "DELETE FROM t WHERE k IN (SELECT nope FROM t)",
    "CREATE TABLE t (k int PRIMARY KEY)",
    "CREATE TABLE u (a int, a int)",
    "CREATE TABLE u (a nosuchtype)",
    "CREATE TABLE u (a varchar(-1))",
    "CREATE TABLE u (a numeric(1000, 2000))",
    "CREATE TABLE u (a int PRIMARY KEY, b int PRIMARY KEY)",
    "ALTER TABLE nope ADD COLUMN x int",
    "ALTER TABLE t DROP COLUMN k",
    "ALTER TABLE t RENAME COLUMN nope TO x",
    "DROP TABLE nope",
    "TRUNCATE nope",
    "BEGIN; BEGIN; COMMIT; COMMIT",
    "ROLLBACK TO SAVEPOINT nope",
    "RELEASE SAVEPOINT nope",
    "SAVEPOINT s",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET nope = 1",
    "SET TimeZone = 'Nowhere/Never'",
    "SHOW nope",
    "RESET nope",
    "SELECT current_setting('nope')",
    "SELECT set_config('a', 'b', NULL)",
    "EXPLAIN",
    "EXPLAIN ANALYZE SELECT * FROM nope",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) SELECT count(*) FROM r",
    "COPY t FROM STDIN",
    "CREATE INDEX ON t (v)",
    "GRANT ALL ON t TO nobody",
    "VACUUM",
    "\u{0}",
    "SELECT '\u{0}'",
];

/// Tokens the random statements are made of.
const TOKENS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "t", "k", "v", "(", ")", ",", "*", "+", "-", "/", "=", "<", "AND",
    "OR", "NOT", "NULL", "1", "0", "-1", "'x'", "2.5", "$1", "GROUP", "BY", "ORDER", "LIMIT", "AS",
    "JOIN", "ON", "UNION", "INSERT", "INTO", "VALUES", "UPDATE", "SET", "DELETE", "CASE", "WHEN",
    "THEN", "END", "count", "sum", "::", "int", "text", "IN", "BETWEEN", "IS", "DISTINCT", ";",
];

#[tokio::test]
async fn bad_input_gets_errors_not_panics() {
    let mut f = Fixture::new("no-panics");
    assert!(run(&mut f, "CREATE TABLE t (k int PRIMARY KEY, v text)").await);
    assert!(run(&mut f, "INSERT INTO t VALUES (1, 'a'), (2, 'b')").await);
    let healthy = |rows: Vec<Vec<String>>| rows == vec![vec!["2".to_string()]];
    for sql in ODD {
        run(&mut f, sql).await;
        // Whatever happened, the session recovers.
        run(&mut f, "ROLLBACK").await;
        assert!(
            healthy(f.rows("SELECT count(*) FROM t").await),
            "after {sql:?}"
        );
    }
    // Random token soups from a fixed seed (xorshift).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..400 {
        let len = 1 + next() % 12;
        let sql: Vec<&str> = (0..len)
            .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
            .collect();
        let sql = sql.join(" ");
        run(&mut f, &sql).await;
        run(&mut f, "ROLLBACK").await;
        // Random DML may change the table; the session must still answer.
        assert!(
            !f.rows("SELECT count(*) FROM t").await.is_empty(),
            "after {sql:?}"
        );
    }
}
