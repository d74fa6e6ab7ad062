//! All file I/O of the engine goes through [`FileSystem`], so that tests
//! can swap the disk for [`fault::FaultFs`], which loses unsynced data on a
//! simulated crash, tears writes, and injects EIO and ENOSPC.
//!
//! The contract the engine relies on (and the fault model enforces): bytes
//! written to a file survive a crash only after [`WriteFile::sync`]; a
//! created, renamed or removed directory entry survives only after
//! [`FileSystem::sync_dir`] on its directory.

pub(crate) mod fault;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// A directory tree of files.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates `path` empty (truncating an existing file) for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Opens an existing file to append to its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Opens an existing file for reading.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Names of the files in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The whole content of a file that is never written again (a
    /// finished segment), as memory. The OS file system maps it: reads
    /// cost no system call or copy, and its pages live in the OS page
    /// cache, outside the engine's cache budget.
    fn map_immutable(&self, path: &Path) -> io::Result<Bytes>;

    /// The whole content of a file.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open_read(path)?;
        let len = usize::try_from(file.len()).map_err(io::Error::other)?;
        let mut buf = vec![0; len];
        file.read_exact_at(0, &mut buf)?;
        Ok(buf)
    }
}

/// A file open for appending.
pub trait WriteFile: Send + fmt::Debug {
    /// Appends all of `buf`. On error, a prefix of it may have been written.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Truncates the file to `len` bytes; later writes append from there.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file open for positional reads; shareable between threads.
pub trait ReadFile: Send + Sync + fmt::Debug {
    /// Fills `buf` from `offset`, or fails.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Length in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends to a file, counting the bytes and their CRC-32C on the way
/// (for files whose checksum is recorded elsewhere). Unbuffered: wrap it in
/// a `BufWriter`.
#[derive(Debug)]
pub(crate) struct ChecksumWriter {
    pub file: Box<dyn WriteFile>,
    pub crc: u32,
    pub bytes: u64,
}

impl ChecksumWriter {
    pub(crate) fn new(file: Box<dyn WriteFile>) -> ChecksumWriter {
        ChecksumWriter {
            file,
            crc: 0,
            bytes: 0,
        }
    }
}

impl Write for ChecksumWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFs;

#[derive(Debug)]
struct OsWriteFile {
    file: File,
    len: u64,
}

#[derive(Debug)]
struct OsReadFile {
    file: File,
    len: u64,
}

impl FileSystem for OsFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(OsWriteFile { file, len: 0 }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = OpenOptions::new().append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(OsWriteFile { file, len }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Arc::new(OsReadFile { file, len }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn map_immutable(&self, path: &Path) -> io::Result<Bytes> {
        let file = File::open(path)?;
        // Mapping nothing is an error; an empty file is no bytes.
        if file.metadata()?.len() == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: a mapping is sound while nothing changes the file. The
        // engine maps only finished segment files, which it never opens
        // for writing again (new data goes to new files under new ids);
        // removal unlinks the name and leaves the mapping intact. Another
        // process truncating the file would fault the reader (SIGBUS),
        // as with any memory-mapped database file.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Bytes::from_owner(map))
    }
}

impl WriteFile for OsWriteFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        // Files from `create` are not in append mode: move the write position.
        self.file.seek(SeekFrom::Start(len))?;
        self.len = len;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl ReadFile for OsReadFile {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_files_append_truncate_and_read_back() {
        let dir = std::env::temp_dir().join(format!("omendb-io-{}", std::process::id()));
        let fs = OsFs;
        fs.create_dir_all(&dir).unwrap();
        let path = dir.join("a");
        let mut file = fs.create(&path).unwrap();
        file.write_all(b"hello world").unwrap();
        file.set_len(5).unwrap();
        file.write_all(b"!").unwrap();
        file.sync().unwrap();
        assert_eq!(file.len(), 6);
        drop(file);
        let mut again = fs.open_append(&path).unwrap();
        again.write_all(b"?").unwrap();
        assert_eq!(fs.read_all(&path).unwrap(), b"hello!?");
        fs.rename(&path, &dir.join("b")).unwrap();
        fs.sync_dir(&dir).unwrap();
        assert_eq!(fs.list(&dir).unwrap(), vec!["b".to_string()]);
        assert_eq!(&fs.map_immutable(&dir.join("b")).unwrap()[..], b"hello!?");
        fs.create(&dir.join("empty")).unwrap();
        assert!(fs.map_immutable(&dir.join("empty")).unwrap().is_empty());
        fs.remove(&dir.join("b")).unwrap();
        fs.remove(&dir.join("empty")).unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }
}
