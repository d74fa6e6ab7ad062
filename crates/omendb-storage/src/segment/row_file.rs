//! A segment's row file: every version's values, row-encoded and
//! addressable by row number, so a point read is two small reads (the
//! row's offsets, then its bytes, each through 4 KiB pages in the cache)
//! however large the segment, instead of decoding a Parquet page per
//! column. The Parquet file stays the column store scans read; this is
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
use std::sync::Arc;

use crate::cache::{Cache, CacheKey};
use crate::error::{Result, StorageError};
use crate::io::{ChecksumWriter, FileSystem, ReadFile, crc32c_of};

const MAGIC: &[u8; 8] = b"OMENROWS";
const VERSION: u32 = 1;
const HEADER_BYTES: u64 = 16;
const TRAILER_BYTES: u64 = 24;
/// Reads go through the cache in pages of this many bytes.
const PAGE_BYTES: u64 = 4096;
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

/// An open row file, checked against its summary.
#[derive(Debug)]
pub(crate) struct RowFile {
    path: PathBuf,
    file: Arc<dyn ReadFile>,
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
        let file = fs
            .open_read(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        let corrupt =
            |offset, detail: String| StorageError::corruption("row file", &path, offset, detail);
        if file.len() != summary.bytes {
            return Err(corrupt(
                0,
                format!("{} bytes, the segment says {}", file.len(), summary.bytes),
            ));
        }
        let crc = crc32c_of(file.as_ref()).map_err(|e| StorageError::io(&path, e))?;
        if crc != summary.crc {
            return Err(corrupt(
                0,
                format!(
                    "checksum mismatch: file {crc:#010x}, segment {:#010x}",
                    summary.crc
                ),
            ));
        }
        if file.len() < HEADER_BYTES + TRAILER_BYTES {
            return Err(corrupt(0, "shorter than its header and trailer".into()));
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        let mut trailer = [0u8; TRAILER_BYTES as usize];
        let trailer_at = file.len() - TRAILER_BYTES;
        file.read_exact_at(0, &mut header)
            .and_then(|()| file.read_exact_at(trailer_at, &mut trailer))
            .map_err(|e| StorageError::io(&path, e))?;
        let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
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
            file,
            offsets_start,
            rows,
        })
    }

    /// Calls `f` with the encoded bytes of row `row`, read through `cache`
    /// in pages as segment `segment`'s. A row within one page is lent
    /// straight from the cached page; only a row crossing pages is copied.
    pub(crate) fn with_row<R>(
        &self,
        cache: &Cache,
        segment: u64,
        row: usize,
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        if row as u64 >= self.rows {
            return Err(StorageError::internal(format!(
                "row {row} of {} rows in {}",
                self.rows,
                self.path.display()
            )));
        }
        let at = self.offsets_start + row as u64 * 8;
        let (start, end) = self.with_bytes(cache, segment, at, 16, |pair| {
            let word = |i: usize| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&pair[i..i + 8]);
                u64::from_le_bytes(bytes)
            };
            Ok((word(0), word(8)))
        })?;
        if start > end || end > self.offsets_start {
            return Err(StorageError::corruption(
                "row file",
                &self.path,
                at,
                format!("row {row} spans {start}..{end}"),
            ));
        }
        self.with_bytes(cache, segment, start, (end - start) as usize, f)
    }

    /// Calls `f` with the `len` bytes at `offset`.
    fn with_bytes<R>(
        &self,
        cache: &Cache,
        segment: u64,
        offset: u64,
        len: usize,
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let number = offset / PAGE_BYTES;
        let from = (offset - number * PAGE_BYTES) as usize;
        if from + len <= PAGE_BYTES as usize {
            let page = self.page(cache, segment, number)?;
            return match page.get(from..from + len) {
                Some(bytes) => f(bytes),
                None => Err(self.past_end(offset + len as u64)),
            };
        }
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            let position = offset + bytes.len() as u64;
            let number = position / PAGE_BYTES;
            let page = self.page(cache, segment, number)?;
            let from = (position - number * PAGE_BYTES) as usize;
            let n = (len - bytes.len()).min(page.len().saturating_sub(from));
            if n == 0 {
                return Err(self.past_end(position));
            }
            bytes.extend_from_slice(&page[from..from + n]);
        }
        f(&bytes)
    }

    /// Page `number` of the file, from the cache.
    fn page(&self, cache: &Cache, segment: u64, number: u64) -> Result<Arc<Vec<u8>>> {
        cache.get_or_load(CacheKey::RowPage(segment, number), || {
            let start = number * PAGE_BYTES;
            let len = PAGE_BYTES.min(self.file.len().saturating_sub(start)) as usize;
            let mut page = vec![0; len];
            self.file
                .read_exact_at(start, &mut page)
                .map_err(|e| StorageError::io(&self.path, e))?;
            Ok((page, len))
        })
    }

    fn past_end(&self, position: u64) -> StorageError {
        StorageError::corruption("row file", &self.path, position, "read past the end")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn every_row_reads_back_through_a_small_cache() {
        let fs = FaultFs::new();
        let rows = rows();
        let summary = write(&fs, &rows);
        let file = open(&fs, summary, rows.len() as u64).unwrap();
        // Room for a few pages only: most reads miss and evict.
        let cache = Cache::new(4 * PAGE_BYTES as usize);
        for i in (0..rows.len()).rev().step_by(3).chain(0..rows.len()) {
            let row = file.with_row(&cache, 1, i, |b| Ok(b.to_vec())).unwrap();
            assert_eq!(row, rows[i], "row {i}");
        }
        assert!(
            file.with_row(&cache, 1, rows.len(), |_| Ok(())).is_err(),
            "past the last row"
        );
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
