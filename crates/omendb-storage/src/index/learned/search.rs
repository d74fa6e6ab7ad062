//! The last mile: finding the first key `>= q` inside the small window of
//! positions that the model guarantees to contain it.
//!
//! Every function here has the same contract: given sorted `keys` and a
//! window `lo..hi`, return the first position in the window whose key is
//! `>= q`, or `hi` if there is none. Windows are clamped to `keys`, so a bad
//! window gives a wrong position, never a panic. Which one the index uses is
//! decided by measurement (`index-bench --sweep`, `docs/PERFORMANCE.md`).

use std::ops::Range;

/// Rust's `partition_point`: a branch-free binary search.
pub fn lower_bound_branchless(keys: &[u64], window: Range<usize>, q: u64) -> usize {
    let window = clamp(window, keys.len());
    window.start + keys[window.clone()].partition_point(|&k| k < q)
}

/// A branchy binary search that prefetches both possible next midpoints, so
/// the next probe's cache line is on its way before the branch resolves.
pub fn lower_bound_prefetch(keys: &[u64], window: Range<usize>, q: u64) -> usize {
    let Range {
        start: mut lo,
        end: mut hi,
    } = clamp(window, keys.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        for i in [lo + (mid - lo) / 2, mid + 1 + (hi - mid - 1) / 2] {
            prefetch(keys.as_ptr().wrapping_add(i));
        }
        if keys[mid] < q {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Prefetches every cache line of the window first, so its misses overlap
/// in one round trip to memory, then searches it branch-free.
pub fn lower_bound_prefetch_window(keys: &[u64], window: Range<usize>, q: u64) -> usize {
    let window = clamp(window, keys.len());
    let keys_in = &keys[window.clone()];
    if let (Some(first), Some(last)) = (keys_in.first(), keys_in.last()) {
        let first = std::ptr::from_ref(first);
        let last = std::ptr::from_ref(last).addr();
        let mut line = first.addr() & !(CACHE_LINE - 1);
        while line <= last {
            prefetch(first.with_addr(line));
            line += CACHE_LINE;
        }
    }
    window.start + keys_in.partition_point(|&k| k < q)
}

/// The first position in the window whose key is `> q`, branch-free: for
/// the model's small, cached upper levels.
pub(crate) fn upper_bound(keys: &[u64], window: Range<usize>, q: u64) -> usize {
    let window = clamp(window, keys.len());
    window.start + keys[window.clone()].partition_point(|&k| k <= q)
}

/// The first position in `from..end` where `is_less` turns false (`end` if
/// it never does), by exponential search from `from`: O(log distance).
pub(crate) fn gallop_by(from: usize, end: usize, is_less: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi, mut step) = (from, from, 1usize);
    while hi < end && is_less(hi) {
        lo = hi + 1;
        hi = hi.saturating_add(step).min(end);
        step = step.saturating_mul(2);
    }
    partition_by(lo..hi, is_less)
}

/// The first position in `window` where `is_less` turns false, given that
/// it is true and then false along the window (binary search).
pub(crate) fn partition_by(window: Range<usize>, is_less: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (window.start, window.end.max(window.start));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if is_less(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

const CACHE_LINE: usize = 64;

/// Limits `window` to `0..len` and makes it non-decreasing.
fn clamp(window: Range<usize>, len: usize) -> Range<usize> {
    let end = window.end.min(len);
    window.start.min(end)..end
}

/// Asks the cache for the line holding `address`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
pub(crate) fn prefetch<T>(address: *const T) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch is only a hint to the cache: it never dereferences
    // in the language's sense and never faults, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>()) };
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn prefetch<T>(_address: *const T) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(keys: &[u64], window: Range<usize>, q: u64) -> usize {
        let window = clamp(window, keys.len());
        (window.start..window.end)
            .find(|&i| keys[i] >= q)
            .unwrap_or(window.end)
    }

    #[test]
    fn every_search_agrees_with_a_scan_on_every_window_and_query() {
        let keys: Vec<u64> = vec![1, 3, 3, 3, 7, 9, 12, 12, 40, 41, 42, 100];
        for lo in 0..=keys.len() + 1 {
            for hi in 0..=keys.len() + 2 {
                for q in 0..=101 {
                    let ctx = format!("window {lo}..{hi}, q {q}");
                    let want = reference(&keys, lo..hi, q);
                    assert_eq!(lower_bound_branchless(&keys, lo..hi, q), want, "{ctx}");
                    assert_eq!(lower_bound_prefetch(&keys, lo..hi, q), want, "{ctx}");
                    assert_eq!(lower_bound_prefetch_window(&keys, lo..hi, q), want, "{ctx}");
                    let upper = reference(&keys, lo..hi, q + 1);
                    assert_eq!(upper_bound(&keys, lo..hi, q), upper, "{ctx}");
                    let w = clamp(lo..hi, keys.len());
                    assert_eq!(gallop_by(w.start, w.end, |i| keys[i] < q), want, "{ctx}");
                    assert_eq!(partition_by(w.clone(), |i| keys[i] < q), want, "{ctx}");
                }
            }
        }
    }
}
