//! A statement stops when its session's canceller fires or its
//! `statement_timeout` passes, even in the middle of a long aggregate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test fails loudly on any unexpected error.

mod common;

use std::time::Duration;

use common::Fixture;
use futures::TryStreamExt;
use omendb_sql::{QueryHandler, StatementResult};

const LONG: &str = "SELECT count(*) FROM generate_series(1, 100000000000)";

/// The SQLSTATE `sql` ends with, reading its rows; fails the test if it
/// runs a minute.
async fn stop_code(f: &mut Fixture, sql: &str) -> String {
    let work = async {
        let mut results = f.engine.execute(&mut f.session, sql, &[]).await;
        match results.pop().unwrap() {
            Ok(StatementResult::Rows { stream, .. }) => {
                let error = stream.try_collect::<Vec<_>>().await.unwrap_err();
                omendb_sql::SqlError::from(error)
            }
            Ok(other) => panic!("{other:?}"),
            Err(error) => error,
        }
    };
    let error = tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("not stopped");
    error.sqlstate().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_or_the_timeout_stops_a_long_aggregate() {
    let mut f = Fixture::new("interrupts");
    f.rows("SET statement_timeout = '200ms'").await;
    assert_eq!(stop_code(&mut f, LONG).await, "57014");
    f.rows("RESET statement_timeout").await;

    let canceller = f.engine.canceller(&f.session);
    let cancel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });
    assert_eq!(stop_code(&mut f, LONG).await, "57014");
    cancel.await.unwrap();
    assert_eq!(f.rows("SELECT 1").await, vec![vec!["1".to_string()]]);
}
