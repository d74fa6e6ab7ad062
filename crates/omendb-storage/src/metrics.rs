//! Counters the storage engine keeps for monitoring (the server exports
//! them as Prometheus metrics): WAL fsyncs and their latency, rows
//! written, flushes, compactions; and a snapshot of them with the
//! memtable's size and the segment count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A latency histogram that any thread records into without a lock.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bucket's bound (not cumulative); the
    /// last counts those above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// What a [`Histogram`] holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative counts at or below each of [`LATENCY_BUCKETS`].
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS.len());
        let mut total = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            total += bucket.load(Ordering::Relaxed);
            if i < LATENCY_BUCKETS.len() {
                cumulative.push(total);
            }
        }
        HistogramSnapshot {
            cumulative,
            count: total,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// The engine's counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rows_written: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) compactions: AtomicU64,
}

/// The storage engine's metrics at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageStats {
    pub wal_fsync: HistogramSnapshot,
    /// Row writes committed (inserts, updates, deletes).
    pub rows_written: u64,
    pub flushes: u64,
    pub compactions: u64,
    /// Approximate bytes of the memtables (taking commits, and waiting to
    /// be flushed).
    pub memtable_bytes: u64,
    /// Segments of every table.
    pub segments: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_in_its_bucket_and_cumulates() {
        let histogram = Histogram::default();
        for micros in [50, 300, 300, 20_000_000] {
            histogram.observe(Duration::from_micros(micros));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.cumulative[0], 1); // <= 100 µs
        assert_eq!(snapshot.cumulative[1], 1); // <= 250 µs
        assert_eq!(snapshot.cumulative[2], 3); // <= 500 µs
        assert_eq!(*snapshot.cumulative.last().unwrap(), 3); // <= 10 s
        assert!((snapshot.sum_seconds - 20.00065).abs() < 1e-9);
    }
}
