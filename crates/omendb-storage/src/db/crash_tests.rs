//! Crash tests with a real process and a real disk.
//!
//! The child (this test binary, re-run on [`crash_child_writes_until_killed`])
//! commits transactions as fast as it can and prints each one after its
//! commit returned. The parent `SIGKILL`s it at a random moment, reopens the
//! database and checks that every acknowledged commit is there and that no
//! transaction is partly there: each one inserts five rows of a batch into
//! `parts` and adds five to the single row of `totals`, so `totals` must
//! equal five times the number of batches, and every batch must be whole.
//!
//! `OMENDB_CRASH_CYCLES` sets the kill cycles (default 20; 1,000 for the
//! long opt-in run), `OMENDB_TEST_SEED` replays the kill timings.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::catalog::ColumnSpec;
use crate::db::{Database, Options};
use crate::scan::KeyRange;
use crate::test_rng::TestRng;
use crate::txn::Isolation;
use crate::types::{DataType, Value};

const CHILD: &str = "db::crash_tests::crash_child_writes_until_killed";

/// Tiny memtables, so the child flushes all the time and kills land in
/// flushes and manifest installs too.
fn options() -> Options {
    Options {
        memtable_bytes: 32 << 10,
        ..Options::default()
    }
}
const PARTS: i32 = 5;

fn create_tables(dir: &Path) {
    let db = Database::open(dir, options()).unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    let parts = vec![
        ColumnSpec::new("batch", DataType::Int64),
        ColumnSpec::new("part", DataType::Int32),
    ];
    txn.create_table("parts", parts, &["batch", "part"])
        .unwrap();
    let totals = vec![
        ColumnSpec::new("id", DataType::Int32),
        ColumnSpec::new("n", DataType::Int64),
    ];
    txn.create_table("totals", totals, &["id"]).unwrap();
    txn.insert("totals", vec![Value::Int32(0), Value::Int64(0)])
        .unwrap();
    txn.commit().unwrap();
}

/// Batches found, with their row counts, and the running total.
fn read_state(db: &Database) -> (BTreeMap<i64, i32>, i64) {
    let mut txn = db.begin(Isolation::RepeatableRead);
    let mut batches = BTreeMap::new();
    for row in txn.scan("parts", KeyRange::all()).unwrap() {
        match row.unwrap().values[0] {
            Value::Int64(batch) => *batches.entry(batch).or_insert(0) += 1,
            ref other => panic!("batch column holds {other:?}"),
        }
    }
    let key = txn.key("totals", &[Value::Int32(0)]).unwrap();
    let total = match txn.get("totals", &key).unwrap().as_deref() {
        Some([_, Value::Int64(n)]) => *n,
        other => panic!("totals row is {other:?}"),
    };
    (batches, total)
}

/// Kills the child at random moments; checks the database after each kill.
#[test]
fn crash_kill_9_at_random_moments_keeps_every_acknowledged_commit() {
    let cycles: u64 = std::env::var("OMENDB_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut rng = TestRng::new("crash_kill_9_at_random_moments_keeps_every_acknowledged_commit");
    let dir =
        std::env::temp_dir().join(format!("omendb-crash-{}-{}", std::process::id(), rng.u64()));
    std::fs::create_dir_all(&dir).unwrap();
    create_tables(&dir);
    let exe = std::env::current_exe().unwrap();

    let mut acknowledged: Vec<i64> = Vec::new();
    // Batches below the highest announced retention cutoff may be gone.
    let mut retained = 0;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                CHILD,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("OMENDB_CRASH_DIR", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let acks = acks.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(batch) = line
                        .strip_prefix("ack ")
                        .and_then(|b| b.parse::<i64>().ok())
                    {
                        acks.lock().unwrap().push(batch);
                    }
                    if let Some(cutoff) = line
                        .strip_prefix("retaining ")
                        .and_then(|b| b.parse::<i64>().ok())
                    {
                        // Batches below an announced cutoff may be gone.
                        acks.lock().unwrap().push(-cutoff);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for &ack in acks.lock().unwrap().iter() {
            if ack < 0 {
                retained = retained.max(-ack);
            } else {
                acknowledged.push(ack);
            }
        }

        let db = Database::open(&dir, options()).unwrap();
        let (batches, total) = read_state(&db);
        for (batch, rows) in &batches {
            assert_eq!(*rows, PARTS, "cycle {cycle}: batch {batch} is partly there");
        }
        assert_eq!(
            total,
            i64::from(PARTS) * batches.len() as i64,
            "cycle {cycle}: totals and parts disagree"
        );
        for batch in acknowledged.iter().filter(|&&b| b >= retained) {
            assert!(
                batches.contains_key(batch),
                "cycle {cycle}: acknowledged batch {batch} lost"
            );
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "the child never committed: is the test binary runnable?"
    );
    let db = Database::open(&dir, options()).unwrap();
    let parts = db.catalog().table("parts").unwrap().id;
    eprintln!(
        "{cycles} kills, {} acknowledged commits checked, {} segments at the end",
        acknowledged.len(),
        db.segment_count(parts)
    );
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Time-series retention: deletes every batch below `cutoff` (whole
/// segments where possible) and takes them off the total, atomically.
fn retain(db: &Database, total_key: &[u8], cutoff: i64) {
    // Announced before: the retention may commit and the kill come before
    // anything else is printed.
    println!("retaining {cutoff}");
    let mut txn = db.begin(Isolation::RepeatableRead);
    let range = KeyRange {
        start: std::ops::Bound::Unbounded,
        end: std::ops::Bound::Excluded(vec![Value::Int64(cutoff)]),
    };
    let deleted = txn.delete_range("parts", range).unwrap() as i64;
    let n = match txn.get("totals", total_key).unwrap().as_deref() {
        Some([_, Value::Int64(n)]) => *n,
        other => panic!("totals row is {other:?}"),
    };
    txn.update(
        "totals",
        total_key,
        vec![Value::Int32(0), Value::Int64(n - deleted)],
    )
    .unwrap();
    txn.commit().unwrap();
}

/// The child: commits batches until killed. Does nothing when run by hand.
#[test]
#[ignore = "child process of the crash test; only acts with OMENDB_CRASH_DIR set"]
fn crash_child_writes_until_killed() {
    let Some(dir) = std::env::var_os("OMENDB_CRASH_DIR").map(PathBuf::from) else {
        return;
    };
    let db = Database::open(&dir, options()).unwrap();
    let (batches, _) = read_state(&db);
    let mut batch = batches.keys().next_back().map_or(0, |b| b + 1);
    let total_key = db
        .begin(Isolation::ReadCommitted)
        .key("totals", &[Value::Int32(0)])
        .unwrap();
    loop {
        let mut txn = db.begin(Isolation::RepeatableRead);
        for part in 0..PARTS {
            txn.insert("parts", vec![Value::Int64(batch), Value::Int32(part)])
                .unwrap();
        }
        let n = match txn.get("totals", &total_key).unwrap().as_deref() {
            Some([_, Value::Int64(n)]) => *n,
            other => panic!("totals row is {other:?}"),
        };
        txn.update(
            "totals",
            &total_key,
            vec![Value::Int32(0), Value::Int64(n + i64::from(PARTS))],
        )
        .unwrap();
        txn.commit().unwrap();
        println!("ack {batch}");
        batch += 1;
        if batch % 50 == 0 {
            retain(&db, &total_key, batch - 30);
        }
    }
}

/// Fault injection at the database level: a full disk or an I/O error
/// during a flush fails the flush, never a committed row.
mod faults {
    use std::sync::Arc;

    use crate::catalog::ColumnSpec;
    use crate::db::{Database, Options};
    use crate::error::ErrorKind;
    use crate::io::FileSystem;
    use crate::io::fault::{CrashMode, Fault, FaultFs, Op};
    use crate::scan::KeyRange;
    use crate::txn::Isolation;
    use crate::types::{DataType, Value};

    fn open(fs: &FaultFs, options: Options) -> Database {
        Database::open_with(Arc::new(fs.clone()), "/db", options).unwrap()
    }

    fn count(db: &Database) -> usize {
        let mut txn = db.begin(Isolation::ReadCommitted);
        let rows: crate::error::Result<Vec<_>> = txn.scan("t", KeyRange::all()).unwrap().collect();
        rows.unwrap().len()
    }

    fn fill(db: &Database, from: i64, n: i64) {
        let mut txn = db.begin(Isolation::ReadCommitted);
        for k in from..from + n {
            txn.insert("t", vec![Value::Int64(k), Value::Text("x".repeat(100))])
                .unwrap();
        }
        txn.commit().unwrap();
    }

    fn setup(fs: &FaultFs) -> Database {
        // Large memtables: flushes only when the test asks.
        let db = open(
            fs,
            Options {
                memtable_bytes: 1 << 30,
                ..Options::default()
            },
        );
        let mut txn = db.begin(Isolation::ReadCommitted);
        let columns = vec![
            ColumnSpec::new("k", DataType::Int64),
            ColumnSpec::new("v", DataType::Text { max_chars: None }),
        ];
        txn.create_table("t", columns, &["k"]).unwrap();
        txn.commit().unwrap();
        db
    }

    fn used(fs: &FaultFs) -> u64 {
        ["/db/wal", "/db/segments", "/db"]
            .iter()
            .flat_map(|d| {
                fs.list(std::path::Path::new(d))
                    .unwrap()
                    .into_iter()
                    .map(move |n| format!("{d}/{n}"))
            })
            .map(|p| {
                fs.read_all(std::path::Path::new(&p))
                    .map_or(0, |b| b.len() as u64)
            })
            .sum()
    }

    #[test]
    fn a_full_disk_fails_the_flush_and_writes_but_reads_go_on_and_nothing_is_lost() {
        let fs = FaultFs::new();
        let db = setup(&fs);
        fill(&db, 0, 2000);
        fs.set_disk_limit(Some(used(&fs) + 1000));
        let err = db.flush().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DiskFull, "{err}");
        assert_eq!(count(&db), 2000, "reads go on");
        let mut txn = db.begin(Isolation::ReadCommitted);
        for k in 5000..5100 {
            txn.insert("t", vec![Value::Int64(k), Value::Text("y".repeat(100))])
                .unwrap();
        }
        let err = txn.commit().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DiskFull, "{err}");
        assert_eq!(count(&db), 2000, "the failed commit left nothing behind");

        fs.set_disk_limit(None);
        fill(&db, 2000, 10);
        db.flush().unwrap();
        assert_eq!(count(&db), 2010);
        drop(db);
        let after = open(&fs.crash(CrashMode::DropUnsynced), Options::default());
        assert_eq!(
            count(&after),
            2010,
            "every committed row survives the crash"
        );
    }

    #[test]
    fn an_io_error_writing_a_segment_fails_the_flush_and_a_retry_succeeds() {
        let fs = FaultFs::new();
        let db = setup(&fs);
        fill(&db, 0, 500);
        fs.inject(Fault {
            times: Some(1),
            ..Fault::new(Op::Write, "segments", std::io::ErrorKind::Other)
        });
        assert_eq!(db.flush().unwrap_err().kind(), ErrorKind::Io);
        assert_eq!(count(&db), 500);
        db.flush().unwrap();
        assert_eq!(db.segment_count(db.catalog().table("t").unwrap().id), 1);
        drop(db);
        let crashed = fs.crash(CrashMode::TornTail { seed: 7 });
        let after = open(&crashed, Options::default());
        assert_eq!(count(&after), 500);
        // The live segment's Parquet and row files; the failed one's are gone.
        let table = after.catalog().table("t").unwrap().id;
        let id = after.engine.view().segments(table)[0].meta.id;
        assert_eq!(
            crashed.list(std::path::Path::new("/db/segments")).unwrap(),
            [format!("{id:020}.parquet"), format!("{id:020}.rows")],
            "the failed segment was removed"
        );
    }

    #[test]
    fn a_failed_sync_of_acknowledged_async_commits_makes_the_database_read_only() {
        let fs = FaultFs::new();
        let db = open(
            &fs,
            Options {
                synchronous_commit: false,
                ..Options::default()
            },
        );
        fs.inject(Fault::new(Op::Sync, ".wal", std::io::ErrorKind::Other));
        let mut txn = db.begin(Isolation::ReadCommitted);
        txn.create_table("t", vec![ColumnSpec::new("k", DataType::Int64)], &["k"])
            .unwrap();
        txn.commit().expect("returns before the WAL sync");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for k in 0.. {
            let mut txn = db.begin(Isolation::ReadCommitted);
            txn.insert("t", vec![Value::Int64(k)]).unwrap();
            match txn.commit() {
                Err(e) if e.kind() == ErrorKind::ReadOnly => break,
                _ if std::time::Instant::now() > deadline => {
                    panic!("the database never turned read-only")
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        assert!(db.take_background_error().is_some());
    }
}
