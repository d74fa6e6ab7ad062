//! Transaction semantics, checked through the public API on the fault-
//! injecting file system.

use std::ops::Bound;
use std::sync::Arc;

use arrow::array::AsArray;

use super::*;
use crate::db::{Database, Options};
use crate::error::ErrorKind;
use crate::io::fault::{CrashMode, FaultFs};
use crate::types::DataType;

fn open(fs: &FaultFs) -> Database {
    Database::open_with(Arc::new(fs.clone()), "/db", Options::default()).unwrap()
}

/// A database with `kv (k bigint primary key, v text)`.
fn setup() -> (FaultFs, Database) {
    let fs = FaultFs::new();
    let db = open(&fs);
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.create_table("kv", kv_columns(), &["k"]).unwrap();
    txn.commit().unwrap();
    (fs, db)
}

fn kv_columns() -> Vec<ColumnSpec> {
    vec![
        ColumnSpec::new("k", DataType::Int64),
        ColumnSpec::new("v", DataType::Text { max_chars: None }),
    ]
}

fn row(k: i64, v: &str) -> Vec<Value> {
    vec![Value::Int64(k), Value::Text(v.into())]
}

fn get(txn: &mut Transaction, k: i64) -> Option<String> {
    let key = txn.key("kv", &[Value::Int64(k)]).unwrap();
    txn.get("kv", &key).unwrap().map(|values| match &values[1] {
        Value::Text(v) => v.clone(),
        other => panic!("unexpected {other:?}"),
    })
}

fn all(txn: &mut Transaction) -> Vec<(i64, String)> {
    scan_rows(txn, KeyRange::all())
}

fn scan_rows(txn: &mut Transaction, range: KeyRange) -> Vec<(i64, String)> {
    txn.scan("kv", range)
        .unwrap()
        .map(|row| match row.unwrap().values.as_slice() {
            [Value::Int64(k), Value::Text(v)] => (*k, v.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn a_transaction_sees_its_own_writes_and_others_see_them_after_commit() {
    let (_fs, db) = setup();
    let mut writer = db.begin(Isolation::ReadCommitted);
    writer.insert("kv", row(1, "one")).unwrap();
    writer.insert("kv", row(2, "two")).unwrap();
    assert_eq!(get(&mut writer, 1).as_deref(), Some("one"));
    let mut reader = db.begin(Isolation::ReadCommitted);
    assert_eq!(get(&mut reader, 1), None);
    writer.commit().unwrap();
    reader.begin_statement();
    assert_eq!(all(&mut reader), vec![(1, "one".into()), (2, "two".into())]);
}

#[test]
fn repeatable_read_keeps_its_snapshot_and_read_committed_moves_on() {
    let (_fs, db) = setup();
    let mut seed = db.begin(Isolation::ReadCommitted);
    seed.insert("kv", row(1, "old")).unwrap();
    seed.commit().unwrap();

    let mut rr = db.begin(Isolation::RepeatableRead);
    let mut rc = db.begin(Isolation::ReadCommitted);
    assert_eq!(get(&mut rr, 1).as_deref(), Some("old"));
    assert_eq!(get(&mut rc, 1).as_deref(), Some("old"));

    let mut writer = db.begin(Isolation::ReadCommitted);
    let key = writer.key("kv", &[Value::Int64(1)]).unwrap();
    writer.update("kv", &key, row(1, "new")).unwrap();
    writer.commit().unwrap();

    rr.begin_statement();
    rc.begin_statement();
    assert_eq!(get(&mut rr, 1).as_deref(), Some("old"));
    assert_eq!(get(&mut rc, 1).as_deref(), Some("new"));
}

#[test]
fn a_second_writer_of_a_row_waits_for_the_first_and_then_fails_under_repeatable_read() {
    let (_fs, db) = setup();
    let mut seed = db.begin(Isolation::ReadCommitted);
    seed.insert("kv", row(1, "v0")).unwrap();
    seed.commit().unwrap();

    let mut a = db.begin(Isolation::RepeatableRead);
    let mut b = db.begin(Isolation::RepeatableRead);
    let key = a.key("kv", &[Value::Int64(1)]).unwrap();
    a.update("kv", &key, row(1, "a")).unwrap();
    let mark = b.statement_mark();
    let err = b.update("kv", &key, row(1, "b")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SerializationFailure, "{err}");
    let restart = b.take_restart().expect("b must wait for a");
    b.rollback_statement(mark);
    let waiting = std::thread::spawn(move || restart.wait_blocking());
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!waiting.is_finished(), "b stopped waiting while a was open");
    a.commit().unwrap();
    waiting.join().unwrap();
    // a committed a change b's snapshot did not see: b can never write it.
    let err = b.update("kv", &key, row(1, "b")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SerializationFailure, "{err}");
    assert!(b.take_restart().is_none(), "a failure, not a restart");

    let mut check = db.begin(Isolation::ReadCommitted);
    assert_eq!(get(&mut check, 1).as_deref(), Some("a"));
}

#[test]
fn a_read_committed_writer_restarts_after_the_holder_ends_and_writes_the_latest_row() {
    let (_fs, db) = setup();
    let mut seed = db.begin(Isolation::ReadCommitted);
    seed.insert("kv", row(1, "v0")).unwrap();
    seed.commit().unwrap();

    let mut a = db.begin(Isolation::ReadCommitted);
    let mut b = db.begin(Isolation::ReadCommitted);
    let key = a.key("kv", &[Value::Int64(1)]).unwrap();
    a.update("kv", &key, row(1, "a")).unwrap();
    b.begin_statement();
    let mark = b.statement_mark();
    assert_eq!(get(&mut b, 1).as_deref(), Some("v0"));
    b.update("kv", &key, row(1, "b")).unwrap_err();
    let restart = b.take_restart().expect("b must wait for a");
    b.rollback_statement(mark);
    a.commit().unwrap();
    restart.wait_blocking();
    // The statement again, at a new snapshot: it sees a's row and writes.
    b.begin_statement();
    assert_eq!(get(&mut b, 1).as_deref(), Some("a"));
    b.update("kv", &key, row(1, "a+b")).unwrap();
    b.commit().unwrap();

    // A commit between a statement's snapshot and its write restarts it
    // without a wait: the row is free, but the snapshot is stale.
    let mut c = db.begin(Isolation::ReadCommitted);
    c.begin_statement();
    assert_eq!(get(&mut c, 1).as_deref(), Some("a+b"));
    let mut d = db.begin(Isolation::ReadCommitted);
    d.update("kv", &key, row(1, "d")).unwrap();
    d.commit().unwrap();
    c.update("kv", &key, row(1, "c")).unwrap_err();
    assert!(c.take_restart().is_some());
    c.begin_statement();
    c.update("kv", &key, row(1, "c")).unwrap();
    c.commit().unwrap();

    let mut check = db.begin(Isolation::ReadCommitted);
    assert_eq!(get(&mut check, 1).as_deref(), Some("c"));
}

#[test]
fn two_writers_waiting_on_each_other_is_a_deadlock() {
    let (_fs, db) = setup();
    let mut seed = db.begin(Isolation::ReadCommitted);
    seed.insert("kv", row(1, "v0")).unwrap();
    seed.insert("kv", row(2, "v0")).unwrap();
    seed.commit().unwrap();

    let mut a = db.begin(Isolation::ReadCommitted);
    let mut b = db.begin(Isolation::ReadCommitted);
    let one = a.key("kv", &[Value::Int64(1)]).unwrap();
    let two = a.key("kv", &[Value::Int64(2)]).unwrap();
    a.update("kv", &one, row(1, "a")).unwrap();
    b.update("kv", &two, row(2, "b")).unwrap();
    a.update("kv", &two, row(2, "a")).unwrap_err();
    let _a_waits = a.take_restart().expect("b holds row 2");
    let err = b.update("kv", &one, row(1, "b")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err}");
    assert!(b.take_restart().is_none());
}

#[test]
fn duplicate_keys_are_unique_violations_now_or_at_commit() {
    let (_fs, db) = setup();
    let mut first = db.begin(Isolation::ReadCommitted);
    first.insert("kv", row(1, "x")).unwrap();
    let err = first.insert("kv", row(1, "y")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation);

    let mut rival = db.begin(Isolation::ReadCommitted);
    rival.insert("kv", row(1, "z")).unwrap();
    first.commit().unwrap();
    let err = rival.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");

    let mut again = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        again.insert("kv", row(1, "w")).unwrap_err().kind(),
        ErrorKind::UniqueViolation
    );
}

#[test]
fn bad_rows_are_refused_with_their_class() {
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    let null_key = txn
        .insert("kv", vec![Value::Null, Value::Text("x".into())])
        .unwrap_err();
    assert_eq!(null_key.kind(), ErrorKind::NotNullViolation);
    let wrong_type = txn
        .insert("kv", vec![Value::Int32(1), Value::Null])
        .unwrap_err();
    assert_eq!(wrong_type.kind(), ErrorKind::InvalidInput);
    let short = txn.insert("kv", vec![Value::Int64(1)]).unwrap_err();
    assert_eq!(short.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        txn.insert("nope", row(1, "x")).unwrap_err().kind(),
        ErrorKind::UndefinedTable
    );
}

#[test]
fn savepoints_undo_writes_and_ddl_after_them() {
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.insert("kv", row(1, "kept")).unwrap();
    txn.savepoint("a");
    txn.insert("kv", row(2, "undone")).unwrap();
    let key = txn.key("kv", &[Value::Int64(1)]).unwrap();
    txn.update("kv", &key, row(1, "changed")).unwrap();
    txn.create_table("t2", vec![ColumnSpec::new("x", DataType::Bool)], &[])
        .unwrap();
    txn.savepoint("b");
    txn.delete("kv", &key).unwrap();
    txn.rollback_to("a").unwrap();
    assert_eq!(all(&mut txn), vec![(1, "kept".into())]);
    assert!(txn.table("t2").is_err());
    assert!(
        txn.rollback_to("b").is_err(),
        "b went with the rollback to a"
    );
    txn.insert("kv", row(3, "after")).unwrap();
    txn.release("a").unwrap();
    txn.commit().unwrap();
    let mut check = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        all(&mut check),
        vec![(1, "kept".into()), (3, "after".into())]
    );
}

#[test]
fn ddl_is_transactional_and_concurrent_alters_conflict() {
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.create_table("t", vec![ColumnSpec::new("x", DataType::Int32)], &["x"])
        .unwrap();
    txn.insert("t", vec![Value::Int32(5)]).unwrap();
    let mut other = db.begin(Isolation::ReadCommitted);
    assert!(other.table("t").is_err(), "uncommitted DDL is private");
    txn.rollback();
    assert!(db.catalog().table("t").is_err());

    let mut a = db.begin(Isolation::ReadCommitted);
    let mut b = db.begin(Isolation::ReadCommitted);
    let base = a.table("kv").unwrap();
    let with_a = base
        .with_column_added(ColumnSpec::new("a", DataType::Bool), Value::Null)
        .unwrap();
    let with_b = b
        .table("kv")
        .unwrap()
        .with_column_added(ColumnSpec::new("b", DataType::Bool), Value::Null)
        .unwrap();
    a.alter_table(with_a).unwrap();
    b.alter_table(with_b).unwrap();
    a.commit().unwrap();
    assert_eq!(
        b.commit().unwrap_err().kind(),
        ErrorKind::SerializationFailure
    );
    assert!(db.catalog().table("kv").unwrap().column("a").is_ok());
}

#[test]
fn added_columns_read_their_missing_value_but_stored_nulls_stay_null() {
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.insert("kv", row(1, "before")).unwrap();
    txn.commit().unwrap();

    let mut alter = db.begin(Isolation::ReadCommitted);
    let def = alter.table("kv").unwrap();
    let spec = ColumnSpec::new("n", DataType::Int32);
    alter
        .alter_table(def.with_column_added(spec, Value::Int32(7)).unwrap())
        .unwrap();
    alter.commit().unwrap();

    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.insert(
        "kv",
        vec![Value::Int64(2), Value::Text("after".into()), Value::Null],
    )
    .unwrap();
    let rows: Vec<Vec<Value>> = txn
        .scan("kv", KeyRange::all())
        .unwrap()
        .map(|r| r.unwrap().values)
        .collect();
    assert_eq!(
        rows[0][2],
        Value::Int32(7),
        "row from before the column existed"
    );
    assert_eq!(rows[1][2], Value::Null, "explicit NULL");
}

#[test]
fn tables_without_a_key_get_row_ids_that_survive_reopen() {
    let fs = FaultFs::new();
    let db = open(&fs);
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.create_table(
        "log",
        vec![ColumnSpec::new("msg", DataType::Text { max_chars: None })],
        &[],
    )
    .unwrap();
    txn.insert("log", vec![Value::Text("a".into())]).unwrap();
    txn.insert("log", vec![Value::Text("a".into())]).unwrap();
    txn.commit().unwrap();
    drop(db);

    let db = open(&fs.crash(CrashMode::DropUnsynced));
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.insert("log", vec![Value::Text("b".into())]).unwrap();
    let keys: Vec<Vec<Value>> = txn
        .scan("log", KeyRange::all())
        .unwrap()
        .map(|r| txn_key_values(&r.unwrap().key))
        .collect();
    assert_eq!(
        keys,
        vec![
            vec![Value::Int64(1)],
            vec![Value::Int64(2)],
            vec![Value::Int64(3)]
        ]
    );
}

fn txn_key_values(key: &[u8]) -> Vec<Value> {
    crate::types::KeyCodec::new(vec![DataType::Int64])
        .unwrap()
        .decode(key)
        .unwrap()
}

#[test]
fn committed_data_and_ddl_survive_a_crash_and_uncommitted_data_does_not() {
    let (fs, db) = setup();
    let mut committed = db.begin(Isolation::ReadCommitted);
    committed.insert("kv", row(1, "durable")).unwrap();
    committed.commit().unwrap();
    let mut open_txn = db.begin(Isolation::ReadCommitted);
    open_txn.insert("kv", row(2, "never committed")).unwrap();

    let after = open(&fs.crash(CrashMode::DropUnsynced));
    let mut txn = after.begin(Isolation::ReadCommitted);
    assert_eq!(all(&mut txn), vec![(1, "durable".into())]);
    txn.insert("kv", row(3, "new")).unwrap();
    txn.commit().unwrap();
}

fn scan_range(txn: &mut Transaction, lo: i64, hi: i64) -> Vec<(i64, String)> {
    let range = KeyRange {
        start: std::ops::Bound::Included(vec![Value::Int64(lo)]),
        end: std::ops::Bound::Excluded(vec![Value::Int64(hi)]),
    };
    scan_rows(txn, range)
}

#[test]
fn scans_of_one_segment_show_each_snapshot_its_own_versions() {
    // Scans served by a single segment skip the per-row merge; they must
    // still pick each key's visible version and hide tombstones.
    let (_fs, db) = setup();
    const KEYS: i64 = 40_000;
    let mut txn = db.begin(Isolation::ReadCommitted);
    for k in 1..KEYS {
        txn.insert("kv", row(k, "old")).unwrap();
    }
    txn.commit().unwrap();
    let mut before = db.begin(Isolation::RepeatableRead);
    assert_eq!(get(&mut before, 1).as_deref(), Some("old"));
    let mut txn = db.begin(Isolation::ReadCommitted);
    // Key 0 has one version, the others two: versions of a key straddle
    // block and row-group ends.
    txn.insert("kv", row(0, "new")).unwrap();
    for k in 1..KEYS {
        let key = txn.key("kv", &[Value::Int64(k)]).unwrap();
        if k % 7 == 0 {
            assert!(txn.delete("kv", &key).unwrap());
        } else {
            txn.update("kv", &key, row(k, "new")).unwrap();
        }
    }
    let table = txn.table("kv").unwrap().id;
    txn.commit().unwrap();
    db.flush().unwrap();
    assert_eq!(db.segment_count(table), 1);

    let mut after = db.begin(Isolation::ReadCommitted);
    for (lo, hi) in [
        (0, KEYS),
        (2040, 2060),
        (4000, 4200),
        (30_000, KEYS),
        (5, 6),
        (7, 8),
    ] {
        let old: Vec<(i64, String)> = (lo.max(1)..hi).map(|k| (k, "old".into())).collect();
        let new: Vec<(i64, String)> = (lo..hi)
            .filter(|k| k % 7 != 0 || *k == 0)
            .map(|k| (k, "new".into()))
            .collect();
        assert_eq!(
            scan_range(&mut before, lo, hi),
            old,
            "old snapshot, {lo}..{hi}"
        );
        assert_eq!(
            scan_range(&mut after, lo, hi),
            new,
            "new snapshot, {lo}..{hi}"
        );
    }
}

#[test]
fn scans_over_several_segments_merge_them_whether_or_not_they_share_keys() {
    let (_fs, db) = setup();
    let write = |keys: std::ops::Range<i64>, v: &str| {
        let mut txn = db.begin(Isolation::ReadCommitted);
        for k in keys {
            txn.upsert("kv", row(k, v)).unwrap();
        }
        txn.commit().unwrap();
        db.flush().unwrap();
    };
    // Segments of disjoint keys, as time-cut segments of one device are.
    write(0..1000, "a");
    write(1000..2000, "b");
    let expected = |lo: i64, hi: i64, newer: &dyn Fn(i64) -> Option<&'static str>| {
        (lo..hi)
            .map(|k| {
                let v = newer(k).unwrap_or(if k < 1000 { "a" } else { "b" });
                (k, v.to_string())
            })
            .collect::<Vec<_>>()
    };
    let mut txn = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        scan_range(&mut txn, 900, 1100),
        expected(900, 1100, &|_| None)
    );
    assert_eq!(scan_range(&mut txn, 0, 2000), expected(0, 2000, &|_| None));

    // A third segment overlapping both: its versions win.
    write(990..1010, "c");
    let newer = |k: i64| (990..1010).contains(&k).then_some("c");
    txn.begin_statement();
    assert_eq!(scan_range(&mut txn, 900, 1100), expected(900, 1100, &newer));
    assert_eq!(scan_range(&mut txn, 995, 1005), expected(995, 1005, &newer));
    assert_eq!(scan_range(&mut txn, 0, 2000), expected(0, 2000, &newer));
}

#[test]
fn a_scan_of_no_columns_still_counts_rows_in_memtables_segments_and_own_writes() {
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    for k in 0..10 {
        txn.insert("kv", row(k, "x")).unwrap();
    }
    txn.commit().unwrap();
    db.flush().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    for k in 10..15 {
        txn.insert("kv", row(k, "y")).unwrap();
    }
    let request = ScanRequest {
        columns: Some(Vec::new()),
        ..ScanRequest::default()
    };
    let rows: usize = txn
        .scan_batches("kv", &request)
        .unwrap()
        .map(|b| {
            let batch = b.unwrap();
            assert_eq!(batch.num_columns(), 0);
            batch.num_rows()
        })
        .sum();
    assert_eq!(rows, 15);
}

#[test]
fn a_reader_sees_the_transaction_as_it_was_and_outlives_it() {
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.insert("kv", row(1, "one")).unwrap();
    let reader = txn.reader();
    txn.insert("kv", row(2, "two")).unwrap();
    txn.commit().unwrap();
    let keys = |reader: &TxnReader| -> usize {
        reader
            .scan_batches("kv", &ScanRequest::default())
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum()
    };
    assert_eq!(
        keys(&reader),
        1,
        "the later write and the commit are not seen"
    );
    let mut later = db.begin(Isolation::ReadCommitted);
    assert_eq!(keys(&later.reader()), 2);
}

#[test]
fn a_database_reader_reads_the_latest_commit_and_keeps_its_snapshot() {
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    for k in 0..100 {
        txn.insert("kv", row(k, &format!("v{k}"))).unwrap();
    }
    txn.commit().unwrap();
    db.flush().unwrap();
    let value = |reader: &TxnReader, k: i64| -> Option<String> {
        let values = reader.get("kv", &[Value::Int64(k)]).unwrap()?;
        match &values[1] {
            Value::Text(v) => Some(v.clone()),
            other => panic!("unexpected {other:?}"),
        }
    };
    let before = db.reader();
    // Point reads of a segment's rows, each row's own bytes.
    for k in 0..100 {
        assert_eq!(value(&before, k), Some(format!("v{k}")));
    }
    assert_eq!(value(&before, 100), None);
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.upsert("kv", row(7, "seven")).unwrap();
    txn.insert("kv", row(100, "new")).unwrap();
    txn.commit().unwrap();
    assert_eq!(
        value(&before, 7).as_deref(),
        Some("v7"),
        "its snapshot stays"
    );
    assert_eq!(value(&before, 100), None);
    let after = db.reader();
    assert_eq!(value(&after, 7).as_deref(), Some("seven"));
    assert_eq!(value(&after, 100).as_deref(), Some("new"));
}

#[test]
fn merged_scans_take_one_version_per_key_from_segments_holding_several() {
    // A flush keeps every version an open snapshot may read, so one
    // segment holds old and new versions of a key side by side; a merged
    // scan (here: own writes beside the segment) must take each key's
    // newest version once, and hide its tombstones. The old snapshot
    // reads its own view (the memtable as it was).
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    for k in 0..1000 {
        txn.insert("kv", row(k, "a")).unwrap();
    }
    txn.commit().unwrap();
    let mut old = db.begin(Isolation::RepeatableRead);
    assert_eq!(scan_range(&mut old, 0, 3).len(), 3);
    let mut txn = db.begin(Isolation::ReadCommitted);
    for k in 0..500 {
        txn.upsert("kv", row(k, "c")).unwrap();
    }
    for k in 500..600 {
        let key = txn.key("kv", &[Value::Int64(k)]).unwrap();
        txn.delete("kv", &key).unwrap();
    }
    txn.commit().unwrap();
    db.flush().unwrap();
    old.insert("kv", row(5000, "mine")).unwrap();
    let mut expected: Vec<(i64, String)> = (0..1000).map(|k| (k, "a".to_string())).collect();
    expected.push((5000, "mine".to_string()));
    assert_eq!(scan_range(&mut old, 0, 6000), expected);

    let mut new = db.begin(Isolation::ReadCommitted);
    new.insert("kv", row(5000, "theirs")).unwrap();
    let mut expected: Vec<(i64, String)> = (0..1000)
        .filter(|k| !(500..600).contains(k))
        .map(|k| (k, if k < 500 { "c" } else { "a" }.to_string()))
        .collect();
    expected.push((5000, "theirs".to_string()));
    assert_eq!(scan_range(&mut new, 0, 6000), expected);
}

#[test]
fn schemas_are_transactional_guard_their_tables_and_survive_crashes() {
    let (fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.create_schema("sensors").unwrap();
    let mut other = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        other
            .create_table(
                "sensors.t",
                vec![ColumnSpec::new("x", DataType::Int32)],
                &["x"]
            )
            .unwrap_err()
            .kind(),
        ErrorKind::UndefinedSchema,
        "an uncommitted schema is private"
    );
    txn.create_table(
        "sensors.t",
        vec![ColumnSpec::new("x", DataType::Int32)],
        &["x"],
    )
    .unwrap();
    txn.insert("sensors.t", vec![Value::Int32(1)]).unwrap();
    assert_eq!(
        txn.drop_schema("sensors").unwrap_err().kind(),
        ErrorKind::SchemaNotEmpty
    );
    txn.commit().unwrap();
    assert_eq!(
        db.begin(Isolation::ReadCommitted)
            .create_schema("sensors")
            .unwrap_err()
            .kind(),
        ErrorKind::DuplicateSchema
    );

    // Recovered from the WAL, then from the manifest after a flush.
    let fs = fs.crash(CrashMode::DropUnsynced);
    let db = open(&fs);
    assert!(db.catalog().has_schema("sensors"));
    assert!(db.catalog().table("sensors.t").is_ok());
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.create_schema("empty").unwrap();
    txn.commit().unwrap();
    db.flush().unwrap();
    let fs = fs.crash(CrashMode::DropUnsynced);
    let db = open(&fs);
    let catalog = db.catalog();
    let schemas: Vec<&str> = catalog.schemas().collect();
    assert_eq!(schemas, vec!["public", "empty", "sensors"]);

    // A schema dropped while another transaction creates a table in it:
    // the later commit fails.
    let mut creator = db.begin(Isolation::ReadCommitted);
    creator
        .create_table(
            "empty.t",
            vec![ColumnSpec::new("x", DataType::Int32)],
            &["x"],
        )
        .unwrap();
    let mut dropper = db.begin(Isolation::ReadCommitted);
    dropper.drop_schema("empty").unwrap();
    dropper.commit().unwrap();
    assert_eq!(
        creator.commit().unwrap_err().kind(),
        ErrorKind::UndefinedSchema
    );
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.drop_table("sensors.t").unwrap();
    txn.drop_schema("sensors").unwrap();
    txn.commit().unwrap();
    let db = open(&fs.crash(CrashMode::DropUnsynced));
    let catalog = db.catalog();
    assert_eq!(catalog.schemas().collect::<Vec<_>>(), vec!["public"]);
}

/// `users (id bigint primary key, email text)` with a unique email.
fn users(db: &Database) {
    let mut txn = db.begin(Isolation::ReadCommitted);
    let columns = vec![
        ColumnSpec::new("id", DataType::Int64),
        ColumnSpec::new("email", DataType::Text { max_chars: None }),
    ];
    txn.create_table("users", columns, &["id"]).unwrap();
    txn.add_unique("users", "users_email_key", &["email"])
        .unwrap();
    txn.commit().unwrap();
}

fn user(id: i64, email: Option<&str>) -> Vec<Value> {
    let email = email.map_or(Value::Null, |e| Value::Text(e.into()));
    vec![Value::Int64(id), email]
}

fn violation(result: Result<()>) -> String {
    let error = result.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UniqueViolation, "{error}");
    error.to_string()
}

#[test]
fn unique_constraints_follow_every_write_and_allow_nulls() {
    let (fs, db) = setup();
    users(&db);
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.insert("users", user(1, Some("a@x"))).unwrap();
    let message = violation(txn.insert("users", user(2, Some("a@x"))));
    assert!(message.contains("\"users_email_key\""), "{message}");
    assert!(message.contains("Key (email)=(a@x)"), "{message}");
    // NULLs never conflict.
    txn.insert("users", user(3, None)).unwrap();
    txn.insert("users", user(4, None)).unwrap();
    // An update frees its old value and takes the new one.
    let key = |txn: &mut Transaction, id: i64| txn.key("users", &[Value::Int64(id)]).unwrap();
    let k1 = key(&mut txn, 1);
    txn.update("users", &k1, user(1, Some("b@x"))).unwrap();
    txn.insert("users", user(5, Some("a@x"))).unwrap();
    let k3 = key(&mut txn, 3);
    violation(txn.update("users", &k3, user(3, Some("b@x"))));
    // A failed write changed nothing: row 3 is still NULL and b@x is 1's.
    assert_eq!(txn.get("users", &k3).unwrap(), Some(user(3, None)));
    assert_eq!(
        txn.find_unique("users", "users_email_key", &[Value::Text("b@x".into())])
            .unwrap(),
        Some(k1.clone())
    );
    // Deletes and upserts.
    assert!(txn.delete("users", &k1).unwrap());
    txn.upsert("users", user(3, Some("b@x"))).unwrap();
    violation(txn.upsert("users", user(4, Some("b@x"))));
    txn.commit().unwrap();

    // Partial and whole range deletes free their values.
    let mut txn = db.begin(Isolation::ReadCommitted);
    let range = KeyRange {
        start: std::ops::Bound::Included(vec![Value::Int64(3)]),
        end: std::ops::Bound::Included(vec![Value::Int64(3)]),
    };
    assert_eq!(txn.delete_range("users", range).unwrap(), 1);
    txn.insert("users", user(6, Some("b@x"))).unwrap();
    violation(txn.insert("users", user(7, Some("a@x"))));
    txn.commit().unwrap();

    // After a flush (index rows in segments) and a crash the constraint
    // still holds.
    db.flush().unwrap();
    let fs = fs.crash(CrashMode::DropUnsynced);
    let db = open(&fs);
    let mut txn = db.begin(Isolation::ReadCommitted);
    violation(txn.insert("users", user(8, Some("b@x"))));
    assert_eq!(txn.delete_range("users", KeyRange::all()).unwrap(), 3);
    txn.insert("users", user(8, Some("b@x"))).unwrap();
    txn.insert("users", user(9, Some("a@x"))).unwrap();
    txn.commit().unwrap();
}

#[test]
fn concurrent_inserts_of_one_unique_value_let_only_the_first_commit() {
    let (_fs, db) = setup();
    users(&db);
    let mut a = db.begin(Isolation::ReadCommitted);
    let mut b = db.begin(Isolation::ReadCommitted);
    a.insert("users", user(1, Some("same"))).unwrap();
    b.insert("users", user(2, Some("same"))).unwrap();
    a.commit().unwrap();
    assert_eq!(b.commit().unwrap_err().kind(), ErrorKind::UniqueViolation);
}

#[test]
fn unique_constraints_are_checked_when_added_and_go_with_their_columns() {
    let (_fs, db) = setup();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.insert("kv", row(1, "same")).unwrap();
    txn.insert("kv", row(2, "same")).unwrap();
    violation(txn.add_unique("kv", "kv_v_key", &["v"]));
    txn.rollback();

    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.insert("kv", row(1, "one")).unwrap();
    txn.add_unique("kv", "kv_v_key", &["v"]).unwrap();
    violation(txn.insert("kv", row(2, "one")));
    let without = txn.table("kv").unwrap().with_column_dropped("v").unwrap();
    assert!(without.unique.is_empty());
    let index = txn.table("kv").unwrap().unique[0].table;
    txn.alter_table(without).unwrap();
    assert!(txn.catalog().table_by_id(index).is_none());
    txn.commit().unwrap();
    assert!(
        db.catalog().table("kv_v_key").is_err(),
        "index tables have no name"
    );

    // Dropping the table drops its index tables.
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.add_unique("kv", "kv_k_key", &["k"]).unwrap();
    let index = txn.table("kv").unwrap().unique[0].table;
    txn.drop_table("kv").unwrap();
    txn.commit().unwrap();
    assert!(db.catalog().table_by_id(index).is_none());
}

#[test]
fn lower_bound_scans_prune_row_groups_even_over_older_segments() {
    let (_fs, db) = setup();
    let write_all = |v: &str| {
        let mut txn = db.begin(Isolation::ReadCommitted);
        for k in 0..10 {
            txn.upsert("kv", row(k, v)).unwrap();
        }
        txn.commit().unwrap();
        db.flush().unwrap();
    };
    write_all("b");
    write_all("a");
    let request = |lower_bound_only| ScanRequest {
        predicates: vec![crate::scan::Predicate {
            column: "v".into(),
            op: crate::scan::CmpOp::Eq,
            value: Value::Text("b".into()),
        }],
        lower_bound_only,
        with_keys: true,
        ..ScanRequest::default()
    };
    let mut txn = db.begin(Isolation::ReadCommitted);
    let values = |txn: &mut Transaction, lower_bound_only| -> Vec<String> {
        let mut rows = RowScan::new(txn.scan_batches("kv", &request(lower_bound_only)).unwrap());
        let mut out = Vec::new();
        while let Some(row) = rows.next().transpose().unwrap() {
            if let Value::Text(v) = &row.values[1] {
                out.push(v.clone());
            }
        }
        out
    };
    // The newer segment cannot be pruned over the older one: the rows
    // read are the visible ones (the caller's filter then drops them).
    assert_eq!(values(&mut txn, false), vec!["a"; 10]);
    // A lower-bound scan prunes it, and the stale versions come back.
    assert_eq!(values(&mut txn, true), vec!["b"; 10]);
}

#[test]
fn key_column_zones_prune_over_older_segments_but_never_past_a_tombstone() {
    let (_fs, db) = setup();
    let commit = |deletes: &[i64], upserts: std::ops::Range<i64>, v: &str| {
        let mut txn = db.begin(Isolation::ReadCommitted);
        for &k in deletes {
            let key = txn.key("kv", &[Value::Int64(k)]).unwrap();
            txn.delete("kv", &key).unwrap();
        }
        for k in upserts {
            txn.upsert("kv", row(k, v)).unwrap();
        }
        txn.commit().unwrap();
        db.flush().unwrap();
    };
    let key_is_5 = ScanRequest {
        predicates: vec![crate::scan::Predicate {
            column: "k".into(),
            op: crate::scan::CmpOp::Eq,
            value: Value::Int64(5),
        }],
        with_keys: true,
        ..ScanRequest::default()
    };
    let with_5 = |txn: &mut Transaction| -> Vec<String> {
        RowScan::new(txn.scan_batches("kv", &key_is_5).unwrap())
            .map(|row| row.unwrap())
            .filter(|row| row.values[0] == Value::Int64(5))
            .map(|row| format!("{:?}", row.values[1]))
            .collect()
    };
    commit(&[], 0..10, "old");
    commit(&[], 6..10, "new");
    let mut txn = db.begin(Isolation::ReadCommitted);
    // The newer segment (keys 6..10) is skipped though the older one lies
    // under it: no version of key 5 can be in it.
    assert_eq!(
        txn.scan_batches("kv", &key_is_5).unwrap().segment_rows(),
        10
    );
    assert_eq!(
        with_5(&mut txn),
        vec![format!("{:?}", Value::Text("old".into()))]
    );
    // A tombstone for key 5 beside keys 6..10: the zone of `k` (NULL in
    // the tombstone) no longer rules the row group out, and 5 stays deleted.
    commit(&[5], 6..10, "newer");
    let mut txn = db.begin(Isolation::ReadCommitted);
    assert!(with_5(&mut txn).is_empty());
}

#[test]
fn batch_scans_of_one_settled_segment_return_exactly_their_range() {
    // Without keys in the output, a scan of one segment whose rows are all
    // visible and none a tombstone reads no system columns when the range
    // ends are found exactly (an integer key's packed space). Text keys
    // sharing their first 8 bytes are found only to that prefix: the rows
    // past either end must still be cut by key.
    let fs = FaultFs::new();
    let db = open(&fs);
    let mut txn = db.begin(Isolation::ReadCommitted);
    let text = DataType::Text { max_chars: None };
    for (table, key_type) in [("by_name", text), ("by_id", DataType::Int64)] {
        let columns = vec![
            ColumnSpec::new("k", key_type),
            ColumnSpec::new("n", DataType::Int64),
        ];
        txn.create_table(table, columns, &["k"]).unwrap();
    }
    const ROWS: i64 = 20_000;
    let name = |i: i64| Value::Text(format!("sensor-a-{i:06}"));
    for i in 0..ROWS {
        txn.insert("by_name", vec![name(i), Value::Int64(i)])
            .unwrap();
        txn.insert("by_id", vec![Value::Int64(i), Value::Int64(i)])
            .unwrap();
    }
    txn.commit().unwrap();
    db.flush().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    for (lo, hi) in [(100, 200), (0, 1), (ROWS - 1, ROWS), (500, 15_000)] {
        for (table, key) in [
            ("by_name", &name as &dyn Fn(i64) -> Value),
            ("by_id", &Value::Int64),
        ] {
            let request = ScanRequest {
                range: KeyRange {
                    start: Bound::Included(vec![key(lo)]),
                    end: Bound::Excluded(vec![key(hi)]),
                },
                columns: Some(vec!["n".to_string()]),
                ..ScanRequest::default()
            };
            let ns: Vec<i64> = txn
                .scan_batches(table, &request)
                .unwrap()
                .flat_map(|batch| {
                    let batch = batch.unwrap();
                    let n = batch
                        .column(0)
                        .as_primitive::<arrow::datatypes::Int64Type>();
                    n.values().to_vec()
                })
                .collect();
            assert_eq!(ns, (lo..hi).collect::<Vec<_>>(), "{table} [{lo}, {hi})");
            // No columns at all (`count(*)`): batches of row counts.
            let count = ScanRequest {
                columns: Some(Vec::new()),
                ..request
            };
            let rows: usize = txn
                .scan_batches(table, &count)
                .unwrap()
                .map(|batch| batch.unwrap().num_rows())
                .sum();
            assert_eq!(rows as i64, hi - lo, "{table} [{lo}, {hi}) counted");
        }
    }
}

#[test]
fn stats_count_fsyncs_rows_flushes_compactions_and_segments() {
    let (_fs, db) = setup();
    let before = db.stats();
    for batch in 0..3 {
        let mut txn = db.begin(Isolation::ReadCommitted);
        for k in 0..10 {
            txn.insert("kv", row(batch * 10 + k, "v")).unwrap();
        }
        txn.commit().unwrap();
        db.flush().unwrap();
    }
    let mut txn = db.begin(Isolation::ReadCommitted);
    let key = txn.key("kv", &[Value::Int64(0)]).unwrap();
    assert!(txn.delete("kv", &key).unwrap());
    txn.commit().unwrap();
    let stats = db.stats();
    assert_eq!(stats.rows_written - before.rows_written, 31);
    assert_eq!(stats.wal_fsync.count - before.wal_fsync.count, 4);
    assert_eq!(stats.flushes - before.flushes, 3);
    assert_eq!(stats.segments, 3);
    assert!(stats.memtable_bytes > 0, "the delete is in the memtable");
    db.compact().unwrap();
    let stats = db.stats();
    assert!(stats.compactions > before.compactions);
    assert!(stats.segments < 3, "{stats:?}");
}

#[test]
fn a_primary_key_added_later_rekeys_the_rows_and_keeps_unique_constraints() {
    let fs = FaultFs::new();
    let db = open(&fs);
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.create_table("kv", kv_columns(), &[]).unwrap();
    txn.add_unique("kv", "kv_v_key", &["v"]).unwrap();
    for (k, v) in [(3, "c"), (1, "a"), (2, "b")] {
        txn.insert("kv", row(k, v)).unwrap();
    }
    txn.commit().unwrap();

    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.add_primary_key("kv", &["k"]).unwrap();
    txn.commit().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    // Rows now come back in key order and are found by key.
    assert_eq!(
        all(&mut txn),
        vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
    );
    assert_eq!(get(&mut txn, 2).as_deref(), Some("b"));
    let err = txn.insert("kv", row(4, "a")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "kv_v_key kept");
    let err = txn.insert("kv", row(1, "z")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "the new key");
    let err = txn.add_primary_key("kv", &["v"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "one primary key");
    drop(txn);

    // A repeated or NULL key fails, and leaves the table as it was.
    let mut txn = db.begin(Isolation::ReadCommitted);
    let columns = vec![ColumnSpec::new("x", DataType::Int64)];
    txn.create_table("dup", columns, &[]).unwrap();
    txn.insert("dup", vec![Value::Int64(1)]).unwrap();
    txn.insert("dup", vec![Value::Int64(1)]).unwrap();
    txn.insert("dup", vec![Value::Null]).unwrap();
    txn.commit().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    let err = txn.add_primary_key("dup", &["x"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation);
    drop(txn);
    let mut txn = db.begin(Isolation::ReadCommitted);
    assert!(txn.table("dup").unwrap().has_row_id());
    assert_eq!(txn.scan("dup", KeyRange::all()).unwrap().count(), 3);
}
