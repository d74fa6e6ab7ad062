//! The write-ahead log: one checksummed record per committed transaction,
//! appended in commit order, made durable by group commit, replayed at
//! open. Layout and invariants: `docs/design/wal-format.md`.
//!
//! ```text
//!  commit ─ append(record) ─► buffer ─ leader: write + fsync ─► file ─► durable
//!            (under the engine's commit lock, so WAL order = commit order)
//! ```
//!
//! The WAL is a sequence of files `wal/<number>.wal`. The engine rotates to
//! a new file when it freezes a memtable, so that a flushed memtable covers
//! whole files, which the manifest then releases.
//!
//! This module never decides what a record means: it stores bytes (built
//! by [`record`]) and hands them back, in order, at recovery.

pub(crate) mod record;
mod replay;
mod writer;

use std::path::{Path, PathBuf};

pub use replay::RecoveryProgress;
pub(crate) use replay::replay;
pub(crate) use writer::Wal;

/// A position in the WAL: a file and a byte offset in it. Positions grow
/// with commit order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Lsn {
    pub file: u64,
    pub offset: u64,
}

const MAGIC: [u8; 4] = *b"OMWL";
/// 2: catalog operations carry schemas and unique constraints.
const VERSION: u16 = 2;
/// magic, version, reserved u16, file number u64, then its CRC-32C.
const HEADER_LEN: u64 = 20;
/// CRC-32C of length and payload, then the payload length.
const FRAME_LEN: usize = 8;
/// Records longer than this are refused when written and taken for
/// garbage when read.
const MAX_RECORD: usize = 1 << 30;

/// The path of WAL file `number` in `dir`.
fn file_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.wal"))
}

/// The number of a WAL file name, if it is one.
pub(crate) fn file_number(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// The header that starts WAL file `number`.
fn header(number: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN as usize);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&number.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Appends `payload` framed as a record: CRC-32C over length and payload,
/// then the length, then the payload.
fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&len);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_by_number() {
        let path = file_path(Path::new("/w"), 42);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(file_number(name), Some(42));
        assert!(file_path(Path::new(""), 9) < file_path(Path::new(""), 10));
        assert_eq!(file_number("42.wal"), None);
        assert_eq!(file_number("00000000000000000042.tmp"), None);
        assert_eq!(header(7).len() as u64, HEADER_LEN);
    }
}
