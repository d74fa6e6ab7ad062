//! `storage-bench`: OmenDB's storage engine beside SQLite on the same
//! time-series table, in the same run.
//!
//! ```text
//! cargo run --release -p omendb-bench --bin storage-bench -- [--rows N] [--json]
//! ```
//!
//! Both engines commit durably (fsync before a commit returns) and get the
//! same cache budget (`--cache-mib`, default 256). Workloads, in this order (higher is better):
//!
//! | workload           | what                                                   |
//! |--------------------|--------------------------------------------------------|
//! | `ingest_batch`     | rows/s, inserting the data set in 1,000-row commits    |
//! | `commit_single_8w` | commits/s, 8 writers each committing one row at a time |
//! | `point_get`        | gets/s by full key, one thread, after a flush          |
//! | `range_scan`       | rows/s, scanning one hour of one device                |
//! | `mixed_80_20`      | ops/s, 8 clients: 80% point gets, 20% upserts          |
//!
//! Every workload runs `--reps` times, engines taking turns (the order
//! alternates between repetitions), and reports the median. Reads are
//! warmed up once first, and the engines' answers must agree. Each
//! repetition of `ingest_batch` loads a fresh database; the last one is
//! kept for the other workloads. After each turn the engine settles
//! (OmenDB flushes, SQLite checkpoints), untimed, so that one engine's
//! background work does not land in the other's turn.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use omendb_bench::scratch::ScratchDir;
use omendb_bench::stores::{self, BenchResult, Session, Store};
use omendb_bench::timeseries::{INTERVAL_US, START_US, TimeSeries};
use omendb_bench::timing::median;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

#[derive(Parser, Debug)]
#[command(about = "OmenDB storage vs SQLite on a time-series table, side by side")]
struct Args {
    /// Rows in the data set.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Devices sending readings (one every ten seconds each).
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Repetitions; each cell reports the median.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Concurrent sessions in `commit_single_8w` and `mixed_80_20`.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Cache for each engine, MiB: OmenDB's segment cache, SQLite's page
    /// cache (per connection).
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    /// Seconds per repetition of the concurrent workloads.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Point gets per repetition.
    #[arg(long, default_value_t = 200_000)]
    gets: usize,
    /// One-hour range scans per repetition.
    #[arg(long, default_value_t = 2_000)]
    scans: usize,
    /// Workloads to run, comma-separated (default: all; `ingest_batch`
    /// always runs, the others need its data).
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

const ENGINES: [&str; 2] = ["omendb", "sqlite"];
const BATCH_ROWS: usize = 1000;

/// A workload: its name, unit and goal (OmenDB / SQLite).
struct Workload {
    name: &'static str,
    unit: &'static str,
    goal: f64,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "ingest_batch",
        unit: "rows/s",
        goal: 3.0,
    },
    Workload {
        name: "commit_single_8w",
        unit: "commits/s",
        goal: 1.0,
    },
    Workload {
        name: "point_get",
        unit: "gets/s",
        goal: 2.0,
    },
    Workload {
        name: "range_scan",
        unit: "rows/s",
        goal: 5.0,
    },
    Workload {
        name: "mixed_80_20",
        unit: "ops/s",
        goal: 2.0,
    },
];

/// An engine under test with its state between workloads.
struct Contender {
    store: Box<dyn Store>,
    dir: PathBuf,
    /// The next timestamp number for rows the single-row commits add.
    next_extra: AtomicU64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.rows == 0 || args.devices == 0 || args.reps == 0 || args.threads == 0 {
        eprintln!("--rows, --devices, --reps and --threads must be positive");
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
    let scratch = ScratchDir::new(args.dir.as_deref(), "omendb-storage-bench");
    match run(&args, scratch.path()) {
        Ok(results) => {
            report(&args, &results);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("storage-bench: {e}");
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
    let mut results = Results::new();

    let contenders = ingest(args, &data, base, &mut results)?;
    if wanted("commit_single_8w") {
        for rep in 0..args.reps {
            for c in turns(&contenders, rep) {
                let extra_device = args.devices as i32;
                let rate = concurrently(args, &*c.store, rep, |_, session, _| {
                    let n = c.next_extra.fetch_add(1, Ordering::Relaxed) as i64;
                    let mut row = data.reading(n as u64);
                    row.device = extra_device;
                    row.ts = START_US + n * INTERVAL_US;
                    session.insert(&row)
                })?;
                record(&mut results, "commit_single_8w", c, rep, rate);
                c.store.settle()?;
            }
        }
    }
    for c in &contenders {
        c.store.settle()?;
        eprintln!("{}: {}", c.store.name(), c.store.describe());
    }
    if wanted("point_get") {
        let keys = data.random_keys(args.gets, 1);
        reads(args, &contenders, "point_get", &mut results, |session| {
            let mut sum = 0.0;
            for &(device, ts) in &keys {
                sum += session
                    .get(device, ts)?
                    .ok_or_else(|| format!("row ({device}, {ts}) is missing"))?;
            }
            Ok((keys.len() as u64, sum))
        })?;
    }
    if wanted("range_scan") {
        let hours = data.random_hours(args.scans, 2);
        reads(args, &contenders, "range_scan", &mut results, |session| {
            let (mut rows, mut sum) = (0, 0.0);
            for &(device, from, to) in &hours {
                let (n, s) = session.scan(device, from, to)?;
                rows += n;
                sum += s;
            }
            Ok((rows, sum))
        })?;
    }
    if wanted("mixed_80_20") {
        for rep in 0..args.reps {
            for c in turns(&contenders, rep) {
                let rate = concurrently(args, &*c.store, rep, |thread, session, rng| {
                    let mut row = data.reading(rng.random_range(0..data.rows));
                    if rng.random_range(0..5) == 0 {
                        row.cpu = rng.random_range(0.0..100.0);
                        session.upsert(&row)
                    } else if session.get(row.device, row.ts)?.is_none() {
                        Err(format!(
                            "thread {thread}: row ({}, {}) is missing",
                            row.device, row.ts
                        )
                        .into())
                    } else {
                        Ok(())
                    }
                })?;
                record(&mut results, "mixed_80_20", c, rep, rate);
                c.store.settle()?;
            }
        }
    }
    for c in contenders {
        let Contender { store, dir, .. } = c;
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(results)
}

/// The contenders in the order they take their turn in repetition `rep`.
fn turns(contenders: &[Contender], rep: usize) -> Vec<&Contender> {
    let mut order: Vec<&Contender> = contenders.iter().collect();
    if rep % 2 == 1 {
        order.reverse();
    }
    order
}

fn record(results: &mut Results, workload: &'static str, c: &Contender, rep: usize, value: f64) {
    let unit = WORKLOADS
        .iter()
        .find(|w| w.name == workload)
        .map_or("", |w| w.unit);
    eprintln!(
        "{workload} rep {}: {} {value:.0} {unit}",
        rep + 1,
        c.store.name()
    );
    results
        .entry((workload, c.store.name()))
        .or_default()
        .push(value);
}

/// Loads the data set into a fresh database of each engine, once per
/// repetition, and returns the last ones.
fn ingest(
    args: &Args,
    data: &TimeSeries,
    base: &Path,
    results: &mut Results,
) -> BenchResult<Vec<Contender>> {
    let mut contenders: Vec<Contender> = Vec::new();
    for rep in 0..args.reps {
        for c in contenders.drain(..) {
            let Contender { store, dir, .. } = c;
            drop(store);
            std::fs::remove_dir_all(dir)?;
        }
        let mut names = ENGINES;
        if rep % 2 == 1 {
            names.reverse();
        }
        for name in names {
            let dir = base.join(format!("{name}-{rep}"));
            let store = stores::create(name, &dir, args.cache_mib << 20)?;
            let mut session = store.session()?;
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            let start = Instant::now();
            for i in 0..data.rows {
                batch.push(data.reading(i));
                if batch.len() == BATCH_ROWS {
                    session.insert_batch(&batch)?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                session.insert_batch(&batch)?;
            }
            let rate = data.rows as f64 / start.elapsed().as_secs_f64();
            drop(session);
            let settle = Instant::now();
            store.settle()?;
            eprintln!("{name}: settled in {:.2} s", settle.elapsed().as_secs_f64());
            let c = Contender {
                store,
                dir,
                next_extra: AtomicU64::new(0),
            };
            record(results, "ingest_batch", &c, rep, rate);
            contenders.push(c);
        }
    }
    contenders.sort_by_key(|c| ENGINES.iter().position(|&e| e == c.store.name()));
    Ok(contenders)
}

/// Runs `op` in `args.threads` sessions at once for `args.seconds` and
/// returns operations per second. `op` gets the thread number, its
/// session and a random generator of its own, seeded by thread and
/// repetition `rep` (so repetitions do not replay the same operations).
fn concurrently(
    args: &Args,
    store: &dyn Store,
    rep: usize,
    op: impl Fn(usize, &mut dyn Session, &mut Xoshiro256PlusPlus) -> BenchResult<()> + Sync,
) -> BenchResult<f64> {
    let duration = Duration::from_secs_f64(args.seconds);
    let barrier = Barrier::new(args.threads + 1);
    let op = &op;
    let barrier = &barrier;
    let (ops, elapsed) = std::thread::scope(|scope| -> BenchResult<(u64, Duration)> {
        let workers: Vec<_> = (0..args.threads)
            .map(|thread| {
                scope.spawn(move || -> BenchResult<u64> {
                    let session = store.session();
                    let mut rng =
                        Xoshiro256PlusPlus::seed_from_u64((rep * args.threads + thread) as u64);
                    barrier.wait();
                    let mut session = session?;
                    let start = Instant::now();
                    let mut ops = 0;
                    while start.elapsed() < duration {
                        op(thread, session.as_mut(), &mut rng)?;
                        ops += 1;
                    }
                    Ok(ops)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut total = 0;
        for worker in workers {
            total += worker.join().map_err(|_| "a benchmark thread panicked")??;
        }
        Ok((total, start.elapsed()))
    })?;
    Ok(ops as f64 / elapsed.as_secs_f64())
}

/// Runs the read workload `pass` (returning rows read and a checksum) once
/// per engine to warm up, then `args.reps` times per engine, timed; the
/// engines must agree on every pass's result.
fn reads(
    args: &Args,
    contenders: &[Contender],
    workload: &'static str,
    results: &mut Results,
    pass: impl Fn(&mut dyn Session) -> BenchResult<(u64, f64)>,
) -> BenchResult<()> {
    let mut sessions = Vec::new();
    let mut expected = None;
    for c in contenders {
        let mut session = c.store.session()?;
        let answer = pass(session.as_mut())?;
        if *expected.get_or_insert(answer) != answer {
            return Err(format!(
                "{workload}: engines disagree: {:?} vs {answer:?} from {}",
                expected,
                c.store.name()
            )
            .into());
        }
        sessions.push(session);
    }
    for rep in 0..args.reps {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let start = Instant::now();
            let answer = pass(sessions[i].as_mut())?;
            let rate = answer.0 as f64 / start.elapsed().as_secs_f64();
            if Some(answer) != expected {
                return Err(format!("{workload}: answers changed between passes").into());
            }
            record(results, workload, &contenders[i], rep, rate);
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
            for engine in ENGINES {
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
        "{:<18} {:>14} {:>14} {:>10}  {:>6}  {:<6} unit",
        "workload", "omendb", "sqlite", "ratio", "goal", ""
    );
    for w in &WORKLOADS {
        let (Some(omen), Some(sqlite)) = (value(w.name, "omendb"), value(w.name, "sqlite")) else {
            continue;
        };
        let ratio = omen / sqlite;
        println!(
            "{:<18} {:>14.0} {:>14.0} {:>9.2}x  {:>5.1}x  {:<6} {}",
            w.name,
            omen,
            sqlite,
            ratio,
            w.goal,
            if ratio >= w.goal { "met" } else { "missed" },
            w.unit
        );
    }
}
