//! Concurrent writers of one row: the later waits for the earlier to end
//! and then writes the row as it is now (READ COMMITTED), fails
//! (REPEATABLE READ), or is told of a deadlock; a wait stops at the
//! statement timeout. Two sessions of one engine run in one task, so a
//! wait shows as a future that does not complete until the other session
//! moves.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test fails loudly on any unexpected error.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Fixture;
use omendb_sql::{QueryHandler, SqlEngine, SqlSession, StatementResult};

/// The command tag of `sql` ("rows" for rows), or its SQLSTATE.
async fn run(engine: &SqlEngine, session: &mut SqlSession, sql: &str) -> String {
    match engine.execute(session, sql, &[]).await.pop().unwrap() {
        Ok(StatementResult::Command { tag }) => tag,
        Ok(StatementResult::Rows { .. }) => "rows".into(),
        Ok(other) => panic!("{sql}: {other:?}"),
        Err(error) => error.sqlstate().to_owned(),
    }
}

async fn setup(name: &str) -> Fixture {
    let mut f = Fixture::new(name);
    f.rows("CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL)")
        .await;
    f.rows("INSERT INTO acct VALUES (1, 100), (2, 200)").await;
    f
}

async fn balances(f: &mut Fixture) -> Vec<Vec<String>> {
    f.rows("SELECT id, bal FROM acct ORDER BY id").await
}

fn rows(pairs: &[(i32, i32)]) -> Vec<Vec<String>> {
    pairs
        .iter()
        .map(|(id, bal)| vec![id.to_string(), bal.to_string()])
        .collect()
}

#[tokio::test]
async fn a_read_committed_update_waits_for_the_holder_and_adds_to_its_commit() {
    let mut f = setup("locks-wait").await;
    let mut b = f.engine.new_session();
    let (engine, a) = (&f.engine, &mut f.session);
    run(engine, a, "BEGIN").await;
    assert_eq!(
        run(engine, a, "UPDATE acct SET bal = bal + 10 WHERE id = 1").await,
        "UPDATE 1"
    );
    let committed = AtomicBool::new(false);
    let waiter = async {
        let tag = run(engine, &mut b, "UPDATE acct SET bal = bal + 5 WHERE id = 1").await;
        assert!(committed.load(Ordering::SeqCst), "b wrote before a ended");
        tag
    };
    let holder = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let tag = run(engine, a, "COMMIT").await;
        committed.store(true, Ordering::SeqCst);
        tag
    };
    let (waited, committed_tag) = tokio::join!(waiter, holder);
    assert_eq!(
        (waited.as_str(), committed_tag.as_str()),
        ("UPDATE 1", "COMMIT")
    );
    assert_eq!(balances(&mut f).await, rows(&[(1, 115), (2, 200)]));
}

#[tokio::test]
async fn a_delete_waits_and_then_finds_the_row_gone_or_moved_out_of_its_where() {
    let mut f = setup("locks-recheck").await;
    let mut b = f.engine.new_session();
    let (engine, a) = (&f.engine, &mut f.session);
    run(engine, a, "BEGIN").await;
    run(engine, a, "UPDATE acct SET bal = 0 WHERE id = 1").await;
    let waiter = run(engine, &mut b, "DELETE FROM acct WHERE bal >= 100");
    let holder = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        run(engine, a, "COMMIT").await
    };
    let (deleted, _) = tokio::join!(waiter, holder);
    // Run again after a's commit, the DELETE no longer matches row 1.
    assert_eq!(deleted, "DELETE 1");
    assert_eq!(balances(&mut f).await, rows(&[(1, 0)]));
}

#[tokio::test]
async fn a_repeatable_read_writer_fails_once_the_holder_commits() {
    let mut f = setup("locks-rr").await;
    let mut b = f.engine.new_session();
    let (engine, a) = (&f.engine, &mut f.session);
    run(engine, a, "BEGIN").await;
    run(engine, a, "UPDATE acct SET bal = 1 WHERE id = 1").await;
    run(engine, &mut b, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    // b's snapshot is taken before a commits.
    run(engine, &mut b, "SELECT bal FROM acct WHERE id = 1").await;
    let waiter = run(engine, &mut b, "UPDATE acct SET bal = 2 WHERE id = 1");
    let holder = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        run(engine, a, "COMMIT").await
    };
    let (failed, _) = tokio::join!(waiter, holder);
    assert_eq!(failed, "40001");
    assert_eq!(run(engine, &mut b, "ROLLBACK").await, "ROLLBACK");
    assert_eq!(balances(&mut f).await, rows(&[(1, 1), (2, 200)]));
}

#[tokio::test]
async fn writers_that_wait_for_each_other_end_in_a_deadlock_error_for_one() {
    let mut f = setup("locks-deadlock").await;
    let mut b = f.engine.new_session();
    let (engine, a) = (&f.engine, &mut f.session);
    run(engine, a, "BEGIN").await;
    run(engine, &mut b, "BEGIN").await;
    run(engine, a, "UPDATE acct SET bal = 11 WHERE id = 1").await;
    run(engine, &mut b, "UPDATE acct SET bal = 22 WHERE id = 2").await;
    let first = run(engine, a, "UPDATE acct SET bal = 12 WHERE id = 2");
    let second = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let code = run(engine, &mut b, "UPDATE acct SET bal = 21 WHERE id = 1").await;
        // b's failure ends its block; its rollback frees row 2 for a.
        run(engine, &mut b, "ROLLBACK").await;
        code
    };
    let (waited, deadlocked) = tokio::join!(first, second);
    assert_eq!(
        (waited.as_str(), deadlocked.as_str()),
        ("UPDATE 1", "40P01")
    );
    assert_eq!(run(engine, a, "COMMIT").await, "COMMIT");
    assert_eq!(balances(&mut f).await, rows(&[(1, 11), (2, 12)]));
}

#[tokio::test]
async fn a_lock_wait_ends_at_the_statement_timeout_and_the_session_goes_on() {
    let mut f = setup("locks-timeout").await;
    let mut b = f.engine.new_session();
    let (engine, a) = (&f.engine, &mut f.session);
    run(engine, a, "BEGIN").await;
    run(engine, a, "DELETE FROM acct WHERE id = 2").await;
    run(engine, &mut b, "SET statement_timeout = '100ms'").await;
    let code = run(engine, &mut b, "UPDATE acct SET bal = 0 WHERE id = 2").await;
    assert_eq!(code, "57014");
    run(engine, &mut b, "RESET statement_timeout").await;
    // b waits no more: a can still end, and b can write other rows.
    assert_eq!(
        run(engine, &mut b, "UPDATE acct SET bal = 7 WHERE id = 1").await,
        "UPDATE 1"
    );
    assert_eq!(run(engine, a, "ROLLBACK").await, "ROLLBACK");
    assert_eq!(balances(&mut f).await, rows(&[(1, 7), (2, 200)]));
}
