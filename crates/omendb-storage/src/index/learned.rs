//! The learned primary-key index of an immutable segment.
//!
//! A [`LearnedIndex`] maps a key to the position of that key in the
//! segment's sorted key column. It is a PGM-style model: the keys are cut
//! into pieces, each with a line that predicts the position of every key of
//! the piece within a measured error; the first keys of the pieces are in
//! turn indexed the same way, level over level, until at most 64 pieces
//! remain: the root, which lookups search directly.
//!
//! ```text
//!   root level (<= 64 pieces) binary search of its first keys -> piece
//!   level 1 (m_1 pieces)      predict -> window of ±r_1 in level-0 keys
//!   level 0 (m_0 pieces)      predict -> window of ±r_0 in the key column
//!   key column (n keys)       last-mile search inside the window
//! ```
//!
//! The index owns only the model. The keys stay where the segment keeps them
//! and are passed to each lookup; lookups on keys other than those the index
//! was built from give wrong positions but never panic.
//!
//! The error bound is not assumed from the arithmetic: after fitting, the
//! build runs every key through the very code path of a lookup and records
//! the largest error (`radius`) of each level, so the search windows are
//! correct by construction. See `docs/design/learned-index.md`.

mod codec;
mod pla;
pub mod search;

use std::ops::{Bound, Range, RangeBounds};

pub use codec::DecodeError;
use pla::PlaFitter;

use crate::index::key_encoding;

/// Largest number of keys one index may cover. Positions stay exactly
/// representable in `f64` and the fitter's `i128` products cannot overflow.
pub const MAX_KEYS: usize = 1 << 48;

/// The root level has at most this many pieces: lookups binary-search its
/// first keys (a few cached lines) instead of walking one more level of
/// lines, whose float work is a serial chain in every lookup.
const MAX_ROOT_PIECES: usize = 64;

/// A piece spans less than 2^63 keys, so `key - first key` converts to `f64`
/// as a signed integer: one instruction instead of the unsigned sequence.
const MAX_PIECE_SPAN: u64 = 1 << 63;

/// Largest error bound accepted by [`LearnedIndexConfig`].
pub const MAX_EPSILON: u32 = 1 << 20;

/// How tightly the model fits the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnedIndexConfig {
    /// Error bound ε of the bottom level, in positions of the key column: a
    /// lookup searches about `2ε + 2` keys. Larger ε gives fewer pieces (a
    /// smaller index) and wider last-mile searches.
    pub epsilon: u32,
    /// Error bound of the levels above, which index the pieces' first keys.
    pub epsilon_upper: u32,
}

impl Default for LearnedIndexConfig {
    /// ε = 64 over the keys and 16 above: the fastest or within noise of it
    /// on every data set at 10M and 100M keys (`index-bench --sweep`, see
    /// `docs/PERFORMANCE.md`), with an index of 0.03% of the keys or less
    /// outside bursty data.
    fn default() -> Self {
        LearnedIndexConfig {
            epsilon: 64,
            epsilon_upper: 16,
        }
    }
}

/// Why an index could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("keys are not sorted: key at position {position} is smaller than the one before it")]
    NotSorted { position: usize },
    #[error("{count} keys exceed the index limit of {MAX_KEYS}")]
    TooManyKeys { count: usize },
    #[error("error bound {epsilon} is above the limit of {MAX_EPSILON}")]
    EpsilonTooLarge { epsilon: u32 },
}

/// An error-bounded piecewise-linear index over sorted `u64` keys.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedIndex {
    config: LearnedIndexConfig,
    /// Number of keys in the column the index was built from.
    len: usize,
    /// Whether some key repeats (text prefixes); only then can a run of
    /// equal keys push a lower bound past the search window.
    duplicates: bool,
    /// `levels[0]` indexes the key column; `levels[i + 1]` indexes
    /// `levels[i].keys`; the last level (the root) has at most
    /// `MAX_ROOT_PIECES` pieces. Empty for an empty column.
    levels: Vec<Level>,
}

/// One level of the model: pieces over the sorted keys below it.
#[derive(Clone, Debug, PartialEq)]
struct Level {
    /// First key of each piece, strictly increasing.
    keys: Vec<u64>,
    /// The line of each piece.
    lines: Vec<Line>,
    /// Largest distance between a predicted and a true position, measured
    /// over every distinct key below this level at build time.
    radius: usize,
}

/// Predicts positions for the keys from a piece's first key up to the next
/// piece's first key.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Line {
    slope: f64,
    /// Predicted position at the piece's first key, plus 0.5 so that the
    /// truncating cast in `predict` rounds to nearest.
    intercept: f64,
    /// Position of the next piece's first key (or the end of the keys):
    /// no key of this piece's range lies at or beyond it.
    end: usize,
}

impl Line {
    /// The predicted position of a key `dx` above the piece's first key.
    #[inline]
    fn predict(&self, dx: u64) -> usize {
        // Keys of the piece are < MAX_PIECE_SPAN above its first; keys in the
        // gap after it may not be, and saturate (predictions stay monotone).
        let dx = dx.min(MAX_PIECE_SPAN - 1) as i64 as f64;
        // `as` saturates, so a negative prediction becomes 0.
        ((self.intercept + self.slope * dx) as i64)
            .max(0)
            .min(self.end as i64) as usize
    }
}

/// Where the model says a key's lower bound is: over distinct keys the
/// first position whose key is `>= key` lies in `start..=end` (so searching
/// `keys[start..end]` and answering `end` when nothing matches is exact),
/// and is most likely near `guess`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchWindow {
    pub start: usize,
    pub end: usize,
    pub guess: usize,
}

impl SearchWindow {
    const EMPTY: SearchWindow = SearchWindow {
        start: 0,
        end: 0,
        guess: 0,
    };

    /// The positions to search.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

impl LearnedIndex {
    /// Builds the index with the default configuration.
    pub fn build(keys: &[u64]) -> Result<LearnedIndex, BuildError> {
        LearnedIndex::build_with(keys, LearnedIndexConfig::default())
    }

    /// Builds the index over `keys`, which must be sorted ascending.
    /// Duplicates are allowed (prefix keys of text have them); lookups then
    /// return the first position of a key. Each level takes one pass to fit,
    /// one to centre the lines and one to measure their error: O(n) time,
    /// O(pieces) memory.
    pub fn build_with(
        keys: &[u64],
        config: LearnedIndexConfig,
    ) -> Result<LearnedIndex, BuildError> {
        if keys.len() > MAX_KEYS {
            return Err(BuildError::TooManyKeys { count: keys.len() });
        }
        for epsilon in [config.epsilon, config.epsilon_upper] {
            if epsilon > MAX_EPSILON {
                return Err(BuildError::EpsilonTooLarge { epsilon });
            }
        }
        let mut duplicates = false;
        for (i, pair) in keys.windows(2).enumerate() {
            if pair[1] < pair[0] {
                return Err(BuildError::NotSorted { position: i + 1 });
            }
            duplicates |= pair[1] == pair[0];
        }
        let mut levels = Vec::new();
        if !keys.is_empty() {
            levels.push(Level::fit(keys, config.epsilon));
        }
        while let Some(top) = levels.last().filter(|top| top.keys.len() > MAX_ROOT_PIECES) {
            let next = Level::fit(&top.keys, config.epsilon_upper);
            levels.push(next);
        }
        Ok(LearnedIndex {
            config,
            len: keys.len(),
            duplicates,
            levels,
        })
    }

    /// Number of keys the index was built over.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the index was built over no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The configuration the index was built with.
    pub fn config(&self) -> LearnedIndexConfig {
        self.config
    }

    /// Number of pieces of the bottom level.
    pub fn pieces(&self) -> usize {
        self.levels.first().map_or(0, |level| level.keys.len())
    }

    /// Number of levels, bottom included.
    pub fn height(&self) -> usize {
        self.levels.len()
    }

    /// The measured worst-case distance between predicted and true position
    /// in the key column (at most ε + 1: ε from the fit, 1 from rounding).
    pub fn max_error(&self) -> usize {
        self.levels.first().map_or(0, |level| level.radius)
    }

    /// Heap bytes used by the model.
    pub fn size_in_bytes(&self) -> usize {
        let per_piece = size_of::<u64>() + size_of::<Line>();
        let pieces: usize = self.levels.iter().map(|level| level.keys.len()).sum();
        size_of::<Self>() + self.levels.len() * size_of::<Level>() + pieces * per_piece
    }

    /// The window of positions where the model puts the first key `>= key`;
    /// [`crate::last_mile`] has functions to search it. Over distinct keys
    /// the answer is always inside. Where keys repeat, a long run of the key
    /// just below `key` can push the answer past `end` (never before
    /// `start`); [`Self::lower_bound`] then gallops on from `end`.
    pub fn search_window(&self, key: u64) -> SearchWindow {
        self.predict(key)
    }

    /// The first position whose key is `>= key` (`len()` if none): where a
    /// range scan from `key` starts.
    #[inline]
    pub fn lower_bound(&self, keys: &[u64], key: u64) -> usize {
        let window = self.predict(key);
        let i = search::lower_bound_prefetch_window(keys, window.range(), key);
        // Only a run of duplicates can push the answer past the window.
        if self.duplicates && i == window.end && keys.get(i).is_some_and(|&k| k < key) {
            return search::gallop_by(i, keys.len(), |j| keys[j] < key);
        }
        i
    }

    /// The position of `key`, or its first position when it repeats.
    #[inline]
    pub fn get(&self, keys: &[u64], key: u64) -> Option<usize> {
        let i = self.lower_bound(keys, key);
        (keys.get(i) == Some(&key)).then_some(i)
    }

    /// The positions of the keys inside `range`, e.g. `lo..hi` or `lo..=hi`.
    pub fn range(&self, keys: &[u64], range: impl RangeBounds<u64>) -> Range<usize> {
        let start = match range.start_bound() {
            Bound::Included(&lo) => self.lower_bound(keys, lo),
            Bound::Excluded(&lo) => self.position_after(keys, lo),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&hi) => self.position_after(keys, hi),
            Bound::Excluded(&hi) => self.lower_bound(keys, hi),
            Bound::Unbounded => keys.len().min(self.len),
        };
        start..end.max(start)
    }

    /// The first position whose key is `> key`.
    fn position_after(&self, keys: &[u64], key: u64) -> usize {
        match key.checked_add(1) {
            Some(next) => self.lower_bound(keys, next),
            None => keys.len().min(self.len),
        }
    }

    /// Lower bound for variable-length byte keys (text in the C collation,
    /// bytea) when the index was built over their 8-byte prefixes
    /// ([`key_encoding::encode_bytes_prefix`]). `key_at(i)` returns the full
    /// key at position `i`. The model finds the first key sharing the query's
    /// prefix; an exponential search over full keys finishes, so a long run
    /// of equal prefixes costs O(log run), never a scan.
    pub fn lower_bound_bytes<'k>(&self, key_at: impl Fn(usize) -> &'k [u8], query: &[u8]) -> usize {
        let prefix = key_encoding::encode_bytes_prefix(query);
        let window = self.predict(prefix);
        // Every key before the first with the query's prefix is smaller; a
        // run of a smaller prefix may end past the window, which the gallop
        // over full keys then crosses.
        let start = search::partition_by(window.range(), |i| {
            key_encoding::encode_bytes_prefix(key_at(i)) < prefix
        });
        search::gallop_by(start, self.len, |i| key_at(i) < query)
    }

    /// The position of a byte key, as [`Self::lower_bound_bytes`].
    pub fn get_bytes<'k>(&self, key_at: impl Fn(usize) -> &'k [u8], query: &[u8]) -> Option<usize> {
        let i = self.lower_bound_bytes(&key_at, query);
        (i < self.len && key_at(i) == query).then_some(i)
    }

    /// Walks the levels top-down to the window in the key column.
    #[inline]
    fn predict(&self, key: u64) -> SearchWindow {
        let (Some(bottom), Some(top)) = (self.levels.first(), self.levels.last()) else {
            return SearchWindow::EMPTY;
        };
        // Every level starts with the smallest key, so below it the answer is 0
        // and above it `key - first key` never underflows.
        if bottom.keys.first().is_none_or(|&first| key < first) {
            return SearchWindow::EMPTY;
        }
        // The piece holding `key` is the last whose first key is <= key; the
        // top level is small enough to search outright.
        let mut piece = search::upper_bound(&top.keys, 0..top.keys.len(), key).saturating_sub(1);
        for pair in self.levels.windows(2).rev() {
            let (below, level) = (&pair[0], &pair[1]);
            let window = level.predict(piece, key);
            // The window bounds the first key >= `key`; one more position
            // covers the last key <= `key` when it equals `key`.
            let window = window.start..window.end.saturating_add(1);
            piece = search::upper_bound(&below.keys, window, key).saturating_sub(1);
        }
        bottom.predict(piece, key)
    }
}

impl Level {
    /// Fits pieces over sorted `keys` within `epsilon`, then measures the
    /// real error of the rounded lines.
    fn fit(keys: &[u64], epsilon: u32) -> Level {
        let mut starts = Vec::new();
        let mut slopes = Vec::new();
        let mut fitter = PlaFitter::new(epsilon);
        for (i, key) in distinct(keys, 0..keys.len()) {
            if starts.is_empty() {
                fitter.start(key, i as i64);
                starts.push(i);
            } else if key - keys[starts[starts.len() - 1]] >= MAX_PIECE_SPAN
                || !fitter.try_add(key, i as i64)
            {
                slopes.push(fitter.slope());
                fitter.start(key, i as i64);
                starts.push(i);
            }
        }
        if !starts.is_empty() {
            slopes.push(fitter.slope());
        }

        let mut level = Level {
            keys: Vec::with_capacity(starts.len()),
            lines: Vec::with_capacity(starts.len()),
            radius: 0,
        };
        for (j, (&start, &slope)) in starts.iter().zip(&slopes).enumerate() {
            let end = starts.get(j + 1).copied().unwrap_or(keys.len());
            let first = keys[start];
            let intercept = centred_intercept(keys, start..end, slope, epsilon);
            let line = Line {
                slope,
                intercept: intercept + 0.5,
                end,
            };
            for (i, key) in distinct(keys, start..end) {
                level.radius = level.radius.max(line.predict(key - first).abs_diff(i));
            }
            level.keys.push(first);
            level.lines.push(line);
        }
        level
    }

    /// The window for `key` in the keys below, given the piece it falls in.
    #[inline]
    fn predict(&self, piece: usize, key: u64) -> SearchWindow {
        let (Some(&first), Some(line)) = (self.keys.get(piece), self.lines.get(piece)) else {
            return SearchWindow::EMPTY;
        };
        let guess = line.predict(key.saturating_sub(first));
        // Absent keys between two keys of the piece predict between their
        // neighbours' predictions (lines never fall), hence the `+ 1`.
        SearchWindow {
            start: guess.saturating_sub(self.radius),
            end: guess
                .saturating_add(self.radius)
                .saturating_add(1)
                .min(line.end),
            guess,
        }
    }
}

/// The intercept (prediction at the piece's first key) that centres the
/// errors of a line of `slope` over the piece's keys: the middle of the
/// intercepts that keep every key within ε, computed in the same `f64`
/// arithmetic that lookups use.
fn centred_intercept(keys: &[u64], piece: Range<usize>, slope: f64, epsilon: u32) -> f64 {
    let first = keys[piece.start];
    let epsilon = f64::from(epsilon);
    let (mut lowest, mut highest) = (f64::NEG_INFINITY, f64::INFINITY);
    for (i, key) in distinct(keys, piece) {
        let along = slope * (key - first) as f64;
        lowest = lowest.max(i as f64 - epsilon - along);
        highest = highest.min(i as f64 + epsilon - along);
    }
    (lowest + highest) / 2.0
}

/// `(position, key)` of the first occurrence of each key in `keys[range]`.
fn distinct(keys: &[u64], range: Range<usize>) -> impl Iterator<Item = (usize, u64)> + '_ {
    let start = range.start;
    keys[range]
        .iter()
        .enumerate()
        .filter(move |&(i, key)| i == 0 || keys[start + i - 1] != *key)
        .map(move |(i, &key)| (start + i, key))
}

#[cfg(test)]
mod tests;
