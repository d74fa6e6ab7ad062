//! Prepared queries: key lookups answered by the fast path (straight from
//! storage) give exactly what DataFusion gives, EXPLAIN says which path a
//! query takes, and kept plans follow changes to their tables.

#![allow(clippy::unwrap_used)] // A test fails loudly on any unexpected error.

mod common;

use common::Fixture;
use datafusion::common::ScalarValue;
use omendb_sql::QueryHandler;

fn int(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}

fn big(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}

/// The EXPLAIN lines of `sql` run with `params`.
async fn explain(f: &mut Fixture, sql: &str, params: &[ScalarValue]) -> String {
    let rows = f.rows_with(&format!("EXPLAIN {sql}"), params).await;
    rows.iter()
        .map(|r| r.join(" | "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn key_lookups_take_the_fast_path_and_answer_as_datafusion_does() {
    let mut f = Fixture::new("prepared-fast");
    f.rows(
        "CREATE TABLE r (device int, ts bigint, v float8, note text, \
         PRIMARY KEY (device, ts))",
    )
    .await;
    // Half the rows in segments, then changes on top in the memtable.
    f.rows(
        "INSERT INTO r SELECT d, t, d * 100 + t, 'n' || t \
         FROM generate_series(0, 4) AS a(d), generate_series(0, 59) AS b(t)",
    )
    .await;
    f.engine.database().flush().unwrap();
    f.rows("UPDATE r SET v = -v WHERE ts % 7 = 0").await;
    f.rows("DELETE FROM r WHERE ts % 11 = 0").await;
    f.rows("INSERT INTO r VALUES (2, 100, 1.5, 'late')").await;

    // (query, parameters, whether the fast path answers it)
    let cases: Vec<(&str, Vec<ScalarValue>, bool)> = vec![
        (
            "SELECT v FROM r WHERE device = $1 AND ts = $2",
            vec![int(2), big(14)],
            true,
        ),
        // A deleted row, and one that never was.
        (
            "SELECT v FROM r WHERE device = $1 AND ts = $2",
            vec![int(2), big(22)],
            true,
        ),
        (
            "SELECT v FROM r WHERE device = $1 AND ts = $2",
            vec![int(9), big(1)],
            true,
        ),
        ("SELECT ts, v FROM r WHERE device = $1", vec![int(2)], true),
        (
            "SELECT ts, note FROM r WHERE device = $1 AND ts >= $2 AND ts < $3",
            vec![int(3), big(10), big(20)],
            true,
        ),
        (
            "SELECT ts FROM r WHERE device = $1 AND ts BETWEEN $2 AND $3",
            vec![int(1), big(50), big(200)],
            true,
        ),
        // Constants, an alias, the column on the right, an int4 parameter
        // for the bigint column.
        (
            "SELECT x.ts AS t, x.v FROM r x WHERE $1 = x.device AND x.ts > 40 AND x.ts <= $2",
            vec![int(4), int(45)],
            true,
        ),
        // An empty range.
        (
            "SELECT ts FROM r WHERE device = $1 AND ts > $2 AND ts < $3",
            vec![int(1), big(30), big(10)],
            true,
        ),
        // A range on the first key column alone.
        (
            "SELECT device, ts FROM r WHERE device > $1",
            vec![int(3)],
            true,
        ),
        // Not key lookups: a range before the last equality, a condition
        // on another column, a second bound on one side.
        (
            "SELECT v FROM r WHERE device > $1 AND ts = $2",
            vec![int(3), big(5)],
            false,
        ),
        (
            "SELECT ts FROM r WHERE device = $1 AND v > $2",
            vec![int(1), ScalarValue::Float64(Some(140.0))],
            false,
        ),
        (
            "SELECT ts FROM r WHERE device = $1 AND ts > $2 AND ts > $3",
            vec![int(1), big(50), big(10)],
            false,
        ),
        // A parameter that does not convert exactly goes to DataFusion.
        (
            "SELECT ts FROM r WHERE device = $1 AND ts < $2",
            vec![int(1), ScalarValue::Float64(Some(2.5))],
            false,
        ),
    ];
    for (sql, params, fast) in cases {
        let plan = explain(&mut f, sql, &params).await;
        assert_eq!(plan.contains("KeyLookup"), fast, "{sql}: {plan}");
        let got = f.rows_with(sql, &params).await;
        // Sorted, a query is no longer a key lookup: DataFusion answers.
        let order = if got.first().is_some_and(|r| r.len() > 1) {
            "1, 2"
        } else {
            "1"
        };
        let reference = f
            .rows_with(&format!("{sql} ORDER BY {order}"), &params)
            .await;
        let mut sorted = got.clone();
        sorted.sort_by(|a, b| {
            let key = |r: &Vec<String>| r.iter().map(|c| c.parse::<f64>().ok()).collect::<Vec<_>>();
            key(a).partial_cmp(&key(b)).unwrap()
        });
        assert_eq!(sorted, reference, "{sql} with {params:?}");
        // Twice: the second run comes from the kept plan.
        assert_eq!(f.rows_with(sql, &params).await, got, "{sql} again");
    }
    assert_eq!(
        f.rows_with(
            "SELECT note FROM r WHERE device = $1 AND ts = $2",
            &[int(2), big(100)]
        )
        .await,
        vec![vec!["late".to_string()]]
    );
    let plan = explain(
        &mut f,
        "SELECT ts, note FROM r WHERE device = $1 AND ts >= $2 AND ts < $3",
        &[int(3), big(10), big(20)],
    )
    .await;
    assert!(
        plan.contains("KeyLookup: table=r, columns=[ts, note], range=[3, 10]..(3, 20)"),
        "{plan}"
    );
}

#[tokio::test]
async fn the_fast_path_reads_the_transaction_it_runs_in() {
    let mut f = Fixture::new("prepared-txn");
    f.rows("CREATE TABLE kv (k int PRIMARY KEY, v text)").await;
    f.rows("INSERT INTO kv VALUES (1, 'one')").await;
    let get = "SELECT v FROM kv WHERE k = $1";
    let mut other = f.engine.new_session();
    f.rows("BEGIN").await;
    f.rows("INSERT INTO kv VALUES (2, 'two')").await;
    f.rows("UPDATE kv SET v = 'uno' WHERE k = 1").await;
    assert_eq!(f.rows_with(get, &[int(2)]).await, vec![vec!["two"]]);
    assert_eq!(f.rows_with(get, &[int(1)]).await, vec![vec!["uno"]]);
    // Another session sees neither change before COMMIT.
    let outside = |results: Vec<omendb_sql::Result<omendb_sql::StatementResult>>| async {
        let mut rows = 0;
        for result in results {
            if let omendb_sql::StatementResult::Rows { stream, .. } = result.unwrap() {
                use futures::TryStreamExt;
                let batches: Vec<_> = stream.try_collect().await.unwrap();
                rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
            }
        }
        rows
    };
    let seen = f.engine.execute(&mut other, get, &[int(2)]).await;
    assert_eq!(outside(seen).await, 0);
    f.rows("COMMIT").await;
    let seen = f.engine.execute(&mut other, get, &[int(2)]).await;
    assert_eq!(outside(seen).await, 1);
}

#[tokio::test]
async fn kept_plans_follow_changes_to_their_tables() {
    let mut f = Fixture::new("prepared-ddl");
    f.rows("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    f.rows("INSERT INTO t VALUES (1, 'a')").await;
    let sql = "SELECT * FROM t WHERE id = $1";
    let described = f.engine.describe(&mut f.session, sql).await.unwrap();
    assert_eq!(
        described.params,
        vec![Some(datafusion::arrow::datatypes::DataType::Int32)]
    );
    assert_eq!(f.rows_with(sql, &[int(1)]).await, vec![vec!["1", "a"]]);

    f.rows("ALTER TABLE t ADD COLUMN w int DEFAULT 7").await;
    assert_eq!(f.rows_with(sql, &[int(1)]).await, vec![vec!["1", "a", "7"]]);
    f.rows("DROP TABLE t").await;
    f.rows("CREATE TABLE t (id int PRIMARY KEY, z text)").await;
    f.rows("INSERT INTO t VALUES (1, 'new')").await;
    assert_eq!(f.rows_with(sql, &[int(1)]).await, vec![vec!["1", "new"]]);
    // Inside a block, a change of the block's own is seen too.
    f.rows("BEGIN").await;
    f.rows("ALTER TABLE t RENAME COLUMN z TO y").await;
    let mut results = f.engine.execute(&mut f.session, sql, &[int(1)]).await;
    let Ok(omendb_sql::StatementResult::Rows { schema, .. }) = results.pop().unwrap() else {
        panic!("no rows");
    };
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, vec!["id", "y"]);
    f.rows("ROLLBACK").await;

    f.rows("DROP TABLE t").await;
    let mut results = f.engine.execute(&mut f.session, sql, &[int(1)]).await;
    let error = results.pop().unwrap().unwrap_err();
    assert_eq!(error.class.sqlstate(), "42P01", "{error}");
}
