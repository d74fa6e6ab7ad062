//! Appending to the WAL, with group commit.
//!
//! Committers append records to an in-memory buffer (cheap, under the
//! engine's commit lock) and then call [`Wal::sync`]. The first syncer to
//! find no flush under way becomes the leader: it takes the whole buffer,
//! writes it and fsyncs once for everyone, while later committers keep
//! appending to a fresh buffer. One fsync thus covers every commit that
//! arrived while the previous one ran.
//!
//! When a write or fsync fails, every record not yet durable is void: the
//! file is cut back to the durable end (and that cut synced), the buffer is
//! dropped, and the epoch moves on, so each waiting committer learns its
//! record failed and none of them reappears after a restart. If even the
//! cut fails, the WAL refuses further writes until the database reopens.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::{FRAME_LEN, HEADER_LEN, Lsn, MAX_RECORD, file_path, frame, header};
use crate::error::{Result, StorageError};
use crate::io::{FileSystem, WriteFile};
use crate::metrics::Histogram;

/// Where an appended record ends, and the epoch it was appended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub lsn: Lsn,
    epoch: u64,
}

/// The WAL, open for appending.
#[derive(Debug)]
pub(crate) struct Wal {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    inner: Mutex<Inner>,
    flushed: Condvar,
    /// How long each group commit's write and fsync took.
    pub(crate) fsyncs: Histogram,
}

#[derive(Debug)]
struct Inner {
    /// The current file; `None` while the leader writes to it.
    file: Option<Box<dyn WriteFile>>,
    number: u64,
    /// Records appended but not yet handed to the file.
    buffer: Vec<u8>,
    /// End of the last appended record.
    appended: Lsn,
    /// End of the durable prefix.
    synced: Lsn,
    flushing: bool,
    /// Bumped each time a failure voids the records after `synced`.
    epoch: u64,
    /// Why the last failure voided records.
    last_failure: String,
    /// Set when the WAL could not be cut back after a failure.
    poisoned: Option<String>,
}

fn lock(mutex: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // Every critical section below leaves `Inner` consistent before any
    // call that could panic, so a poisoned lock still guards valid state.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Wal {
    /// Starts WAL file `number` (header written, synced, directory synced).
    #[cfg(test)]
    pub(crate) fn create(fs: Arc<dyn FileSystem>, dir: PathBuf, number: u64) -> Result<Wal> {
        let file = start_file(fs.as_ref(), &dir, number)?;
        let start = Lsn {
            file: number,
            offset: HEADER_LEN,
        };
        Ok(Wal::with_file(fs, dir, number, file, start))
    }

    /// Continues WAL file `number`, whose valid records end at `offset`
    /// (as replay found and repaired it).
    pub(crate) fn resume(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        number: u64,
        offset: u64,
    ) -> Result<Wal> {
        let path = file_path(&dir, number);
        let file = fs
            .open_append(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        if file.len() != offset {
            return Err(StorageError::internal(format!(
                "{} is {} bytes but its records end at {offset}",
                path.display(),
                file.len()
            )));
        }
        Ok(Wal::with_file(
            fs,
            dir,
            number,
            file,
            Lsn {
                file: number,
                offset,
            },
        ))
    }

    fn with_file(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        number: u64,
        file: Box<dyn WriteFile>,
        end: Lsn,
    ) -> Wal {
        let inner = Inner {
            file: Some(file),
            number,
            buffer: Vec::new(),
            appended: end,
            synced: end,
            flushing: false,
            epoch: 0,
            last_failure: String::new(),
            poisoned: None,
        };
        Wal {
            fs,
            dir,
            inner: Mutex::new(inner),
            flushed: Condvar::new(),
            fsyncs: Histogram::default(),
        }
    }

    /// Appends one record. The caller orders appends (the engine holds its
    /// commit lock), so WAL order is commit order.
    pub(crate) fn append(&self, payload: &[u8]) -> Result<Appended> {
        if payload.len() > MAX_RECORD {
            return Err(StorageError::OutOfMemory {
                message: format!(
                    "transaction of {} bytes exceeds the WAL record limit of {MAX_RECORD}",
                    payload.len()
                ),
            });
        }
        let mut inner = lock(&self.inner);
        if let Some(reason) = &inner.poisoned {
            return Err(StorageError::ReadOnly {
                reason: reason.clone(),
            });
        }
        frame(payload, &mut inner.buffer);
        inner.appended.offset += (FRAME_LEN + payload.len()) as u64;
        Ok(Appended {
            lsn: inner.appended,
            epoch: inner.epoch,
        })
    }

    /// Waits until the record is durable, leading the flush if nobody is.
    pub(crate) fn sync(&self, record: Appended) -> Result<()> {
        let mut inner = lock(&self.inner);
        loop {
            if inner.epoch != record.epoch {
                return Err(StorageError::Io {
                    path: file_path(&self.dir, record.lsn.file),
                    source: std::io::Error::other(format!(
                        "commit record not written: {}",
                        inner.last_failure
                    )),
                });
            }
            if inner.synced >= record.lsn {
                return Ok(());
            }
            if let Some(reason) = &inner.poisoned {
                return Err(StorageError::ReadOnly {
                    reason: reason.clone(),
                });
            }
            if inner.flushing {
                inner = self.flushed.wait(inner).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            inner = self.lead_flush(inner)?;
        }
    }

    /// Writes and fsyncs the whole buffer without holding the lock, so that
    /// committers keep appending meanwhile.
    fn lead_flush<'a>(&'a self, mut inner: MutexGuard<'a, Inner>) -> Result<MutexGuard<'a, Inner>> {
        let Some(mut file) = inner.file.take() else {
            return Err(StorageError::internal(
                "WAL file missing while no flush is under way",
            ));
        };
        inner.flushing = true;
        let batch = std::mem::take(&mut inner.buffer);
        let target = inner.appended;
        drop(inner);

        let started = Instant::now();
        let result = file.write_all(&batch).and_then(|()| file.sync());
        self.fsyncs.observe(started.elapsed());

        let mut inner = lock(&self.inner);
        inner.flushing = false;
        let outcome = match result {
            Ok(()) => {
                inner.synced = target;
                Ok(())
            }
            Err(error) => Err(self.void_unsynced(&mut inner, file.as_mut(), error)),
        };
        inner.file = Some(file);
        // Reuse the batch's allocation for the next one.
        if inner.buffer.is_empty() && outcome.is_ok() {
            let mut batch = batch;
            batch.clear();
            inner.buffer = batch;
        }
        self.flushed.notify_all();
        outcome.map(|()| inner)
    }

    /// After a failed write or fsync: cut the file back to the durable end
    /// and void every record after it.
    fn void_unsynced(
        &self,
        inner: &mut Inner,
        file: &mut dyn WriteFile,
        error: std::io::Error,
    ) -> StorageError {
        let path = file_path(&self.dir, inner.number);
        let cut = file.set_len(inner.synced.offset).and_then(|()| file.sync());
        inner.buffer.clear();
        inner.appended = inner.synced;
        inner.epoch += 1;
        inner.last_failure = format!("{} failed: {error}", path.display());
        if let Err(cut_error) = cut {
            inner.poisoned = Some(format!(
                "{}; cutting it back to the durable end failed too: {cut_error}",
                inner.last_failure
            ));
        }
        StorageError::io(path, error)
    }

    /// Makes every appended record durable and starts the next file.
    /// Returns where the new file's records begin. The caller must hold
    /// off appends (the engine holds its commit lock).
    pub(crate) fn rotate(&self) -> Result<Lsn> {
        let mut inner = lock(&self.inner);
        while inner.flushing {
            inner = self.flushed.wait(inner).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(reason) = &inner.poisoned {
            return Err(StorageError::ReadOnly {
                reason: reason.clone(),
            });
        }
        if inner.synced < inner.appended {
            let record = Appended {
                lsn: inner.appended,
                epoch: inner.epoch,
            };
            drop(inner);
            self.sync(record)?;
            inner = lock(&self.inner);
        }
        let next = inner.number + 1;
        let file = start_file(self.fs.as_ref(), &self.dir, next)?;
        let start = Lsn {
            file: next,
            offset: HEADER_LEN,
        };
        inner.file = Some(file);
        inner.number = next;
        inner.appended = start;
        inner.synced = start;
        Ok(start)
    }

    /// Waits until everything appended up to `lsn` is durable.
    pub(crate) fn sync_to(&self, lsn: Lsn) -> Result<()> {
        let epoch = lock(&self.inner).epoch;
        self.sync(Appended { lsn, epoch })
    }

    /// Refuses every later write: for failures the WAL cannot undo, such as
    /// losing records whose commits were already acknowledged.
    pub(crate) fn poison(&self, reason: String) {
        lock(&self.inner).poisoned.get_or_insert(reason);
    }

    /// Where the next record will start.
    pub(crate) fn end(&self) -> Lsn {
        lock(&self.inner).appended
    }

    /// Deletes the WAL files numbered below `number` (whose records the
    /// manifest now covers), then syncs the directory.
    pub(crate) fn remove_files_before(&self, number: u64) -> Result<()> {
        let names = self
            .fs
            .list(&self.dir)
            .map_err(|e| StorageError::io(&self.dir, e))?;
        let mut removed = false;
        for old in names
            .iter()
            .filter_map(|name| super::file_number(name))
            .filter(|&n| n < number)
        {
            let path = file_path(&self.dir, old);
            self.fs
                .remove(&path)
                .map_err(|e| StorageError::io(&path, e))?;
            removed = true;
        }
        if removed {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io(&self.dir, e))?;
        }
        Ok(())
    }
}

/// Creates WAL file `number` with its header, durable with its name.
pub(super) fn start_file(
    fs: &dyn FileSystem,
    dir: &std::path::Path,
    number: u64,
) -> Result<Box<dyn WriteFile>> {
    let path = file_path(dir, number);
    let io = |e| StorageError::io(&path, e);
    let mut file = fs.create(&path).map_err(io)?;
    file.write_all(&header(number)).map_err(io)?;
    file.sync().map_err(io)?;
    fs.sync_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    Ok(file)
}
