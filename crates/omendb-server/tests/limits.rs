//! End to end: a cancel request stops the running statement (57014), as
//! does `statement_timeout`; connections beyond `--max-connections` are
//! refused with 53300; a connection idle in a transaction past
//! `idle_in_transaction_session_timeout` is ended (25P03).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::time::Duration;

use common::{Server, scratch};
use tokio_postgres::{Client, NoTls};

/// A query that runs for minutes unless stopped.
const LONG: &str = "SELECT count(*) FROM generate_series(1, 100000000000)";

async fn connect(server: &Server) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=omendb", server.port),
        NoTls,
    )
    .await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The error `query` ends with; a test failure if it runs a minute.
async fn stopped<T: std::fmt::Debug>(
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> tokio_postgres::Error {
    tokio::time::timeout(Duration::from_secs(60), query)
        .await
        .expect("the statement was not stopped")
        .unwrap_err()
}

/// Sends a cancel request for `client`'s running statement in 300 ms.
fn cancel_soon(client: &Client) -> tokio::task::JoinHandle<()> {
    let token = client.cancel_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    })
}

fn sqlstate(error: &tokio_postgres::Error) -> &str {
    error.code().map_or("none", |c| c.code())
}

#[tokio::test]
async fn a_cancel_request_or_the_statement_timeout_stops_a_statement() {
    let dir = scratch("limits-cancel");
    let server = Server::start(&dir);
    let client = connect(&server).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (k int PRIMARY KEY)")
        .await
        .unwrap();

    let canceller = cancel_soon(&client);
    let error = stopped(client.simple_query(LONG)).await;
    canceller.await.unwrap();
    assert_eq!(sqlstate(&error), "57014", "{error:?}");
    // The connection goes on.
    client
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    // In a block, a cancelled statement fails the block.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    let canceller = cancel_soon(&client);
    let error = stopped(client.query(LONG, &[])).await;
    canceller.await.unwrap();
    assert_eq!(sqlstate(&error), "57014", "{error:?}");
    let error = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&error), "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();

    // statement_timeout: the same error, by the session's own limit.
    client
        .batch_execute("SET statement_timeout = '200ms'")
        .await
        .unwrap();
    let error = stopped(client.simple_query(LONG)).await;
    assert_eq!(sqlstate(&error), "57014");
    let message = error.as_db_error().unwrap().message();
    assert_eq!(message, "canceling statement due to statement timeout");
    client
        .batch_execute("RESET statement_timeout")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let dir = scratch("limits-connections");
    let server = Server::start_with(&dir, &["--max-connections", "2"]);
    let first = connect(&server).await.unwrap();
    let second = connect(&server).await.unwrap();
    let error = connect(&server).await.expect_err("a third connection");
    assert_eq!(sqlstate(&error), "53300", "{error:?}");
    drop(first);
    // The server counts the first closed once it sees it go.
    let mut third = None;
    for _ in 0..100 {
        if let Ok(client) = connect(&server).await {
            third = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let third = third.expect("a connection once one closed");
    for client in [&second, &third] {
        client.simple_query("SELECT 1").await.unwrap();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_connection_idle_in_a_transaction_past_its_timeout_is_ended() {
    let dir = scratch("limits-idle");
    let server = Server::start(&dir);
    let admin = connect(&server).await.unwrap();
    admin
        .batch_execute("CREATE TABLE t (k int PRIMARY KEY)")
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=omendb", server.port),
        NoTls,
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    client
        .batch_execute("SET idle_in_transaction_session_timeout = '300ms'")
        .await
        .unwrap();
    // Idle outside a block: kept.
    tokio::time::sleep(Duration::from_millis(900)).await;
    client
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    // Idle inside one: ended, with PostgreSQL's FATAL, and rolled back.
    let ended = tokio::time::timeout(Duration::from_secs(60), connection)
        .await
        .expect("the idle connection was not ended")
        .unwrap();
    assert_eq!(sqlstate(&ended.unwrap_err()), "25P03");
    assert!(client.is_closed());
    let count: i64 = admin
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "the ended transaction's insert is gone");

    // A block whose client keeps talking is not idle.
    admin
        .batch_execute("SET idle_in_transaction_session_timeout = '2s'; BEGIN")
        .await
        .unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        admin.batch_execute("SELECT 1").await.unwrap();
    }
    admin.batch_execute("COMMIT").await.unwrap();
    assert!(server.stop().success());
}
