//! Model-based randomized test: the engine against a `BTreeMap` model.
//!
//! Up to four transactions run interleaved, each READ COMMITTED or
//! REPEATABLE READ, doing inserts, upserts, updates, deletes, point reads,
//! range scans, savepoints, commits and rollbacks; between them the
//! database is flushed, compacted, crashed and reopened (the background
//! policy runs in the crash test instead, where timing is free to vary). The model predicts
//! every read, every unique violation and the outcome of every commit
//! (first committer wins), so any divergence fails with the seed.
//!
//! `OMENDB_TEST_SEED` replays one seed; `OMENDB_MODEL_STEPS` sets steps per
//! seed (default 3000) and `OMENDB_MODEL_SEEDS` the number of seeds
//! (default 6): e.g. `OMENDB_MODEL_SEEDS=200 OMENDB_MODEL_STEPS=20000` for
//! a long run.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::catalog::ColumnSpec;
use crate::db::{Database, Options};
use crate::error::ErrorKind;
use crate::io::fault::{CrashMode, FaultFs};
use crate::scan::KeyRange;
use crate::test_rng::TestRng;
use crate::txn::{Isolation, Transaction};
use crate::types::{DataType, Value};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type State = BTreeMap<i64, String>;

/// A transaction's writes: key → (new value or delete, is insert, commit
/// count it read at).
type Writes = BTreeMap<i64, (Option<String>, bool, u64)>;

/// What the model knows of one open transaction.
struct ModelTxn {
    txn: Transaction,
    isolation: Isolation,
    /// The committed state of its snapshot and the commit count then.
    snapshot: Option<(State, u64)>,
    writes: Writes,
    savepoint: Option<Writes>,
}

struct Model {
    committed: State,
    /// Commit count at which each key was last written.
    written_at: BTreeMap<i64, u64>,
    commits: u64,
}

impl Model {
    fn snapshot(&self) -> (State, u64) {
        (self.committed.clone(), self.commits)
    }
}

impl ModelTxn {
    /// Takes the snapshot the engine takes: per statement under READ
    /// COMMITTED, once under REPEATABLE READ.
    fn statement(&mut self, model: &Model) {
        self.txn.begin_statement();
        if self.isolation == Isolation::ReadCommitted || self.snapshot.is_none() {
            self.snapshot = Some(model.snapshot());
        }
    }

    fn visible(&self) -> State {
        let mut state = self
            .snapshot
            .as_ref()
            .map(|(s, _)| s.clone())
            .unwrap_or_default();
        for (key, (value, _, _)) in &self.writes {
            match value {
                Some(v) => state.insert(*key, v.clone()),
                None => state.remove(key),
            };
        }
        state
    }

    fn record(&mut self, key: i64, value: Option<String>, insert: bool) {
        let read = self.snapshot.as_ref().map_or(0, |(_, at)| *at);
        let entry = self.writes.entry(key).or_insert((None, insert, read));
        entry.0 = value;
    }

    /// Whether overwriting `key` now must fail at once: under REPEATABLE
    /// READ, the first write of a key committed since the snapshot.
    fn overwrite_doomed(&self, model: &Model, key: i64) -> bool {
        let read = self.snapshot.as_ref().map_or(0, |(_, at)| *at);
        self.isolation == Isolation::RepeatableRead
            && !self.writes.contains_key(&key)
            && model.written_at.get(&key).is_some_and(|&at| at > read)
    }

    /// The error the commit must fail with, if any.
    /// The class of each write another transaction beat: the commit must
    /// fail with one of them (the engine reports the first it checks).
    fn expected_conflicts(&self, model: &Model) -> Vec<ErrorKind> {
        self.writes
            .iter()
            .filter(|(key, (_, _, read))| model.written_at.get(key).is_some_and(|at| at > read))
            .map(|(key, (_, insert, _))| {
                if *insert && model.committed.contains_key(key) {
                    ErrorKind::UniqueViolation
                } else {
                    ErrorKind::SerializationFailure
                }
            })
            .collect()
    }
}

/// Checks a write's outcome against the model: a `doomed` write fails with
/// a serialization failure (`None`), unless `may_succeed`; any other write
/// succeeds.
fn expect_write<T>(
    result: crate::Result<T>,
    doomed: bool,
    may_succeed: bool,
    ctx: &str,
) -> Option<T> {
    match result {
        Ok(value) => {
            assert!(
                !doomed || may_succeed,
                "{ctx}: write of a row changed since the snapshot succeeded"
            );
            Some(value)
        }
        Err(e) => {
            assert!(doomed, "{ctx}: write failed: {e}");
            assert_eq!(e.kind(), ErrorKind::SerializationFailure, "{ctx}: {e}");
            None
        }
    }
}

fn key(txn: &mut Transaction, k: i64) -> bytes::Bytes {
    txn.key("kv", &[Value::Int64(k)]).unwrap()
}

fn row(k: i64, v: &str) -> Vec<Value> {
    vec![Value::Int64(k), Value::Text(v.into())]
}

fn scan(txn: &mut Transaction, lo: i64, hi: i64) -> State {
    let range = KeyRange {
        start: Bound::Included(vec![Value::Int64(lo)]),
        end: Bound::Excluded(vec![Value::Int64(hi)]),
    };
    txn.scan("kv", range)
        .unwrap()
        .map(|r| match r.unwrap().values.as_slice() {
            [Value::Int64(k), Value::Text(v)] => (*k, v.clone()),
            other => panic!("unexpected row {other:?}"),
        })
        .collect()
}

/// Flushes and compactions happen only as seeded steps, never in the
/// background, so a seed replays exactly.
fn open(fs: &FaultFs) -> Database {
    let options = Options {
        memtable_bytes: usize::MAX,
        ..Options::default()
    };
    Database::open_with(Arc::new(fs.clone()), "/db", options).unwrap()
}

/// With `OMENDB_MODEL_TRACE=<key>`, prints what happens to that key.
fn trace_key() -> Option<i64> {
    std::env::var("OMENDB_MODEL_TRACE")
        .ok()
        .and_then(|k| k.parse().ok())
}

/// The engine's segments of `kv` and what each holds of `key`.
fn trace_engine(db: &Database, key: i64) {
    let view = db.engine.view();
    let encoded = crate::types::KeyCodec::new(vec![DataType::Int64]).and_then(|c| {
        let mut out = Vec::new();
        c.encode(&[&Value::Int64(key)], &mut out).map(|()| out)
    });
    let Ok(encoded) = encoded else { return };
    for segments in view.segments.values() {
        for s in segments {
            eprintln!(
                "    segment {} ts {}..{} dropped at {:?}: {:?}",
                s.meta.id,
                s.meta.min_ts,
                s.meta.max_ts,
                view.dropped.get(&s.meta.id),
                s.find(&encoded, u64::MAX).ok().flatten()
            );
        }
    }
}

fn run(seed_offset: u64, steps: u64) {
    let mut rng = TestRng::new(&format!("model seed #{seed_offset}"));
    let mut fs = FaultFs::new();
    let mut db = open(&fs);
    let mut setup = db.begin(Isolation::ReadCommitted);
    let columns = vec![
        ColumnSpec::new("k", DataType::Int64),
        ColumnSpec::new("v", DataType::Text { max_chars: None }),
    ];
    setup.create_table("kv", columns, &["k"]).unwrap();
    setup.commit().unwrap();

    let mut model = Model {
        committed: State::new(),
        written_at: BTreeMap::new(),
        commits: 0,
    };
    let (mut conflicts, mut reopens, mut flushes, mut compactions) = (0, 0, 0, 0);
    let mut txns: Vec<ModelTxn> = Vec::new();
    // Small key spaces make conflicts common, large ones make scans long.
    let widest = if rng.below(2) == 0 { 12 } else { 200 };
    let key_space = 1 + rng.below(widest) as i64;

    for step in 0..steps {
        let ctx = format!("step {step}");
        // Keep several transactions open so that their writes overlap.
        if txns.len() < 4 && (txns.is_empty() || rng.below(3) == 0) {
            let isolation = if rng.below(2) == 0 {
                Isolation::ReadCommitted
            } else {
                Isolation::RepeatableRead
            };
            let txn = db.begin(isolation);
            txns.push(ModelTxn {
                txn,
                isolation,
                snapshot: None,
                writes: BTreeMap::new(),
                savepoint: None,
            });
            continue;
        }
        if rng.below(40) == 0 {
            // Open transactions keep their snapshots across the flush.
            db.flush().unwrap();
            flushes += 1;
            if let Some(traced) = trace_key() {
                eprintln!("step {step}: flush");
                trace_engine(&db, traced);
            }
            continue;
        }
        if rng.below(80) == 0 {
            // Old snapshots must still read what they saw.
            db.compact().unwrap();
            compactions += 1;
            if let Some(traced) = trace_key() {
                eprintln!("step {step}: compact");
                trace_engine(&db, traced);
            }
            continue;
        }
        if rng.below(250) == 0 {
            // Crash and reopen: open transactions die, commits stay.
            txns.clear();
            drop(db);
            let mode = if rng.below(2) == 0 {
                CrashMode::DropUnsynced
            } else {
                CrashMode::TornTail { seed: rng.u64() }
            };
            fs = fs.crash(mode);
            db = open(&fs);
            reopens += 1;
            if let Some(traced) = trace_key() {
                eprintln!("step {step}: crash and reopen");
                trace_engine(&db, traced);
            }
            continue;
        }
        let choice = 10 + rng.below(90);
        let t = rng.below(txns.len() as u64) as usize;
        let k = rng.below(key_space as u64) as i64;
        let value = format!("v{step}");
        let m = &mut txns[t];
        if let Some(traced) = trace_key()
            && (k == traced || (75..=77).contains(&choice) || choice >= 85)
        {
            eprintln!(
                "step {step}: op {choice} txn {t} {:?} k {k} writes {:?} visible {:?}",
                m.isolation,
                m.writes.get(&traced),
                m.visible().get(&traced)
            );
        }
        match choice {
            10..=29 => {
                m.statement(&model);
                let expected = m.visible().contains_key(&k);
                match m.txn.insert("kv", row(k, &value)) {
                    Ok(()) => {
                        assert!(!expected, "{ctx}: insert of visible key {k} succeeded");
                        m.record(k, Some(value), true);
                    }
                    Err(e) => {
                        assert!(expected, "{ctx}: insert of {k} failed: {e}");
                        assert_eq!(e.kind(), ErrorKind::UniqueViolation, "{ctx}");
                    }
                }
            }
            30..=39 => {
                m.statement(&model);
                let doomed = m.overwrite_doomed(&model, k);
                let result = m.txn.upsert("kv", row(k, &value));
                if expect_write(result, doomed, false, &ctx).is_some() {
                    m.record(k, Some(value), false);
                } else {
                    txns.swap_remove(t).txn.rollback();
                    conflicts += 1;
                }
            }
            40..=49 => {
                // UPDATE reads the row first, as SQL does; the read also
                // makes the engine take its snapshot when the model does.
                m.statement(&model);
                let encoded = key(&mut m.txn, k);
                let current = m.txn.get("kv", &encoded).unwrap();
                assert_eq!(
                    current.is_some(),
                    m.visible().contains_key(&k),
                    "{ctx}: update {k}"
                );
                if current.is_some() {
                    let doomed = m.overwrite_doomed(&model, k);
                    let result = m.txn.update("kv", &encoded, row(k, &value));
                    if expect_write(result, doomed, false, &ctx).is_some() {
                        m.record(k, Some(value), false);
                    } else {
                        txns.swap_remove(t).txn.rollback();
                        conflicts += 1;
                    }
                }
            }
            50..=59 => {
                m.statement(&model);
                let encoded = key(&mut m.txn, k);
                let visible = m.visible().contains_key(&k);
                let doomed = visible && m.overwrite_doomed(&model, k);
                match expect_write(m.txn.delete("kv", &encoded), doomed, false, &ctx) {
                    Some(existed) => {
                        assert_eq!(existed, visible, "{ctx}: delete {k}");
                        if existed {
                            m.record(k, None, false);
                        }
                    }
                    None => {
                        txns.swap_remove(t).txn.rollback();
                        conflicts += 1;
                    }
                }
            }
            60..=69 => {
                m.statement(&model);
                let encoded = key(&mut m.txn, k);
                let got = m
                    .txn
                    .get("kv", &encoded)
                    .unwrap()
                    .map(|values| values[1].clone());
                let want = m.visible().get(&k).map(|v| Value::Text(v.clone()));
                assert_eq!(got, want, "{ctx}: get {k}");
            }
            75..=77 => {
                // Range deletes: whole segments inside the range are dropped
                // rather than tombstoned, which the model cannot tell apart.
                m.statement(&model);
                let hi = k + rng.below(30) as i64;
                let range = KeyRange {
                    start: Bound::Included(vec![Value::Int64(k)]),
                    end: Bound::Excluded(vec![Value::Int64(hi)]),
                };
                let keys: Vec<i64> = m.visible().range(k..hi).map(|(k, _)| *k).collect();
                // A tombstone for a key changed since the snapshot fails at
                // once; a whole-segment drop is checked at commit instead.
                let doomed = keys.iter().any(|&key| m.overwrite_doomed(&model, key));
                match expect_write(m.txn.delete_range("kv", range), doomed, true, &ctx) {
                    Some(deleted) => {
                        assert_eq!(deleted, keys.len() as u64, "{ctx}: delete_range {k}..{hi}");
                        for key in keys {
                            m.record(key, None, false);
                        }
                    }
                    None => {
                        txns.swap_remove(t).txn.rollback();
                        conflicts += 1;
                    }
                }
            }
            70..=74 => {
                m.statement(&model);
                let hi = k + rng.below(20) as i64;
                let want: State = m
                    .visible()
                    .range(k..hi)
                    .map(|(k, v)| (*k, v.clone()))
                    .collect();
                assert_eq!(scan(&mut m.txn, k, hi), want, "{ctx}: scan {k}..{hi}");
            }
            78..=81 => {
                m.txn.savepoint("s");
                m.savepoint = Some(m.writes.clone());
            }
            82..=84 => {
                if let Some(saved) = m.savepoint.clone() {
                    m.txn.rollback_to("s").unwrap();
                    m.writes = saved;
                }
            }
            85..=94 => {
                let m = txns.swap_remove(t);
                let expected = m.expected_conflicts(&model);
                let writes = m.writes.clone();
                match (m.txn.commit(), expected.is_empty()) {
                    (Ok(_), true) => {
                        if !writes.is_empty() {
                            model.commits += 1;
                        }
                        for (k, (value, _, _)) in writes {
                            model.written_at.insert(k, model.commits);
                            match value {
                                Some(v) => model.committed.insert(k, v),
                                None => model.committed.remove(&k),
                            };
                        }
                    }
                    (Err(e), false) => {
                        assert!(
                            expected.contains(&e.kind()),
                            "{ctx}: commit failed with {e}, expected one of {expected:?}"
                        );
                        conflicts += 1;
                    }
                    (outcome, expected) => {
                        panic!("{ctx}: commit gave {outcome:?}, model expected {expected:?}")
                    }
                }
            }
            _ => {
                txns.swap_remove(t).txn.rollback();
            }
        }
    }

    eprintln!(
        "seed #{seed_offset}: {steps} steps, {} commits, {conflicts} conflicts, {flushes} flushes, \
         {compactions} compactions, {reopens} reopens, {} keys",
        model.commits,
        model.committed.len()
    );
    // Everything committed is there after a last crash.
    drop(txns);
    drop(db);
    let db = open(&fs.crash(CrashMode::DropUnsynced));
    let mut txn = db.begin(Isolation::ReadCommitted);
    assert_eq!(
        scan(&mut txn, i64::MIN, i64::MAX),
        model.committed,
        "final state"
    );
}

#[test]
fn engine_matches_a_btreemap_model_over_random_histories() {
    let steps = env("OMENDB_MODEL_STEPS", 3000);
    for seed in 0..env("OMENDB_MODEL_SEEDS", 6) {
        run(seed, steps);
    }
}
