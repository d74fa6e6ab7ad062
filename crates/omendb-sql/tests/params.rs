//! Statements with `$n` parameters: queries, DML, and the key range a
//! parameterized point query gets.

#![allow(clippy::unwrap_used)] // A test fails loudly on any unexpected error.

mod common;

use common::Fixture;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use omendb_sql::QueryHandler;

#[tokio::test]
async fn parameters_fill_queries_and_writes_and_reach_the_learned_index() {
    let mut f = Fixture::new("params");
    f.rows("CREATE TABLE kv (k int PRIMARY KEY, v text)").await;
    let text = |s: &str| ScalarValue::Utf8(Some(s.into()));
    for (k, v) in [(1, "one"), (2, "two"), (3, "three")] {
        f.rows_with(
            "INSERT INTO kv VALUES ($1, $2)",
            &[ScalarValue::Int32(Some(k)), text(v)],
        )
        .await;
    }
    let got = f
        .rows_with(
            "SELECT v FROM kv WHERE k = $1",
            &[ScalarValue::Int32(Some(2))],
        )
        .await;
    assert_eq!(got, vec![vec!["two".to_string()]]);
    f.rows_with(
        "UPDATE kv SET v = $2 WHERE k = $1",
        &[ScalarValue::Int32(Some(3)), text("THREE")],
    )
    .await;
    f.rows_with(
        "DELETE FROM kv WHERE k = $1",
        &[ScalarValue::Int32(Some(1))],
    )
    .await;
    assert_eq!(
        f.rows("SELECT k, v FROM kv ORDER BY k").await,
        vec![
            vec!["2".to_string(), "two".to_string()],
            vec!["3".to_string(), "THREE".to_string()]
        ]
    );
    let plan = f
        .rows_with(
            "EXPLAIN SELECT upper(v) FROM kv WHERE k = $1",
            &[ScalarValue::Int32(Some(2))],
        )
        .await;
    let plan: Vec<String> = plan.into_iter().map(|r| r.join(" | ")).collect();
    assert!(
        plan.iter()
            .any(|l| l.contains("LearnedIndexScan: table=kv, range=[2]..[2]")),
        "{plan:?}"
    );
    let sum = f
        .rows_with(
            "SELECT $1::bigint + count(*) FROM kv",
            &[ScalarValue::Int64(Some(40))],
        )
        .await;
    assert_eq!(sum, vec![vec!["42".to_string()]]);
    // Result columns carry PostgreSQL's names (checked against PostgreSQL 15).
    assert_eq!(
        f.names("SELECT k, count(*), v AS value, k + 1, upper(v) FROM kv GROUP BY k, v")
            .await,
        vec!["k", "count", "value", "?column?", "upper"]
    );
    assert_eq!(f.names("SELECT * FROM kv").await, vec!["k", "v"]);
}

#[tokio::test]
async fn describe_gives_parameter_types_and_result_columns_without_running() {
    let mut f = Fixture::new("describe");
    f.rows("CREATE TABLE kv (k int PRIMARY KEY, v text, n bigint)")
        .await;
    let described = f
        .engine
        .describe(
            &mut f.session,
            "SELECT v, count(*) FROM kv WHERE k = $1 AND n > $2 GROUP BY v",
        )
        .await
        .unwrap();
    assert_eq!(
        described.params,
        vec![Some(DataType::Int32), Some(DataType::Int64)]
    );
    let columns = described.columns.unwrap();
    let names: Vec<&str> = columns.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["v", "count"]);

    // Result types as PostgreSQL's: count is bigint, avg of integers
    // numeric, sum of integer bigint but of bigint numeric.
    let described = f
        .engine
        .describe(
            &mut f.session,
            "SELECT count(*), avg(k), avg(n), avg(n * 0.5::float8), sum(k), sum(n) FROM kv",
        )
        .await
        .unwrap();
    let types: Vec<DataType> = described
        .columns
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Decimal128(38, 16),
            DataType::Decimal128(38, 16),
            DataType::Float64,
            DataType::Int64,
            DataType::Decimal128(38, 0)
        ]
    );

    let described = f
        .engine
        .describe(&mut f.session, "INSERT INTO kv (v, k) VALUES ($2, $1)")
        .await
        .unwrap();
    assert_eq!(
        described.params,
        vec![Some(DataType::Int32), Some(DataType::Utf8)]
    );
    assert!(described.columns.is_none());

    // UPDATE and DELETE: from their WHERE clause, and a parameter assigned
    // alone takes its column's type.
    let described = f
        .engine
        .describe(
            &mut f.session,
            "UPDATE kv SET v = $1, n = n + 1 WHERE k = $3 AND n < $2",
        )
        .await
        .unwrap();
    assert_eq!(
        described.params,
        vec![
            Some(DataType::Utf8),
            Some(DataType::Int64),
            Some(DataType::Int32)
        ]
    );
    let described = f
        .engine
        .describe(&mut f.session, "DELETE FROM kv WHERE k = $1")
        .await
        .unwrap();
    assert_eq!(described.params, vec![Some(DataType::Int32)]);

    // A parameter that is cast takes the cast's type, as in PostgreSQL.
    let described = f
        .engine
        .describe(
            &mut f.session,
            "SELECT $1::bigint + 1, v FROM kv WHERE k = $2::smallint",
        )
        .await
        .unwrap();
    assert_eq!(
        described.params,
        vec![Some(DataType::Int64), Some(DataType::Int16)]
    );

    // Statements that return rows besides queries: RETURNING, SHOW, EXPLAIN.
    for (sql, expected) in [
        (
            "INSERT INTO kv VALUES ($1, 'x', 1) RETURNING k, v AS value, n + 1",
            vec![
                ("k", DataType::Int32),
                ("value", DataType::Utf8),
                ("?column?", DataType::Int64),
            ],
        ),
        (
            "UPDATE kv AS t SET n = 2 WHERE k = $1 RETURNING t.n",
            vec![("n", DataType::Int64)],
        ),
        (
            "DELETE FROM kv WHERE k = $1 RETURNING *",
            vec![
                ("k", DataType::Int32),
                ("v", DataType::Utf8),
                ("n", DataType::Int64),
            ],
        ),
        ("SHOW search_path", vec![("search_path", DataType::Utf8)]),
        (
            "EXPLAIN SELECT * FROM kv",
            vec![("plan_type", DataType::Utf8), ("plan", DataType::Utf8)],
        ),
    ] {
        let described = f.engine.describe(&mut f.session, sql).await.unwrap();
        let columns = described.columns.expect(sql);
        let got: Vec<(&str, DataType)> = columns
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(got, expected, "{sql}");
    }

    let error = f
        .engine
        .describe(&mut f.session, "SELECT 1; SELECT 2")
        .await
        .unwrap_err();
    assert_eq!(error.sqlstate(), "42601");
    // Nothing ran: the table is still empty.
    assert_eq!(
        f.rows("SELECT count(*) FROM kv").await,
        vec![vec!["0".to_string()]]
    );
}
