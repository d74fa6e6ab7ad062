//! OmenDB's storage engine.
//!
//! ```text
//!   write set at COMMIT                       snapshot reads
//!          |                                        ^
//!          v                                        |
//!   WAL (group commit) -> memtable (MVCC rows) -----+   (not built yet)
//!                            | flush                |
//!                            v                      |
//!   immutable sorted segments (Parquet) ------------+   (not built yet)
//!     each with a learned PK index  <-- index::learned (built)
//! ```
//!
//! Today the crate holds the learned index and the order-preserving key
//! encodings it indexes. The WAL, memtable, segments and compaction follow
//! (see `ARCHITECTURE.md`). This crate never depends on tokio or DataFusion.

mod index;
#[cfg(test)]
mod test_rng;

pub use index::key_encoding;
pub use index::learned::search as last_mile;
pub use index::learned::{
    BuildError, DecodeError, LearnedIndex, LearnedIndexConfig, MAX_EPSILON, MAX_KEYS, SearchWindow,
};
