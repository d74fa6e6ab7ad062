//! A segment's row file: every version's values, row-encoded and
//! addressable by row number, so a point read is two small reads from the
//! mapped file (the row's offsets, then its bytes) however large the
//! segment, instead of decoding a Parquet page per column. The Parquet file stays the column store scans read; this is
//! the row store point reads use.
//!
//! ```text
//!  header   "OMENROWS" u32 version=1 u32 0
//!  rows     row 0 | row 1 | ...        (`types/row_codec.rs`; a tombstone is empty)
//!  offsets  u64 LE x (rows + 1)        (file offsets: row i is offsets[i]..offsets[i+1])
//!  trailer  u64 offsets_start  u64 rows  "OMENROWS"
//! ```
//!
//! The Parquet footer records the row file's length and CRC-32C, and the
//! manifest records the Parquet file's, so opening checks both.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Result, StorageError};
use crate::index::learned::search;
use crate::io::{ChecksumWriter, FileSystem};

const MAGIC: &[u8; 8] = b"OMENROWS";
const VERSION: u32 = 1;
const HEADER_BYTES: u64 = 16;
const TRAILER_BYTES: u64 = 24;
/// Bytes buffered before a write to the file.
const WRITE_BUFFER: usize = 1 << 20;

/// The row file of segment `id` in the segment directory `dir`.
pub(crate) fn row_file_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.rows"))
}

/// Length and CRC-32C of a finished row file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowFileSummary {
    pub bytes: u64,
    pub crc: u32,
}

/// Writes a row file, one row at a time in segment order.
pub(crate) struct RowFileWriter {
    path: PathBuf,
    out: BufWriter<ChecksumWriter>,
    /// Where each row starts; the next row's start last.
    offsets: Vec<u64>,
}

impl RowFileWriter {
    pub(crate) fn create(fs: &dyn FileSystem, path: PathBuf) -> Result<RowFileWriter> {
        let file = fs.create(&path).map_err(|e| StorageError::io(&path, e))?;
        let mut writer = RowFileWriter {
            path,
            out: BufWriter::with_capacity(WRITE_BUFFER, ChecksumWriter::new(file)),
            offsets: vec![HEADER_BYTES],
        };
        writer.put(MAGIC)?;
        writer.put(&VERSION.to_le_bytes())?;
        writer.put(&0u32.to_le_bytes())?;
        Ok(writer)
    }

    /// Appends the next row's encoded bytes (empty for a tombstone).
    pub(crate) fn push(&mut self, row: &[u8]) -> Result<()> {
        self.put(row)?;
        self.offsets.push(self.position());
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// Bytes written so far, buffered ones included.
    fn position(&self) -> u64 {
        self.out.get_ref().bytes + self.out.buffer().len() as u64
    }

    /// Writes the offsets and trailer and syncs the file. The directory
    /// entry is the caller's to sync.
    pub(crate) fn finish(mut self) -> Result<RowFileSummary> {
        let offsets_start = self.position();
        let rows = self.offsets.len() as u64 - 1;
        for offset in std::mem::take(&mut self.offsets) {
            self.put(&offset.to_le_bytes())?;
        }
        self.put(&offsets_start.to_le_bytes())?;
        self.put(&rows.to_le_bytes())?;
        self.put(MAGIC)?;
        let path = self.path;
        let mut sink = self
            .out
            .into_inner()
            .map_err(|e| StorageError::io(&path, e.into_error()))?;
        sink.file.sync().map_err(|e| StorageError::io(&path, e))?;
        Ok(RowFileSummary {
            bytes: sink.bytes,
            crc: sink.crc,
        })
    }
}

/// An open row file, checked against its summary, held as memory (see
/// [`FileSystem::map_immutable`]).
#[derive(Debug)]
pub(crate) struct RowFile {
    path: PathBuf,
    bytes: Bytes,
    offsets_start: u64,
    rows: u64,
}

impl RowFile {
    /// Opens the row file at `path`, which must match `summary` and hold
    /// `rows` rows.
    pub(crate) fn open(
        fs: &dyn FileSystem,
        path: PathBuf,
        summary: RowFileSummary,
        rows: u64,
    ) -> Result<RowFile> {
        let bytes = fs
            .map_immutable(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        let corrupt =
            |offset, detail: String| StorageError::corruption("row file", &path, offset, detail);
        let len = bytes.len() as u64;
        if len != summary.bytes {
            return Err(corrupt(
                0,
                format!("{len} bytes, the segment says {}", summary.bytes),
            ));
        }
        let crc = crc32c::crc32c(&bytes);
        if crc != summary.crc {
            return Err(corrupt(
                0,
                format!(
                    "checksum mismatch: file {crc:#010x}, segment {:#010x}",
                    summary.crc
                ),
            ));
        }
        if len < HEADER_BYTES + TRAILER_BYTES {
            return Err(corrupt(0, "shorter than its header and trailer".into()));
        }
        let trailer_at = len - TRAILER_BYTES;
        let (header, trailer) = (
            &bytes[..HEADER_BYTES as usize],
            &bytes[trailer_at as usize..],
        );
        if &header[..8] != MAGIC
            || header[8..12] != VERSION.to_le_bytes()
            || &trailer[16..] != MAGIC
        {
            return Err(corrupt(0, "bad magic or unknown version".into()));
        }
        let (offsets_start, stored_rows) = (word(&trailer[..8]), word(&trailer[8..16]));
        if stored_rows != rows || offsets_start.checked_add((rows + 1) * 8) != Some(trailer_at) {
            return Err(corrupt(
                trailer_at,
                format!("trailer says {stored_rows} rows at {offsets_start}, expected {rows}"),
            ));
        }
        Ok(RowFile {
            path,
            bytes,
            offsets_start,
            rows,
        })
    }

    /// Asks memory for what [`Self::row`] will read of row `row`: its
    /// offsets, and its bytes where an even spread of row sizes puts them
    /// (exactly there when every row encodes to the same length, as rows of
    /// fixed-width columns do). A hint only: a wrong guess costs a wasted
    /// fetch. A point read issues it before it checks the row's version, so
    /// the misses overlap instead of following one another.
    pub(crate) fn prefetch(&self, row: usize) {
        let row = row as u64;
        if row >= self.rows {
            return;
        }
        let base = self.bytes.as_ptr();
        let at = |offset: u64| base.wrapping_add(offset as usize);
        search::prefetch(at(self.offsets_start + row * 8));
        let data = self.offsets_start - HEADER_BYTES;
        // `row < rows`, so the guess lies inside the rows' bytes.
        let start =
            HEADER_BYTES + (u128::from(row) * u128::from(data) / u128::from(self.rows)) as u64;
        let mean = data / self.rows;
        search::prefetch(at(start));
        search::prefetch(at(start + mean.saturating_sub(1)));
    }

    /// The encoded bytes of row `row`, lent from the file's memory.
    pub(crate) fn row(&self, row: usize) -> Result<&[u8]> {
        if row as u64 >= self.rows {
            return Err(StorageError::internal(format!(
                "row {row} of {} rows in {}",
                self.rows,
                self.path.display()
            )));
        }
        // `open` checked that the offsets of every row lie in the file.
        let at = (self.offsets_start + row as u64 * 8) as usize;
        let (start, end) = (word(&self.bytes[at..]), word(&self.bytes[at + 8..]));
        if start > end || end > self.offsets_start {
            return Err(StorageError::corruption(
                "row file",
                &self.path,
                at as u64,
                format!("row {row} spans {start}..{end}"),
            ));
        }
        Ok(&self.bytes[start as usize..end as usize])
    }
}

/// The little-endian `u64` at the start of `bytes` (zero when shorter:
/// callers check lengths first).
fn word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::OsFs;
    use crate::io::fault::FaultFs;

    const DIR: &str = "/rows";

    /// Rows of varied lengths, some empty (tombstones), some longer than a
    /// page, so reads cross page boundaries.
    fn rows() -> Vec<Vec<u8>> {
        (0..3000u32)
            .map(|i| match i % 7 {
                0 => Vec::new(),
                3 => vec![i as u8; 5000],
                _ => i.to_le_bytes().repeat(1 + i as usize % 5),
            })
            .collect()
    }

    fn write(fs: &FaultFs, rows: &[Vec<u8>]) -> RowFileSummary {
        fs.create_dir_all(Path::new(DIR)).unwrap();
        let mut writer = RowFileWriter::create(fs, row_file_path(Path::new(DIR), 1)).unwrap();
        for row in rows {
            writer.push(row).unwrap();
        }
        writer.finish().unwrap()
    }

    fn open(fs: &FaultFs, summary: RowFileSummary, rows: u64) -> Result<RowFile> {
        RowFile::open(fs, row_file_path(Path::new(DIR), 1), summary, rows)
    }

    #[test]
    fn every_row_reads_back() {
        let fs = FaultFs::new();
        let rows = rows();
        let summary = write(&fs, &rows);
        let file = open(&fs, summary, rows.len() as u64).unwrap();
        for i in (0..rows.len()).rev().step_by(3).chain(0..rows.len()) {
            // Only a hint: rows of any length read back the same after it.
            file.prefetch(i);
            assert_eq!(file.row(i).unwrap(), rows[i], "row {i}");
        }
        file.prefetch(rows.len());
        assert!(file.row(rows.len()).is_err(), "past the last row");
    }

    #[test]
    fn a_mapped_file_on_disk_reads_back_like_one_in_memory() {
        let dir = std::env::temp_dir().join(format!("omendb-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rows = rows();
        let path = row_file_path(&dir, 1);
        let mut writer = RowFileWriter::create(&OsFs, path.clone()).unwrap();
        for row in &rows {
            writer.push(row).unwrap();
        }
        let summary = writer.finish().unwrap();
        let file = RowFile::open(&OsFs, path, summary, rows.len() as u64).unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(file.row(i).unwrap(), row, "row {i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_flipped_bit_or_a_wrong_row_count_is_a_corruption_error_naming_the_file() {
        let fs = FaultFs::new();
        let rows = rows();
        let summary = write(&fs, &rows);
        let error = open(&fs, summary, rows.len() as u64 + 1).unwrap_err();
        assert!(error.to_string().contains("expected 3001"), "{error}");
        let path = row_file_path(Path::new(DIR), 1);
        fs.corrupt(&path, 100, 0x04).unwrap();
        let error = open(&fs, summary, rows.len() as u64).unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
        assert!(
            error.to_string().contains("00000000000000000001.rows"),
            "{error}"
        );
    }
}
