//! Model-based randomized test: the engine against a `BTreeMap` model.
//!
//! Up to four transactions run interleaved, each READ COMMITTED or
//! REPEATABLE READ, doing inserts, upserts, updates, deletes, point reads,
//! range scans, savepoints, commits and rollbacks; between them the
//! database is flushed, compacted, crashed and reopened (the background
//! policy runs in the crash test instead, where timing is free to vary). The model predicts
//! every read, every unique violation, which transaction holds each row
//! lock (so which overwrites must stop for a restart) and the outcome of
//! every commit (first committer wins), so any divergence fails with the
//! seed. A stopped statement is rolled back, as the SQL layer does before
//! it waits and runs the statement again.
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
use crate::txn::{Isolation, StatementMark, Transaction};
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
    /// Names the transaction in [`Model::locks`].
    id: u64,
    /// Where its current statement began.
    mark: Option<StatementMark>,
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
    /// Who holds each locked row.
    locks: BTreeMap<i64, Holder>,
}

/// The holder of a row lock, as far as the model knows: a range delete
/// drops whole segments without locking their rows, and the model cannot
/// tell those rows from tombstoned (locked) ones.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Holder {
    Txn(u64),
    Unknown,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Done,
    /// Stopped for a row another transaction holds or changed
    /// ([`crate::StorageError::RowLocked`]): the statement is rolled back.
    Restart,
    /// A serialization failure: the transaction is rolled back.
    Failed,
}

impl Model {
    fn snapshot(&self) -> (State, u64) {
        (self.committed.clone(), self.commits)
    }

    /// Releases the locks of transaction `id`, which ended.
    fn end(&mut self, id: u64) {
        self.locks.retain(|_, holder| *holder != Holder::Txn(id));
    }
}

impl ModelTxn {
    /// Takes the snapshot the engine takes: per statement under READ
    /// COMMITTED, once under REPEATABLE READ.
    fn statement(&mut self, model: &Model) {
        self.txn.begin_statement();
        self.mark = Some(self.txn.statement_mark());
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

    /// Whether `key` was committed since the snapshot.
    fn changed(&self, model: &Model, key: i64) -> bool {
        let read = self.snapshot.as_ref().map_or(0, |(_, at)| *at);
        model.written_at.get(&key).is_some_and(|&at| at > read)
    }

    /// What the engine may do with an overwrite of `key` now: a key the
    /// transaction wrote before is its own; else the row must be locked,
    /// and a row changed since the snapshot fails (REPEATABLE READ) or
    /// restarts the statement (READ COMMITTED).
    fn overwrite(&self, model: &Model, key: i64) -> Vec<Outcome> {
        if self.writes.contains_key(&key) {
            return vec![Outcome::Done];
        }
        let locked = match (self.changed(model, key), self.isolation) {
            (false, _) => Outcome::Done,
            (true, Isolation::RepeatableRead) => Outcome::Failed,
            (true, Isolation::ReadCommitted) => Outcome::Restart,
        };
        match model.locks.get(&key) {
            Some(Holder::Txn(id)) if *id != self.id => vec![Outcome::Restart],
            Some(Holder::Unknown) => vec![Outcome::Restart, locked],
            _ => vec![locked],
        }
    }

    /// Records the lock an overwrite of `key` that ended in `outcome` took.
    fn locked(&self, model: &mut Model, key: i64, outcome: Outcome) {
        if self.writes.contains_key(&key) || model.locks.get(&key) == Some(&Holder::Unknown) {
            return;
        }
        let other = matches!(model.locks.get(&key), Some(Holder::Txn(id)) if *id != self.id);
        if !other {
            // Done, or stopped by the change after locking the row.
            model.locks.insert(key, Holder::Txn(self.id));
        } else {
            assert_eq!(outcome, Outcome::Restart);
        }
    }

    /// Rolls back the statement a write stopped; counts it.
    fn restart(&mut self) -> u64 {
        if let Some(mark) = self.mark {
            self.txn.rollback_statement(mark);
        }
        1
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

/// Checks a write's outcome against the outcomes the model allows; the
/// value of a done write.
fn expect_write<T>(
    txn: &mut Transaction,
    result: crate::Result<T>,
    allowed: &[Outcome],
    ctx: &str,
) -> (Outcome, Option<T>) {
    let (outcome, value) = match result {
        Ok(value) => (Outcome::Done, Some(value)),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::SerializationFailure, "{ctx}: {e}");
            match txn.take_restart() {
                Some(_) => (Outcome::Restart, None),
                None => (Outcome::Failed, None),
            }
        }
    };
    assert!(
        allowed.contains(&outcome),
        "{ctx}: write gave {outcome:?}, model allowed {allowed:?}"
    );
    (outcome, value)
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
        locks: BTreeMap::new(),
    };
    let (mut conflicts, mut restarts, mut reopens, mut flushes, mut compactions) = (0, 0, 0, 0, 0);
    let mut txns: Vec<ModelTxn> = Vec::new();
    let mut next_id = 0;
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
            next_id += 1;
            txns.push(ModelTxn {
                txn,
                id: next_id,
                mark: None,
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
            model.locks.clear();
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
                let allowed = m.overwrite(&model, k);
                let result = m.txn.upsert("kv", row(k, &value));
                let (outcome, _) = expect_write(&mut m.txn, result, &allowed, &ctx);
                m.locked(&mut model, k, outcome);
                match outcome {
                    Outcome::Done => m.record(k, Some(value), false),
                    Outcome::Restart => restarts += m.restart(),
                    Outcome::Failed => {
                        model.end(txns.swap_remove(t).id);
                        conflicts += 1;
                    }
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
                    let allowed = m.overwrite(&model, k);
                    let result = m.txn.update("kv", &encoded, row(k, &value));
                    let (outcome, _) = expect_write(&mut m.txn, result, &allowed, &ctx);
                    m.locked(&mut model, k, outcome);
                    match outcome {
                        Outcome::Done => m.record(k, Some(value), false),
                        Outcome::Restart => restarts += m.restart(),
                        Outcome::Failed => {
                            model.end(txns.swap_remove(t).id);
                            conflicts += 1;
                        }
                    }
                }
            }
            50..=59 => {
                m.statement(&model);
                let encoded = key(&mut m.txn, k);
                let visible = m.visible().contains_key(&k);
                let allowed = match visible {
                    true => m.overwrite(&model, k),
                    false => vec![Outcome::Done],
                };
                let result = m.txn.delete("kv", &encoded);
                let (outcome, existed) = expect_write(&mut m.txn, result, &allowed, &ctx);
                if visible {
                    m.locked(&mut model, k, outcome);
                }
                match (outcome, existed) {
                    (Outcome::Done, Some(existed)) => {
                        assert_eq!(existed, visible, "{ctx}: delete {k}");
                        if existed {
                            m.record(k, None, false);
                        }
                    }
                    (Outcome::Restart, _) => restarts += m.restart(),
                    _ => {
                        model.end(txns.swap_remove(t).id);
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
                // A tombstone locks its row and checks it like any
                // overwrite; a whole-segment drop locks nothing and is
                // checked at commit instead: the model cannot tell which
                // rows went which way, so any of their outcomes may come,
                // and who locks those rows is unknown from now on.
                let mut allowed = vec![Outcome::Done];
                for &key in &keys {
                    allowed.extend(m.overwrite(&model, key));
                }
                let result = m.txn.delete_range("kv", range);
                let (outcome, deleted) = expect_write(&mut m.txn, result, &allowed, &ctx);
                for &key in keys.iter().filter(|key| !m.writes.contains_key(key)) {
                    model.locks.insert(key, Holder::Unknown);
                }
                match (outcome, deleted) {
                    (Outcome::Done, Some(deleted)) => {
                        assert_eq!(deleted, keys.len() as u64, "{ctx}: delete_range {k}..{hi}");
                        for key in keys {
                            m.record(key, None, false);
                        }
                    }
                    (Outcome::Restart, _) => restarts += m.restart(),
                    _ => {
                        model.end(txns.swap_remove(t).id);
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
                model.end(m.id);
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
                let m = txns.swap_remove(t);
                model.end(m.id);
                m.txn.rollback();
            }
        }
    }

    eprintln!(
        "seed #{seed_offset}: {steps} steps, {} commits, {conflicts} conflicts, {restarts} restarts, {flushes} flushes, \
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
