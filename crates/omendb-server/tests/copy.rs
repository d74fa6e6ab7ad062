//! End to end: COPY FROM STDIN and COPY TO STDOUT, text and CSV, through
//! psql's `\copy` and tokio-postgres; a bad row writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use common::{Server, scratch};
use futures::SinkExt;
use tokio_postgres::NoTls;

const TABLE: &str = "CREATE TABLE c (k int PRIMARY KEY, name text, at timestamp, score float8)";

#[test]
fn psql_copies_csv_in_and_text_and_csv_out_as_postgresql_does() {
    let dir = scratch("copy-psql");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    std::fs::write(
        &input,
        "k,name,at,score\n\
         1,\"a, \"\"quoted\"\" name\",2026-01-01 00:00:00,1.5\n\
         2,,2026-01-02 12:30:00,\n\
         3,\"\",2026-01-03 00:00:00,-2\n",
    )
    .unwrap();
    let server = Server::start(&dir.join("data"));
    let copy_in = format!(
        "\\copy c FROM '{}' WITH (FORMAT csv, HEADER)",
        input.display()
    );
    let (out, err, ok) = server.psql(&[
        TABLE,
        &copy_in,
        "COPY c TO STDOUT",
        "COPY (SELECT k, name FROM c ORDER BY k DESC) TO STDOUT WITH (FORMAT csv, HEADER)",
        "COPY c (k, name) TO STDOUT WITH (DELIMITER '|', NULL 'NULL')",
    ]);
    assert!(ok, "{err}");
    // Each line as PostgreSQL 15 prints it for the same commands.
    assert_eq!(
        out,
        "CREATE TABLE\n\
         COPY 3\n\
         1\ta, \"quoted\" name\t2026-01-01 00:00:00\t1.5\n\
         2\t\\N\t2026-01-02 12:30:00\t\\N\n\
         3\t\t2026-01-03 00:00:00\t-2\n\
         k,name\n\
         3,\"\"\n\
         2,\n\
         1,\"a, \"\"quoted\"\" name\"\n\
         1|a, \"quoted\" name\n\
         2|NULL\n\
         3|\n"
    );

    // A value that does not convert fails the COPY: none of its rows stay.
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "9\t1\n8\tx\n").unwrap();
    let (out, err, _) = server.psql(&[
        &format!("\\copy c (k, score) FROM '{}'", bad.display()),
        "SELECT count(*) FROM c",
    ]);
    assert!(err.contains("ERROR:  22P02"), "{err}");
    assert_eq!(out, "3\n");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tokio_postgres_copies_in_pieces_inside_and_outside_a_block() {
    let dir = scratch("copy-tokio");
    let server = Server::start(&dir);
    let (mut client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=omendb", server.port),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client.batch_execute(TABLE).await.unwrap();

    // 20,000 rows sent in pieces that split lines anywhere.
    let mut data = String::new();
    for k in 0..20_000 {
        data.push_str(&format!("{k}\tname {k}\t2026-01-01 00:00:00\t{k}.5\n"));
    }
    let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    for piece in data.as_bytes().chunks(7_777) {
        sink.send(bytes::Bytes::copy_from_slice(piece))
            .await
            .unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 20_000);
    let row = client
        .query_one("SELECT count(*), sum(score) FROM c", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 20_000);
    assert_eq!(row.get::<_, f64>(1), 199_990_000.0 + 10_000.0);

    // In a block, the COPY's rows are the block's: ROLLBACK drops them.
    let txn = client.transaction().await.unwrap();
    let sink = txn
        .copy_in("COPY c (k) FROM STDIN WITH (FORMAT csv)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"-1\n-2\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    assert_eq!(
        txn.query_one("SELECT count(*) FROM c", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        20_002
    );
    txn.rollback().await.unwrap();

    // A duplicate key fails the COPY (23505) and writes none of it.
    let sink = client.copy_in("COPY c (k) FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"-5\n7\n"))
        .await
        .unwrap();
    let error = sink.finish().await.unwrap_err();
    assert_eq!(error.code().unwrap().code(), "23505");
    let row = client
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 20_000);

    // A COPY the client gives up (CopyFail) writes nothing either, and
    // the connection goes on.
    {
        let sink = client.copy_in("COPY c (k) FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"-6\n")).await.unwrap();
    }
    let row = client
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 20_000);

    // COPY TO in pieces reads back what went in.
    let out = client
        .copy_out("COPY (SELECT * FROM c ORDER BY k) TO STDOUT")
        .await
        .unwrap();
    futures::pin_mut!(out);
    let mut copied = Vec::new();
    while let Some(piece) = futures::StreamExt::next(&mut out).await {
        copied.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(String::from_utf8(copied).unwrap(), data);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
