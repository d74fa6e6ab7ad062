//! End to end: the extended query protocol, driven by tokio-postgres
//! (Parse/Describe for parameter types, binary parameters and results,
//! portals fetched a few rows at a time, errors and transaction status).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::time::{Duration, SystemTime};

use common::{Server, scratch};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

async fn connect(server: &Server) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=omendb dbname=omendb",
            server.port
        ),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
}

/// One row of every column type: k, b, s, n, r, d, name, data, at.
type Values = (
    i32,
    bool,
    i16,
    i64,
    f32,
    f64,
    &'static str,
    &'static [u8],
    SystemTime,
);

fn sqlstate(error: &tokio_postgres::Error) -> &str {
    error
        .code()
        .unwrap_or_else(|| panic!("no SQLSTATE: {error:?}"))
        .code()
}

#[tokio::test]
async fn prepared_statements_take_and_give_every_type_in_binary() {
    let dir = scratch("extended-types");
    let server = Server::start(&dir);
    let client = connect(&server).await;
    client
        .batch_execute(
            "CREATE TABLE t (k int PRIMARY KEY, b bool, s smallint, n bigint, r real, \
             d float8, name text, data bytea, at timestamp, at_tz timestamptz)",
        )
        .await
        .unwrap();

    // The server tells the client each parameter's type: the column's.
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .await
        .unwrap();
    assert_eq!(
        insert.params(),
        &[
            Type::INT4,
            Type::BOOL,
            Type::INT2,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::TEXT,
            Type::BYTEA,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ
        ]
    );
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_767_225_600_123_456);
    let before_2000 = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
    let rows: [Values; 2] = [
        (1, true, -3, 1 << 40, 1.5, -0.125, "héllo", b"\x00\xff", at),
        (2, false, 7, -1, 0.0, 1e300, "", b"", before_2000),
    ];
    for (k, b, s, n, r, d, name, data, when) in rows {
        let written = client
            .execute(
                &insert,
                &[&k, &b, &s, &n, &r, &d, &name, &data, &when, &when],
            )
            .await
            .unwrap();
        assert_eq!(written, 1);
    }
    client
        .execute("INSERT INTO t (k) VALUES ($1)", &[&3i32])
        .await
        .unwrap();

    // Results come back in binary; NULLs as None.
    let select = client
        .prepare("SELECT k, b, s, n, r, d, name, data, at, at_tz FROM t WHERE k = $1")
        .await
        .unwrap();
    let types: Vec<Type> = select.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(types[..4], [Type::INT4, Type::BOOL, Type::INT2, Type::INT8]);
    for (k, b, s, n, r, d, name, data, when) in rows {
        let row = client.query_one(&select, &[&k]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), k);
        assert_eq!(row.get::<_, bool>(1), b);
        assert_eq!(row.get::<_, i16>(2), s);
        assert_eq!(row.get::<_, i64>(3), n);
        assert_eq!(row.get::<_, f32>(4), r);
        assert_eq!(row.get::<_, f64>(5), d);
        assert_eq!(row.get::<_, &str>(6), name);
        assert_eq!(row.get::<_, &[u8]>(7), data);
        assert_eq!(row.get::<_, SystemTime>(8), when);
        assert_eq!(row.get::<_, SystemTime>(9), when);
    }
    let row = client.query_one(&select, &[&3i32]).await.unwrap();
    assert_eq!(row.get::<_, Option<bool>>(1), None);
    assert_eq!(row.get::<_, Option<&str>>(6), None);

    // The same values as the simple protocol's text.
    let text = client
        .simple_query("SELECT b, r, d, data, at FROM t WHERE k = 1")
        .await
        .unwrap();
    let SimpleQueryMessage::Row(row) = &text[1] else {
        panic!("{text:?}")
    };
    let values: Vec<_> = (0..5).map(|i| row.get(i).unwrap()).collect();
    assert_eq!(
        values,
        [
            "t",
            "1.5",
            "-0.125",
            "\\x00ff",
            "2026-01-01 00:00:00.123456"
        ]
    );

    // Parameters typed by a cast, and one left for the server to decide.
    let row = client
        .query_one("SELECT $1::bigint + 1, $2::text || 'b'", &[&41i64, &"a"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, &str>(1), "ab");

    // RETURNING and SHOW give rows through the extended protocol too.
    let row = client
        .query_one("UPDATE t SET n = n + 1 WHERE k = $1 RETURNING n", &[&2i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>("n"), 0);
    let row = client.query_one("SHOW search_path", &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "\"$user\", public");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn portals_send_rows_a_few_at_a_time() {
    let dir = scratch("extended-portals");
    let server = Server::start(&dir);
    let mut client = connect(&server).await;
    client
        .batch_execute(
            "CREATE TABLE n (k int PRIMARY KEY); \
             INSERT INTO n SELECT * FROM generate_series(1, 5000)",
        )
        .await
        .unwrap();
    let statement = client
        .prepare("SELECT k FROM n WHERE k > $1 ORDER BY k")
        .await
        .unwrap();
    let txn = client.transaction().await.unwrap();
    let portal = txn.bind(&statement, &[&2i32]).await.unwrap();
    // 4998 rows, fetched 2,000 at a time: 2000, 2000, 998, then none.
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let rows = txn.query_portal(&portal, 2000).await.unwrap();
        sizes.push(rows.len());
        if rows.is_empty() {
            break;
        }
        seen.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
    }
    assert_eq!(sizes, [2000, 2000, 998, 0]);
    assert_eq!(seen, (3..=5000).collect::<Vec<i32>>());
    txn.commit().await.unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn errors_carry_sqlstates_and_fail_the_block_until_rollback() {
    let dir = scratch("extended-errors");
    let server = Server::start(&dir);
    let mut client = connect(&server).await;
    client
        .batch_execute("CREATE TABLE kv (k int PRIMARY KEY, v text)")
        .await
        .unwrap();

    let error = client.prepare("SELEC 1").await.unwrap_err();
    assert_eq!(sqlstate(&error), "42601");
    let error = client.prepare("SELECT * FROM nope").await.unwrap_err();
    assert_eq!(sqlstate(&error), "42P01");
    let error = client.prepare("SELECT 1; SELECT 2").await.unwrap_err();
    assert_eq!(sqlstate(&error), "42601");
    let error = client
        .query_one("SELECT 10 / $1", &[&0i64])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "22012");
    let insert = client
        .prepare("INSERT INTO kv VALUES ($1, $2)")
        .await
        .unwrap();
    client.execute(&insert, &[&1i32, &"one"]).await.unwrap();
    let error = client
        .execute(&insert, &[&1i32, &"again"])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "23505");

    // The connection goes on after each error; in a block, an error fails
    // it: statements are refused (25P02) until ROLLBACK.
    let txn = client.transaction().await.unwrap();
    txn.execute(&insert, &[&2i32, &"two"]).await.unwrap();
    let error = txn.execute(&insert, &[&1i32, &"dup"]).await.unwrap_err();
    assert_eq!(sqlstate(&error), "23505");
    let error = txn.query("SELECT k FROM kv", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&error), "25P02");
    txn.rollback().await.unwrap();
    let rows = client.query("SELECT k, v FROM kv", &[]).await.unwrap();
    let rows: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, [(1, "one".to_string())]);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn catalog_oids_arrive_as_the_oid_type_in_both_formats() {
    let dir = scratch("extended-oids");
    let server = Server::start(&dir);
    let client = connect(&server).await;
    client
        .batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)")
        .await
        .unwrap();
    // Binary results: tokio-postgres reads an `oid` as a u32.
    let statement = client
        .prepare("SELECT c.oid, a.atttypid FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.relname = $1 ORDER BY a.attnum")
        .await
        .unwrap();
    assert_eq!(statement.columns()[0].type_(), &Type::OID);
    let rows = client.query(&statement, &[&"t"]).await.unwrap();
    let types: Vec<u32> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(types, vec![20, 25], "bigint, text");
    let oid: u32 = rows[0].get(0);
    // Text results: the same OID, and `::regclass` finds it by name.
    let messages = client
        .simple_query("SELECT 't'::regclass::oid, pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = 't'::regclass")
        .await
        .unwrap();
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .expect("one row");
    assert_eq!(row.get(0), Some(oid.to_string().as_str()));
    assert_eq!(
        row.get(1),
        Some("CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)")
    );
    // Arrays, binary: int2[] and int2vector decode as lists; text arrays too.
    let row = client
        .query_one(
            "SELECT c.conkey, i.indkey, current_schemas(true) FROM pg_constraint c \
             JOIN pg_index i ON i.indexrelid = c.conindid WHERE c.conrelid = $1",
            &[&oid],
        )
        .await
        .unwrap();
    assert_eq!(row.columns()[1].type_(), &Type::INT2_VECTOR);
    let (conkey, indkey): (Vec<i16>, Vec<i16>) = (row.get(0), row.get(1));
    assert_eq!((conkey, indkey), (vec![1], vec![1]));
    let schemas: Vec<String> = row.get(2);
    assert_eq!(schemas, vec!["pg_catalog", "public"]);
    assert!(server.stop().success());
}
