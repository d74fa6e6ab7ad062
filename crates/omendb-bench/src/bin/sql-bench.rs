//! `sql-bench`: OmenDB's SQL layer beside SQLite on the same time-series
//! table, in the same run, in process.
//!
//! ```text
//! cargo run --release -p omendb-bench --features sql --bin sql-bench -- [--rows N] [--json]
//! ```
//!
//! Both engines hold `readings (device_id, ts, cpu, mem)` keyed by
//! `(device_id, ts)` (10M rows by default: 1,000 devices, a reading every
//! ten seconds), loaded in 10,000-row commits with the same durability
//! (fsync on commit: SQLite `journal_mode = WAL, synchronous = FULL`) and
//! settled (OmenDB flushed to segments and, with the default `--layout
//! compacted`, merged into one; SQLite checkpointed). Queries, one
//! at a time from one session, prepared once (higher is better):
//!
//! | workload          | query                                                       |
//! |-------------------|-------------------------------------------------------------|
//! | `point_query`     | `SELECT cpu FROM readings WHERE device_id = $1 AND ts = $2` |
//! | `point_query_df`  | the same with `LIMIT 1`, which OmenDB plans with DataFusion |
//! |                   | instead of its key-lookup fast path (for comparison)        |
//! | `hour_aggregate`  | `SELECT device_id, count(*), avg(cpu), max(mem) FROM readings` |
//! |                   | `WHERE ts >= $1 AND ts < $2 GROUP BY device_id`: one hour of every device |
//! | `full_group_by`   | the same over the whole table                                |
//!
//! `hour_aggregate` runs on SQLite a second time after `CREATE INDEX ON
//! readings (ts)` (the index a SQLite user would add; OmenDB has none and
//! prunes segments by their zone maps). Every workload runs `--reps`
//! times, engines taking turns, after one untimed warm-up pass; each cell
//! is the median, and the engines' answers must agree. `--explain` first
//! prints OmenDB's EXPLAIN ANALYZE of the two aggregates.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use clap::Parser;
use futures::TryStreamExt;
use omendb_bench::scratch::ScratchDir;
use omendb_bench::stores::{BenchResult, OmenDb, Session, Sqlite, Store};
use omendb_bench::timeseries::{HOUR_US, INTERVAL_US, START_US, TimeSeries};
use omendb_bench::timing::median;
use omendb_sql::datafusion::common::ScalarValue;
use omendb_sql::{QueryHandler, SqlEngine, SqlSession, StatementResult};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rusqlite::Connection;

#[derive(Parser, Debug)]
#[command(about = "OmenDB SQL vs SQLite on a time-series table, side by side")]
struct Args {
    /// Rows in the table.
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Devices sending readings (one every ten seconds each).
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Repetitions; each cell reports the median.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Cache for each engine, MiB: OmenDB's segment cache, SQLite's page
    /// cache.
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    /// Point queries per repetition.
    #[arg(long, default_value_t = 50_000)]
    points: usize,
    /// One-hour aggregates per repetition.
    #[arg(long, default_value_t = 20)]
    hours: usize,
    /// OmenDB's segments when queries start: `compacted` merges the
    /// flushed segments into one (reproducible); `flushed` leaves the
    /// time-cut segments the load flushed (their number, and whether
    /// background compaction merges some during the run, vary with timing).
    #[arg(long, value_enum, default_value_t = Layout::Compacted)]
    layout: Layout,
    /// Print OmenDB's EXPLAIN ANALYZE of the aggregate queries first.
    #[arg(long)]
    explain: bool,
    /// Workloads to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Where the databases go (default: the system's temporary directory).
    /// They are removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Layout {
    Compacted,
    Flushed,
}

const LOAD_BATCH: usize = 10_000;
const POINT: &str = "SELECT cpu FROM readings WHERE device_id = $1 AND ts = $2";
const POINT_DF: &str = "SELECT cpu FROM readings WHERE device_id = $1 AND ts = $2 LIMIT 1";
const HOUR: &str = "SELECT device_id, count(*), avg(cpu), max(mem) FROM readings \
     WHERE ts >= $1 AND ts < $2 GROUP BY device_id";
const FULL: &str =
    "SELECT device_id, count(*), avg(cpu), max(mem) FROM readings GROUP BY device_id";

/// A workload: its name, unit and goal (OmenDB / SQLite), if it has one.
struct Workload {
    name: &'static str,
    unit: &'static str,
    goal: Option<f64>,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "point_query",
        unit: "queries/s",
        goal: Some(2.0),
    },
    Workload {
        name: "point_query_df",
        unit: "queries/s",
        goal: None,
    },
    Workload {
        name: "hour_aggregate",
        unit: "queries/s",
        goal: Some(10.0),
    },
    Workload {
        name: "full_group_by",
        unit: "queries/s",
        goal: Some(10.0),
    },
];

/// The engines, as reported: OmenDB, SQLite, SQLite with an index on `ts`.
const OMENDB: &str = "omendb";
const SQLITE: &str = "sqlite";
const SQLITE_TS_INDEX: &str = "sqlite_ts_index";

/// A summary of a query's answer that both engines must agree on: rows,
/// then sums of each numeric column.
#[derive(Clone, Copy, Debug, Default)]
struct Answer {
    rows: u64,
    sums: [f64; 3],
}

impl Answer {
    fn add(&mut self, other: Answer) {
        self.rows += other.rows;
        for (a, b) in self.sums.iter_mut().zip(other.sums) {
            *a += b;
        }
    }

    /// Equal up to the rounding of summing floats in another order.
    fn agrees(&self, other: &Answer) -> bool {
        self.rows == other.rows
            && self
                .sums
                .iter()
                .zip(other.sums)
                .all(|(a, b)| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0))
    }
}

/// The engines under test, loaded with the same rows.
struct Engines {
    runtime: tokio::runtime::Runtime,
    sql: SqlEngine,
    session: SqlSession,
    sqlite: Connection,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.rows == 0 || args.devices == 0 || args.reps == 0 {
        eprintln!("--rows, --devices and --reps must be positive");
        return ExitCode::FAILURE;
    }
    if let Some(unknown) = args
        .workloads
        .iter()
        .find(|w| !WORKLOADS.iter().any(|k| k.name == w.as_str()))
    {
        eprintln!("unknown workload {unknown:?}");
        return ExitCode::FAILURE;
    }
    let scratch = ScratchDir::new(args.dir.as_deref(), "omendb-sql-bench");
    match run(&args, scratch.path()) {
        Ok(results) => {
            report(&args, &results);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sql-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Each (workload, engine)'s measurements, one per repetition.
type Results = HashMap<(&'static str, &'static str), Vec<f64>>;

fn run(args: &Args, base: &Path) -> BenchResult<Results> {
    let data = TimeSeries {
        rows: args.rows,
        devices: args.devices,
    };
    let wanted = |name: &str| args.workloads.is_empty() || args.workloads.iter().any(|w| w == name);
    let mut engines = load(args, &data, base)?;
    let mut results = Results::new();

    let keys = data.random_keys(args.points, 1);
    for (workload, sql) in [("point_query", POINT), ("point_query_df", POINT_DF)] {
        if !wanted(workload) {
            continue;
        }
        measure(args, &mut results, workload, &[OMENDB, SQLITE], |engine| {
            let mut answer = Answer::default();
            for &(device, ts) in &keys {
                answer.add(match engine {
                    OMENDB => engines.omendb(sql, &[int(device), timestamp(ts)])?,
                    _ => engines.sqlite(sql, rusqlite::params![device, ts])?,
                });
            }
            if answer.rows != keys.len() as u64 {
                return Err(
                    format!("{engine}: {} of {} rows found", answer.rows, keys.len()).into(),
                );
            }
            Ok((keys.len(), answer))
        })?;
    }

    let hours = random_hours(&data, args.hours);
    if args.explain {
        let first = hours
            .first()
            .copied()
            .unwrap_or((START_US, START_US + HOUR_US));
        let hour = [timestamp(first.0), timestamp(first.1)];
        for (sql, params) in [(HOUR, &hour[..]), (FULL, &[][..])] {
            for line in engines.omendb_explain(sql, params)? {
                eprintln!("{line}");
            }
        }
    }
    let hour_pass = |engines: &mut Engines, engine: &str| -> BenchResult<(usize, Answer)> {
        let mut answer = Answer::default();
        for &(from, to) in &hours {
            answer.add(match engine {
                OMENDB => engines.omendb(HOUR, &[timestamp(from), timestamp(to)])?,
                _ => engines.sqlite(HOUR, rusqlite::params![from, to])?,
            });
        }
        Ok((hours.len(), answer))
    };
    if wanted("hour_aggregate") {
        measure(
            args,
            &mut results,
            "hour_aggregate",
            &[OMENDB, SQLITE],
            |engine| hour_pass(&mut engines, engine),
        )?;
    }
    if !wanted("full_group_by") {
        return Ok(results);
    }
    measure(
        args,
        &mut results,
        "full_group_by",
        &[OMENDB, SQLITE],
        |engine| {
            let answer = match engine {
                OMENDB => engines.omendb(FULL, &[])?,
                _ => engines.sqlite(FULL, [])?,
            };
            if answer.sums[0] as u64 != args.rows {
                return Err(format!("{engine}: counted {} rows", answer.sums[0]).into());
            }
            Ok((1, answer))
        },
    )?;

    if !wanted("hour_aggregate") {
        return Ok(results);
    }
    let start = Instant::now();
    engines
        .sqlite
        .execute_batch("CREATE INDEX readings_ts ON readings (ts)")?;
    eprintln!(
        "sqlite: indexed ts in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    measure(
        args,
        &mut results,
        "hour_aggregate",
        &[SQLITE_TS_INDEX],
        |_| hour_pass(&mut engines, SQLITE_TS_INDEX),
    )?;
    Ok(results)
}

fn int(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}

fn timestamp(us: i64) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(us), None)
}

/// `n` random one-hour windows `[from, to)` within the data.
fn random_hours(data: &TimeSeries, n: usize) -> Vec<(i64, i64)> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let ticks = data.ticks() as i64;
    let hour_ticks = HOUR_US / INTERVAL_US;
    (0..n)
        .map(|_| {
            let from = START_US + rng.random_range(0..=(ticks - hour_ticks).max(0)) * INTERVAL_US;
            (from, from + HOUR_US)
        })
        .collect()
}

/// Loads the data set into both engines (OmenDB through its storage API,
/// SQLite through prepared INSERTs) and settles them.
fn load(args: &Args, data: &TimeSeries, base: &Path) -> BenchResult<Engines> {
    let cache = args.cache_mib << 20;
    let (omendb_dir, sqlite_dir) = (base.join("omendb"), base.join("sqlite"));
    std::fs::create_dir_all(&sqlite_dir)?;
    let omendb = OmenDb::create(&omendb_dir, cache)?;
    let sqlite = Sqlite::create(&sqlite_dir, cache)?;
    for store in [&omendb as &dyn Store, &sqlite] {
        let start = Instant::now();
        let mut session: Box<dyn Session> = store.session()?;
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        for i in 0..data.rows {
            batch.push(data.reading(i));
            if batch.len() == LOAD_BATCH {
                session.insert_batch(&batch)?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            session.insert_batch(&batch)?;
        }
        store.settle()?;
        eprintln!(
            "{}: loaded {} rows in {:.1} s ({})",
            store.name(),
            data.rows,
            start.elapsed().as_secs_f64(),
            store.describe()
        );
    }
    if args.layout == Layout::Compacted {
        let start = Instant::now();
        omendb.database().compact()?;
        eprintln!(
            "omendb: compacted in {:.1} s ({})",
            start.elapsed().as_secs_f64(),
            omendb.describe()
        );
    }
    let sql = SqlEngine::new(omendb.database().clone());
    let session = sql.new_session();
    Ok(Engines {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        sql,
        session,
        sqlite: sqlite.connect()?,
    })
}

impl Engines {
    /// The rows of `sql` run on OmenDB with `params`.
    fn omendb_batches(
        &mut self,
        sql: &str,
        params: &[ScalarValue],
    ) -> BenchResult<Vec<arrow::record_batch::RecordBatch>> {
        let Engines {
            runtime,
            sql: engine,
            session,
            ..
        } = self;
        runtime.block_on(async {
            let mut results = engine.execute(session, sql, params).await;
            let Some(Ok(StatementResult::Rows { stream, .. })) = results.pop() else {
                return Err(format!("{sql}: no rows").into());
            };
            Ok(stream.try_collect().await?)
        })
    }

    /// Runs `sql` on OmenDB and summarizes its rows.
    fn omendb(&mut self, sql: &str, params: &[ScalarValue]) -> BenchResult<Answer> {
        let mut answer = Answer::default();
        for batch in &self.omendb_batches(sql, params)? {
            answer.rows += batch.num_rows() as u64;
            // Sum every numeric column after the first of a grouped
            // answer, the only column of a point query.
            let first = usize::from(batch.num_columns() > 1);
            for (i, column) in batch.columns().iter().enumerate().skip(first) {
                answer.sums[i - first] += column_sum(column.as_ref())?;
            }
        }
        Ok(answer)
    }

    /// OmenDB's `EXPLAIN ANALYZE` of `sql`, line by line.
    fn omendb_explain(&mut self, sql: &str, params: &[ScalarValue]) -> BenchResult<Vec<String>> {
        let batches = self.omendb_batches(&format!("EXPLAIN ANALYZE {sql}"), params)?;
        let mut lines = Vec::new();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                for column in batch.columns() {
                    if let Some(text) = column.as_string_opt::<i32>() {
                        lines.extend(text.value(row).lines().map(String::from));
                    }
                }
            }
        }
        Ok(lines)
    }

    /// Runs `sql` on SQLite and summarizes its rows as `omendb` does.
    fn sqlite(&self, sql: &str, params: impl rusqlite::Params) -> BenchResult<Answer> {
        let mut statement = self.sqlite.prepare_cached(&sql.replace('$', "?"))?;
        let columns = statement.column_count();
        let first = usize::from(columns > 1);
        let mut rows = statement.query(params)?;
        let mut answer = Answer::default();
        while let Some(row) = rows.next()? {
            answer.rows += 1;
            for i in first..columns {
                answer.sums[i - first] += row.get::<_, Option<f64>>(i)?.unwrap_or(0.0);
            }
        }
        Ok(answer)
    }
}

/// The sum of a numeric column (NULLs count as 0).
fn column_sum(column: &dyn Array) -> BenchResult<f64> {
    Ok(match column.data_type() {
        DataType::Float64 => column.as_primitive::<Float64Type>().iter().flatten().sum(),
        DataType::Int64 => column
            .as_primitive::<Int64Type>()
            .iter()
            .flatten()
            .map(|v| v as f64)
            .sum(),
        DataType::Int32 => column
            .as_primitive::<Int32Type>()
            .iter()
            .flatten()
            .map(f64::from)
            .sum(),
        other => return Err(format!("unexpected column type {other}").into()),
    })
}

/// Runs `pass` (returning queries run and their answer) once per engine
/// to warm up, then `args.reps` times per engine, timed, engines taking
/// turns; records queries per second. The engines must agree.
fn measure(
    args: &Args,
    results: &mut Results,
    workload: &'static str,
    engines: &[&'static str],
    mut pass: impl FnMut(&'static str) -> BenchResult<(usize, Answer)>,
) -> BenchResult<()> {
    let mut expected: Option<Answer> = None;
    for &engine in engines {
        let (_, answer) = pass(engine)?;
        match expected {
            Some(e) if !e.agrees(&answer) => {
                return Err(format!(
                    "{workload}: engines disagree: {e:?} vs {answer:?} from {engine}"
                )
                .into());
            }
            _ => expected = Some(answer),
        }
    }
    for rep in 0..args.reps {
        let mut order = engines.to_vec();
        if rep % 2 == 1 {
            order.reverse();
        }
        for engine in order {
            let start = Instant::now();
            let (queries, _) = pass(engine)?;
            let rate = queries as f64 / start.elapsed().as_secs_f64();
            eprintln!("{workload} rep {}: {engine} {rate:.1} queries/s", rep + 1);
            results.entry((workload, engine)).or_default().push(rate);
        }
    }
    Ok(())
}

fn report(args: &Args, results: &Results) {
    let value = |workload: &str, engine: &str| {
        results
            .get(&(workload, engine))
            .map(|values| median(values))
    };
    if args.json {
        for w in &WORKLOADS {
            for engine in [OMENDB, SQLITE, SQLITE_TS_INDEX] {
                if let Some(v) = value(w.name, engine) {
                    println!(
                        "{}",
                        serde_json::json!({
                            "workload": w.name,
                            "engine": engine,
                            "value": v,
                            "unit": w.unit,
                            "rows": args.rows,
                        })
                    );
                }
            }
        }
        return;
    }
    println!(
        "{} rows, {} devices, {} MiB cache, median of {} repetitions",
        args.rows, args.devices, args.cache_mib, args.reps
    );
    println!(
        "{:<32} {:>12} {:>12} {:>9}  {:>5}  {:<6} unit",
        "workload", "omendb", "sqlite", "ratio", "goal", ""
    );
    let line = |name: String, omen: f64, sqlite: f64, unit: &str, goal: Option<f64>| {
        let ratio = omen / sqlite;
        let (goal, verdict) = match goal {
            Some(g) => (
                format!("{g:.0}x"),
                if ratio >= g { "met" } else { "missed" },
            ),
            None => (String::new(), ""),
        };
        println!(
            "{name:<32} {omen:>12.1} {sqlite:>12.1} {ratio:>8.2}x  {goal:>5}  {verdict:<6} {unit}"
        );
    };
    for w in &WORKLOADS {
        let Some(omen) = value(w.name, OMENDB) else {
            continue;
        };
        if let Some(sqlite) = value(w.name, SQLITE) {
            line(w.name.to_string(), omen, sqlite, w.unit, w.goal);
        }
        if let Some(indexed) = value(w.name, SQLITE_TS_INDEX) {
            line(
                format!("{} (sqlite: ts index)", w.name),
                omen,
                indexed,
                w.unit,
                None,
            );
        }
    }
}
