//! `index-bench`: the learned index beside `BTreeMap` and binary search on
//! the same keys, in the same run.
//!
//! ```text
//! cargo run --release -p omendb-bench --bin index-bench -- [--keys N] [--json]
//! cargo run --release -p omendb-bench --bin index-bench -- --sweep   # ε × last-mile search
//! ```
//!
//! For each data set it builds all three, checks that the learned index
//! finds every key at its position, then times random lookups of present
//! keys, of absent keys, and `lower_bound` (half present, half absent).
//! Engines take turns within each repetition and every cell is the median
//! of the repetitions; the answers' checksums must agree across engines.
//! Lookups are independent, so this measures throughput, as the PGM-index
//! benchmarks do.

#![allow(clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use omendb_bench::datasets::{Dataset, Queries};
use omendb_bench::timing::{median, time_ms, time_queries};
use omendb_storage::{LearnedIndex, LearnedIndexConfig, last_mile};

/// Counts live heap bytes, to measure what a `BTreeMap` costs.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is only bookkeeping.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[derive(Parser, Debug)]
#[command(about = "Learned index vs BTreeMap vs binary search, side by side")]
struct Args {
    /// Keys per data set.
    #[arg(long, default_value_t = 10_000_000)]
    keys: usize,
    /// Random lookups per operation and repetition.
    #[arg(long, default_value_t = 10_000_000)]
    lookups: usize,
    /// Repetitions; each cell reports the median.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Data sets to run, comma-separated (default: all five).
    #[arg(long, value_delimiter = ',')]
    datasets: Vec<String>,
    /// Error bound ε of the learned index (default: the index's default).
    #[arg(long)]
    epsilon: Option<u32>,
    /// Error bound of the learned index's upper levels.
    #[arg(long)]
    epsilon_upper: Option<u32>,
    /// Instead of comparing engines, sweep ε and the last-mile search.
    #[arg(long)]
    sweep: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Learned,
    BTreeMap,
    BinarySearch,
}

impl Engine {
    const ALL: [Engine; 3] = [Engine::Learned, Engine::BTreeMap, Engine::BinarySearch];

    fn name(self) -> &'static str {
        match self {
            Engine::Learned => "learned",
            Engine::BTreeMap => "btreemap",
            Engine::BinarySearch => "binary_search",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Lookup,
    LookupAbsent,
    LowerBound,
}

impl Op {
    const ALL: [Op; 3] = [Op::Lookup, Op::LookupAbsent, Op::LowerBound];

    fn name(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::LookupAbsent => "lookup_absent",
            Op::LowerBound => "lower_bound",
        }
    }

    fn queries(self, queries: &Queries) -> &[u64] {
        match self {
            Op::Lookup => &queries.present,
            Op::LookupAbsent => &queries.absent,
            Op::LowerBound => &queries.mixed,
        }
    }
}

/// Everything built over one data set.
struct Built {
    keys: Vec<u64>,
    index: LearnedIndex,
    map: BTreeMap<u64, u64>,
}

/// One measured cell.
struct Cell {
    engine: Engine,
    op: Op,
    ns_per_op: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = LearnedIndexConfig::default();
    config.epsilon = args.epsilon.unwrap_or(config.epsilon);
    config.epsilon_upper = args.epsilon_upper.unwrap_or(config.epsilon_upper);

    let mut datasets = Vec::new();
    for name in &args.datasets {
        let Some(dataset) = Dataset::from_name(name) else {
            eprintln!(
                "unknown data set {name:?}; known: seq_ts, bursty, lognormal, uniform, multi_tenant"
            );
            return ExitCode::FAILURE;
        };
        datasets.push(dataset);
    }
    if datasets.is_empty() {
        datasets = Dataset::ALL.to_vec();
    }
    if args.keys == 0 || args.lookups == 0 || args.reps == 0 {
        eprintln!("--keys, --lookups and --reps must be positive");
        return ExitCode::FAILURE;
    }

    for dataset in datasets {
        eprintln!("{}: generating {} keys", dataset.name(), args.keys);
        let keys = dataset.generate(args.keys);
        let queries = Queries::generate(&keys, args.lookups);
        let result = if args.sweep {
            sweep(&args, dataset, &keys, &queries, config)
        } else {
            compare(&args, dataset, keys, &queries, config)
        };
        if let Err(message) = result {
            eprintln!("{}: {message}", dataset.name());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Builds the three engines, checks the learned index, times every cell.
fn compare(
    args: &Args,
    dataset: Dataset,
    keys: Vec<u64>,
    queries: &Queries,
    config: LearnedIndexConfig,
) -> Result<(), String> {
    let (index, learned_build_ms) = time_ms(|| LearnedIndex::build_with(&keys, config));
    let index = index.map_err(|e| e.to_string())?;
    verify(&index, &keys)?;

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let (map, map_build_ms) = time_ms(|| {
        keys.iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u64))
            .collect::<BTreeMap<_, _>>()
    });
    let map_bytes = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
    let built = Built { keys, index, map };

    let mut cells = Vec::new();
    for op in Op::ALL {
        let queries = op.queries(queries);
        let mut times = vec![Vec::new(); Engine::ALL.len()];
        for rep in 0..args.reps {
            let mut checksums = Vec::new();
            for (e, engine) in Engine::ALL.into_iter().enumerate() {
                let (ns, checksum) = run(&built, engine, op, queries);
                times[e].push(ns);
                checksums.push(checksum);
            }
            if checksums.iter().any(|&c| c != checksums[0]) {
                return Err(format!(
                    "{} rep {rep}: engines disagree: {checksums:?}",
                    op.name()
                ));
            }
        }
        for (e, engine) in Engine::ALL.into_iter().enumerate() {
            cells.push(Cell {
                engine,
                op,
                ns_per_op: median(&times[e]),
            });
        }
    }

    let n = built.keys.len();
    let size_and_build = |engine| match engine {
        Engine::Learned => (built.index.size_in_bytes(), learned_build_ms),
        Engine::BTreeMap => (map_bytes, map_build_ms),
        Engine::BinarySearch => (0, 0.0),
    };
    if args.json {
        for cell in &cells {
            let (bytes, build_ms) = size_and_build(cell.engine);
            let line = serde_json::json!({
                "dataset": dataset.name(), "keys": n, "index": cell.engine.name(),
                "op": cell.op.name(), "ns_per_op": round2(cell.ns_per_op),
                "index_bytes": bytes, "build_ms": round2(build_ms),
            });
            println!("{line}");
        }
        return Ok(());
    }
    let index = &built.index;
    println!(
        "\n{} — {n} keys; learned: ε={} ({} above), {} pieces, {} levels, max error {}",
        dataset.name(),
        index.config().epsilon,
        index.config().epsilon_upper,
        index.pieces(),
        index.height(),
        index.max_error()
    );
    println!(
        "  {:<14} {:>10} {:>10} {:>10} {:>10}",
        "ns/op", "learned", "btreemap", "binary", "ratios"
    );
    for op in Op::ALL {
        let ns = |engine| {
            cells
                .iter()
                .find(|c| c.op == op && c.engine == engine)
                .map_or(0.0, |c| c.ns_per_op)
        };
        let (learned, map, binary) = (
            ns(Engine::Learned),
            ns(Engine::BTreeMap),
            ns(Engine::BinarySearch),
        );
        println!(
            "  {:<14} {learned:>10.1} {map:>10.1} {binary:>10.1}   btreemap/learned {:.2}x, binary/learned {:.2}x",
            op.name(),
            map / learned,
            binary / learned
        );
    }
    let key_bytes = n * size_of::<u64>();
    println!(
        "  size: learned {} B ({:.4}% of the {key_bytes} B key array), btreemap {map_bytes} B",
        index.size_in_bytes(),
        100.0 * index.size_in_bytes() as f64 / key_bytes as f64
    );
    println!(
        "  build: learned {learned_build_ms:.1} ms ({:.3} s per 10M keys), btreemap {map_build_ms:.1} ms",
        learned_build_ms / 1e3 * 1e7 / n as f64
    );
    Ok(())
}

/// Times one engine on one operation; returns ns per query and a checksum.
fn run(built: &Built, engine: Engine, op: Op, queries: &[u64]) -> (f64, u64) {
    let Built { keys, index, map } = built;
    let missing = u64::MAX;
    let end = keys.len() as u64;
    match (engine, op) {
        (Engine::Learned, Op::LowerBound) => {
            time_queries(queries, |q| index.lower_bound(keys, q) as u64)
        }
        (Engine::Learned, _) => time_queries(queries, |q| {
            index.get(keys, q).map_or(missing, |p| p as u64)
        }),
        (Engine::BTreeMap, Op::LowerBound) => {
            time_queries(queries, |q| map.range(q..).next().map_or(end, |(_, &p)| p))
        }
        (Engine::BTreeMap, _) => time_queries(queries, |q| map.get(&q).copied().unwrap_or(missing)),
        (Engine::BinarySearch, Op::LowerBound) => {
            time_queries(queries, |q| keys.partition_point(|&k| k < q) as u64)
        }
        (Engine::BinarySearch, _) => time_queries(queries, |q| {
            keys.binary_search(&q).map_or(missing, |p| p as u64)
        }),
    }
}

/// Every key must be found at its own position.
fn verify(index: &LearnedIndex, keys: &[u64]) -> Result<(), String> {
    match keys
        .iter()
        .enumerate()
        .find(|&(i, &k)| index.get(keys, k) != Some(i))
    {
        Some((i, k)) => Err(format!("learned index lost key {k} at position {i}")),
        None => Ok(()),
    }
}

/// A last-mile search driven by the learned index's window.
type LastMileSearch = fn(&[u64], &LearnedIndex, u64) -> usize;

/// The last-mile searches compared by `--sweep`.
const LAST_MILE: [(&str, LastMileSearch); 3] = [
    ("branchless", |keys, index, q| {
        last_mile::lower_bound_branchless(keys, index.search_window(q).range(), q)
    }),
    ("prefetch", |keys, index, q| {
        last_mile::lower_bound_prefetch(keys, index.search_window(q).range(), q)
    }),
    ("prefetch_window", |keys, index, q| {
        last_mile::lower_bound_prefetch_window(keys, index.search_window(q).range(), q)
    }),
];

/// Times present-key lookups for each ε and last-mile search.
fn sweep(
    args: &Args,
    dataset: Dataset,
    keys: &[u64],
    queries: &Queries,
    config: LearnedIndexConfig,
) -> Result<(), String> {
    let queries = &queries.present;
    let mut binary = Vec::new();
    let mut want = 0;
    for _ in 0..args.reps {
        let (ns, checksum) = time_queries(queries, |q| keys.partition_point(|&k| k < q) as u64);
        binary.push(ns);
        want = checksum;
    }
    if !args.json {
        println!(
            "\n{} — {} keys; binary search {:.1} ns",
            dataset.name(),
            keys.len(),
            median(&binary)
        );
        println!(
            "  {:>6} {:>9} {:>7} {:>10} {:>10}  ns/op by last-mile search",
            "ε", "pieces", "levels", "bytes", "build ms"
        );
    }
    for epsilon in [16, 32, 64, 128] {
        let config = LearnedIndexConfig { epsilon, ..config };
        let (index, build_ms) = time_ms(|| LearnedIndex::build_with(keys, config));
        let index = index.map_err(|e| e.to_string())?;
        let mut row = Vec::new();
        // The walk down the model alone, without touching the key column.
        let model: Vec<f64> = (0..args.reps)
            .map(|_| time_queries(queries, |q| index.search_window(q).guess as u64).0)
            .collect();
        row.push(("model_only", median(&model)));
        for (name, search) in LAST_MILE {
            let mut times = Vec::new();
            for _ in 0..args.reps {
                let (ns, checksum) = time_queries(queries, |q| search(keys, &index, q) as u64);
                if checksum != want {
                    return Err(format!("{name} at ε={epsilon} gives wrong positions"));
                }
                times.push(ns);
            }
            row.push((name, median(&times)));
        }
        if args.json {
            for (name, ns) in &row {
                let line = serde_json::json!({
                    "dataset": dataset.name(), "keys": keys.len(), "index": "learned", "op": "lookup",
                    "epsilon": epsilon, "last_mile": name, "ns_per_op": round2(*ns),
                    "index_bytes": index.size_in_bytes(), "build_ms": round2(build_ms),
                });
                println!("{line}");
            }
        } else {
            let cells: Vec<String> = row
                .iter()
                .map(|(name, ns)| format!("{name} {ns:.1}"))
                .collect();
            println!(
                "  {epsilon:>6} {:>9} {:>7} {:>10} {build_ms:>10.1}  {}",
                index.pieces(),
                index.height(),
                index.size_in_bytes(),
                cells.join("  ")
            );
        }
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
