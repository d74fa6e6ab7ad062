//! The server's metrics, and all metrics in Prometheus's text format for
//! `GET /metrics`: statements by protocol and kind (count and latency),
//! errors by SQLSTATE class, open connections, and the storage engine's
//! (rows written, WAL fsyncs, memtable bytes, segments, flushes,
//! compactions).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use omendb_storage::{Histogram, HistogramSnapshot, LATENCY_BUCKETS, StorageStats};
use tracing::warn;

/// The protocols statements arrive by (in `PROTOCOLS` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Pg = 0,
    Http = 1,
}

const PROTOCOLS: [Protocol; 2] = [Protocol::Pg, Protocol::Http];

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Pg => "pg",
            Protocol::Http => "http",
        }
    }
}

/// Statement kinds, by the first word of their command tag.
const KINDS: [&str; 8] = [
    "select",
    "insert",
    "update",
    "delete",
    "copy",
    "ddl",
    "transaction",
    "other",
];

/// The kind of a statement whose command tag is `tag`.
pub fn kind_of(tag: &str) -> &'static str {
    match tag.split(' ').next().unwrap_or_default() {
        "SELECT" => "select",
        "INSERT" => "insert",
        "UPDATE" => "update",
        "DELETE" => "delete",
        "COPY" => "copy",
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" => "ddl",
        "BEGIN" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => "transaction",
        _ => "other",
    }
}

/// What the server counts; statements slower than `slow_query` are also
/// logged.
#[derive(Debug, Default)]
pub struct Metrics {
    slow_query: Option<Duration>,
    /// One histogram per protocol and kind, in `PROTOCOLS` x `KINDS` order.
    statements: [Histogram; 16],
    /// Failed statements by SQLSTATE class (its first two characters).
    errors: Mutex<BTreeMap<String, u64>>,
    /// PostgreSQL connections open now.
    pub(crate) connections: AtomicI64,
}

/// The most of a slow statement's SQL a log line shows.
const LOGGED_SQL: usize = 2_000;

impl Metrics {
    /// Metrics that log statements taking `slow_query` or longer.
    pub fn new(slow_query: Option<Duration>) -> Metrics {
        Metrics {
            slow_query,
            ..Metrics::default()
        }
    }

    /// A statement of `sql` whose command tag is `tag` took `elapsed`.
    pub fn statement(&self, protocol: Protocol, sql: &str, tag: &str, elapsed: Duration) {
        if self.slow_query.is_some_and(|slow| elapsed >= slow) {
            let end = (0..=LOGGED_SQL.min(sql.len()))
                .rev()
                .find(|&i| sql.is_char_boundary(i))
                .unwrap_or(0);
            warn!(
                protocol = protocol.name(),
                ms = elapsed.as_millis() as u64,
                sql = &sql[..end],
                "slow statement"
            );
        }
        let kind = kind_of(tag);
        let p = protocol as usize;
        let k = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        self.statements[p * KINDS.len() + k].observe(elapsed);
    }

    /// A statement failed with `sqlstate`.
    pub fn error(&self, sqlstate: &str) {
        let class = sqlstate.get(..2).unwrap_or("XX").to_owned();
        // Counting cannot leave the map half-changed: a poisoned lock is
        // still a whole map.
        let mut errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *errors.entry(class).or_default() += 1;
    }

    /// Every metric, with `storage`'s, in Prometheus's text format.
    pub fn render(&self, storage: &StorageStats) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "omendb_statement_duration_seconds",
            "histogram",
            "Statements run, by protocol and kind, and how long each took.",
        );
        for (p, protocol) in PROTOCOLS.iter().enumerate() {
            for (k, kind) in KINDS.iter().enumerate() {
                let labels = format!("protocol=\"{}\",kind=\"{kind}\"", protocol.name());
                let snapshot = self.statements[p * KINDS.len() + k].snapshot();
                histogram(
                    &mut out,
                    "omendb_statement_duration_seconds",
                    &labels,
                    &snapshot,
                );
            }
        }
        header(
            &mut out,
            "omendb_errors_total",
            "counter",
            "Statements failed, by SQLSTATE class.",
        );
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for (class, count) in errors {
            let _ = writeln!(out, "omendb_errors_total{{class=\"{class}\"}} {count}");
        }
        let connections = self.connections.load(Ordering::Relaxed);
        single(
            &mut out,
            "omendb_connections",
            "gauge",
            "PostgreSQL connections open.",
            connections,
        );
        single(
            &mut out,
            "omendb_rows_written_total",
            "counter",
            "Row writes committed.",
            storage.rows_written,
        );
        header(
            &mut out,
            "omendb_wal_fsync_duration_seconds",
            "histogram",
            "WAL group commits (write and fsync) and how long each took.",
        );
        histogram(
            &mut out,
            "omendb_wal_fsync_duration_seconds",
            "",
            &storage.wal_fsync,
        );
        single(
            &mut out,
            "omendb_memtable_bytes",
            "gauge",
            "Approximate bytes in memtables.",
            storage.memtable_bytes,
        );
        single(
            &mut out,
            "omendb_segments",
            "gauge",
            "Immutable segments of every table.",
            storage.segments,
        );
        single(
            &mut out,
            "omendb_flushes_total",
            "counter",
            "Memtable flushes to segments.",
            storage.flushes,
        );
        single(
            &mut out,
            "omendb_compactions_total",
            "counter",
            "Segment compactions.",
            storage.compactions,
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn histogram(out: &mut String, name: &str, labels: &str, snapshot: &HistogramSnapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, count) in LATENCY_BUCKETS.iter().zip(&snapshot.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
    }
    let count = snapshot.count;
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", snapshot.sum_seconds);
    let _ = writeln!(out, "{name}_count{braces} {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_land_in_their_protocol_and_kind_and_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.statement(Protocol::Pg, "", "SELECT 3", Duration::from_micros(50));
        metrics.statement(Protocol::Http, "", "INSERT 0 1", Duration::from_millis(2));
        metrics.statement(Protocol::Pg, "", "CREATE TABLE", Duration::from_millis(2));
        metrics.error("23505");
        metrics.error("23502");
        let text = metrics.render(&StorageStats {
            wal_fsync: Histogram::default().snapshot(),
            rows_written: 7,
            flushes: 1,
            compactions: 0,
            memtable_bytes: 1024,
            segments: 2,
        });
        for line in [
            "omendb_statement_duration_seconds_bucket{protocol=\"pg\",kind=\"select\",le=\"0.0001\"} 1",
            "omendb_statement_duration_seconds_count{protocol=\"http\",kind=\"insert\"} 1",
            "omendb_statement_duration_seconds_bucket{protocol=\"http\",kind=\"insert\",le=\"0.001\"} 0",
            "omendb_statement_duration_seconds_bucket{protocol=\"http\",kind=\"insert\",le=\"0.0025\"} 1",
            "omendb_statement_duration_seconds_count{protocol=\"pg\",kind=\"ddl\"} 1",
            "omendb_errors_total{class=\"23\"} 2",
            "omendb_rows_written_total 7",
            "omendb_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 0",
            "omendb_wal_fsync_duration_seconds_count 0",
            "omendb_segments 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
