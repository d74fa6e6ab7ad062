//! Timing helpers: medians over repetitions, and a checksum of every result
//! so that the compiler cannot drop the work and engines can be compared.

use std::hint::black_box;
use std::time::Instant;

/// Runs `op` on every query and returns nanoseconds per query and a
/// checksum of the answers.
pub fn time_queries(queries: &[u64], op: impl Fn(u64) -> u64) -> (f64, u64) {
    let start = Instant::now();
    let mut checksum = 0u64;
    for &q in queries {
        checksum = checksum.wrapping_add(op(black_box(q)));
    }
    let elapsed = start.elapsed();
    (
        elapsed.as_nanos() as f64 / queries.len().max(1) as f64,
        black_box(checksum),
    )
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Milliseconds taken by `f`, with its result.
pub fn time_ms<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed().as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
