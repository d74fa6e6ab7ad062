//! Reading the WAL back at open.
//!
//! Records are read in order from a starting position (the manifest says
//! which records the segments already cover). Only the last file can end
//! in a torn record, since a file is synced before the next one is
//! created: there, the first record that is short or fails its checksum
//! ends the log, and the file is cut back to the last good record (those
//! bytes were never acknowledged: a commit is acknowledged only after its
//! record was synced). The same damage in an earlier file is corruption.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::writer::start_file;
use super::{FRAME_LEN, HEADER_LEN, Lsn, MAGIC, MAX_RECORD, VERSION, file_number, file_path};
use crate::error::{Result, StorageError};
use crate::io::FileSystem;

/// Where the replayed log ends: appending resumes there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Replayed {
    pub end: Lsn,
    /// Records handed to the caller.
    pub records: u64,
    /// Bytes cut from a torn tail.
    pub torn_bytes: u64,
}

/// How far the WAL replay of an opening database has come, for a caller
/// that reports it (from another thread) while a long recovery runs.
#[derive(Debug, Default)]
pub struct RecoveryProgress {
    files_total: AtomicU64,
    files_done: AtomicU64,
    records: AtomicU64,
}

impl RecoveryProgress {
    /// WAL files replayed, WAL files to replay, records replayed so far.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.files_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
        )
    }
}

/// Hands every record from `from` on to `apply`, in order, with the
/// position just after it, counting them in `progress`. Repairs a torn
/// tail. With no WAL file at all, starts file `from.file`.
pub(crate) fn replay(
    fs: &dyn FileSystem,
    dir: &Path,
    from: Lsn,
    progress: &RecoveryProgress,
    mut apply: impl FnMut(Lsn, &[u8]) -> Result<()>,
) -> Result<Replayed> {
    let names = fs.list(dir).map_err(|e| StorageError::io(dir, e))?;
    let mut numbers: Vec<u64> = names
        .iter()
        .filter_map(|n| file_number(n))
        .filter(|&n| n >= from.file)
        .collect();
    numbers.sort_unstable();
    if numbers.is_empty() {
        start_file(fs, dir, from.file)?;
        return Ok(Replayed {
            end: Lsn {
                file: from.file,
                offset: HEADER_LEN,
            },
            records: 0,
            torn_bytes: 0,
        });
    }
    for (expected, &number) in (from.file..).zip(&numbers) {
        if number != expected {
            let path = file_path(dir, expected);
            return Err(StorageError::corruption(
                "WAL",
                path,
                0,
                "file missing from the sequence",
            ));
        }
    }

    let mut replayed = Replayed {
        end: from,
        records: 0,
        torn_bytes: 0,
    };
    progress
        .files_total
        .store(numbers.len() as u64, Ordering::Relaxed);
    for (i, &number) in numbers.iter().enumerate() {
        progress.files_done.store(i as u64, Ordering::Relaxed);
        let last = i + 1 == numbers.len();
        let path = file_path(dir, number);
        let data = fs.read_all(&path).map_err(|e| StorageError::io(&path, e))?;
        if let Err(detail) = check_header(&data, number) {
            if last {
                // A file whose header never became durable holds no records.
                start_file(fs, dir, number)?;
                replayed.end = Lsn {
                    file: number,
                    offset: HEADER_LEN,
                };
                replayed.torn_bytes += data.len() as u64;
                break;
            }
            return Err(StorageError::corruption("WAL header", path, 0, detail));
        }
        let start = if number == from.file {
            from.offset.max(HEADER_LEN)
        } else {
            HEADER_LEN
        };
        if start > data.len() as u64 {
            let detail = format!("starts at {start} but the file has {} bytes", data.len());
            return Err(StorageError::corruption("WAL", path, start, detail));
        }
        let mut offset = start as usize;
        while offset < data.len() {
            let Some(payload) = record_at(&data, offset) else {
                if !last {
                    return Err(StorageError::corruption(
                        "WAL record",
                        path,
                        offset as u64,
                        "bad length or checksum before the end of a finished file",
                    ));
                }
                cut(fs, &path, offset as u64)?;
                replayed.torn_bytes += (data.len() - offset) as u64;
                break;
            };
            let end = offset + FRAME_LEN + payload.len();
            apply(
                Lsn {
                    file: number,
                    offset: end as u64,
                },
                payload,
            )?;
            replayed.records += 1;
            progress.records.fetch_add(1, Ordering::Relaxed);
            offset = end;
        }
        replayed.end = Lsn {
            file: number,
            offset: (offset as u64).min(data.len() as u64),
        };
    }
    progress
        .files_done
        .store(numbers.len() as u64, Ordering::Relaxed);
    Ok(replayed)
}

fn check_header(data: &[u8], number: u64) -> Result<(), String> {
    let header = data
        .get(..HEADER_LEN as usize)
        .ok_or("file shorter than its header")?;
    let (body, crc) = header.split_at(16);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err("header checksum mismatch".into());
    }
    if body[..4] != MAGIC {
        return Err("not a WAL file".into());
    }
    let version = u16::from_le_bytes([body[4], body[5]]);
    if version != VERSION {
        return Err(format!("unsupported WAL version {version}"));
    }
    let stored = u64::from_le_bytes(body[8..16].try_into().map_err(|_| "header number")?);
    if stored != number {
        return Err(format!("header says file {stored}"));
    }
    Ok(())
}

/// The payload of the record at `offset`, if it is whole and intact.
fn record_at(data: &[u8], offset: usize) -> Option<&[u8]> {
    let frame = data.get(offset..offset + FRAME_LEN)?;
    let crc = u32::from_le_bytes(frame[..4].try_into().ok()?);
    let len_bytes: [u8; 4] = frame[4..].try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_RECORD {
        return None;
    }
    let start = offset + FRAME_LEN;
    let payload = data.get(start..start.checked_add(len)?)?;
    (crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload) == crc).then_some(payload)
}

/// Cuts `path` to `len` bytes, durably.
fn cut(fs: &dyn FileSystem, path: &Path, len: u64) -> Result<()> {
    let io = |e| StorageError::io(path, e);
    let mut file = fs.open_append(path).map_err(io)?;
    file.set_len(len).map_err(io)?;
    file.sync().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::fault::{CrashMode, Fault, FaultFs, Op};
    use crate::test_rng::TestRng;
    use crate::wal::Wal;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn setup() -> (FaultFs, PathBuf) {
        let fs = FaultFs::new();
        let dir = PathBuf::from("/db/wal");
        fs.create_dir_all(&dir).unwrap();
        (fs, dir)
    }

    fn read_back(fs: &FaultFs, dir: &Path, from: Lsn) -> (Vec<Vec<u8>>, Replayed) {
        let mut records = Vec::new();
        let progress = RecoveryProgress::default();
        let replayed = replay(fs, dir, from, &progress, |_, payload| {
            records.push(payload.to_vec());
            Ok(())
        })
        .unwrap();
        // The progress ends complete: every file done, every record counted.
        let (done, total, counted) = progress.get();
        assert_eq!(done, total);
        assert!(total >= 1);
        assert_eq!(counted, records.len() as u64);
        (records, replayed)
    }

    fn payload(i: u64) -> Vec<u8> {
        format!("record {i} {}", "x".repeat(i as usize % 50)).into_bytes()
    }

    #[test]
    fn synced_records_come_back_in_order_across_files() {
        let (fs, dir) = setup();
        let wal = Wal::create(Arc::new(fs.clone()), dir.clone(), 1).unwrap();
        let mut mid = Lsn::default();
        for i in 0..30 {
            let appended = wal.append(&payload(i)).unwrap();
            wal.sync(appended).unwrap();
            if i == 9 {
                mid = appended.lsn;
            }
            if i % 10 == 9 {
                wal.rotate().unwrap();
            }
        }
        let (records, replayed) = read_back(&fs, &dir, Lsn { file: 1, offset: 0 });
        assert_eq!(records, (0..30).map(payload).collect::<Vec<_>>());
        assert_eq!(replayed.end, wal.end());
        let (from_mid, _) = read_back(&fs, &dir, mid);
        assert_eq!(from_mid, (10..30).map(payload).collect::<Vec<_>>());
    }

    #[test]
    fn a_crash_loses_only_unsynced_records_and_torn_tails_are_cut() {
        let mut rng = TestRng::new("a_crash_loses_only_unsynced_records_and_torn_tails_are_cut");
        for round in 0..200 {
            let (fs, dir) = setup();
            let wal = Wal::create(Arc::new(fs.clone()), dir.clone(), 1).unwrap();
            let mut acknowledged = 0;
            let total = rng.below(40);
            for i in 0..total {
                let appended = wal.append(&payload(i)).unwrap();
                if rng.below(3) > 0 {
                    wal.sync(appended).unwrap();
                    acknowledged = i + 1;
                }
            }
            let crashed = fs.crash(CrashMode::TornTail { seed: rng.u64() });
            let (records, replayed) = read_back(&crashed, &dir, Lsn { file: 1, offset: 0 });
            assert!(
                records.len() as u64 >= acknowledged,
                "round {round}: lost acknowledged records"
            );
            for (i, record) in records.iter().enumerate() {
                assert_eq!(
                    record,
                    &payload(i as u64),
                    "round {round}: record {i} altered"
                );
            }
            // The repaired log appends cleanly and replays again.
            let resumed = Wal::resume(
                Arc::new(crashed.clone()),
                dir.clone(),
                1,
                replayed.end.offset,
            )
            .unwrap();
            let appended = resumed.append(b"after").unwrap();
            resumed.sync(appended).unwrap();
            let (again, _) = read_back(&crashed, &dir, Lsn { file: 1, offset: 0 });
            assert_eq!(again.len(), records.len() + 1);
            assert_eq!(again.last().unwrap(), b"after");
        }
    }

    #[test]
    fn damage_inside_a_finished_file_is_corruption_naming_it() {
        let (fs, dir) = setup();
        let wal = Wal::create(Arc::new(fs.clone()), dir.clone(), 1).unwrap();
        for i in 0..5 {
            let appended = wal.append(&payload(i)).unwrap();
            wal.sync(appended).unwrap();
        }
        wal.rotate().unwrap();
        fs.corrupt(&file_path(&dir, 1), HEADER_LEN as usize + 30, 0x40)
            .unwrap();
        let progress = RecoveryProgress::default();
        let from = Lsn { file: 1, offset: 0 };
        let err = replay(&fs, &dir, from, &progress, |_, _| Ok(())).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Corruption);
        assert!(
            err.to_string().contains("00000000000000000001.wal"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_fsync_voids_unsynced_records_and_the_wal_recovers() {
        let (fs, dir) = setup();
        let wal = Wal::create(Arc::new(fs.clone()), dir.clone(), 1).unwrap();
        let first = wal.append(b"one").unwrap();
        wal.sync(first).unwrap();
        fs.inject(Fault {
            times: Some(1),
            ..Fault::new(Op::Sync, ".wal", std::io::ErrorKind::Other)
        });
        let doomed = wal.append(b"two").unwrap();
        assert!(wal.sync(doomed).is_err());
        let after = wal.append(b"three").unwrap();
        wal.sync(after).unwrap();
        let (records, _) = read_back(&fs, &dir, Lsn { file: 1, offset: 0 });
        assert_eq!(records, vec![b"one".to_vec(), b"three".to_vec()]);
        let (after_crash, _) = read_back(
            &fs.crash(CrashMode::DropUnsynced),
            &dir,
            Lsn { file: 1, offset: 0 },
        );
        assert_eq!(after_crash, records, "the voided record never comes back");
    }

    #[test]
    fn a_full_disk_fails_the_commit_and_writes_resume_when_space_returns() {
        let (fs, dir) = setup();
        let wal = Wal::create(Arc::new(fs.clone()), dir.clone(), 1).unwrap();
        let first = wal.append(b"fits").unwrap();
        wal.sync(first).unwrap();
        fs.set_disk_limit(Some(HEADER_LEN + 20));
        let big = wal.append(&[7; 100]).unwrap();
        let err = wal.sync(big).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::DiskFull, "{err}");
        fs.set_disk_limit(None);
        let next = wal.append(b"later").unwrap();
        wal.sync(next).unwrap();
        let (records, _) = read_back(&fs, &dir, Lsn { file: 1, offset: 0 });
        assert_eq!(records, vec![b"fits".to_vec(), b"later".to_vec()]);
    }

    #[test]
    fn concurrent_committers_share_fsyncs_and_all_become_durable() {
        let (fs, dir) = setup();
        let wal = Arc::new(Wal::create(Arc::new(fs.clone()), dir.clone(), 1).unwrap());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (wal, order) = (wal.clone(), order.clone());
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let id = t * 1000 + i;
                        // Append under a lock, as the engine's commit lock does.
                        let appended = {
                            let mut order = order.lock().unwrap();
                            order.push(id);
                            wal.append(&id.to_le_bytes()).unwrap()
                        };
                        wal.sync(appended).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let (records, _) = read_back(
            &fs.crash(CrashMode::DropUnsynced),
            &dir,
            Lsn { file: 1, offset: 0 },
        );
        let ids: Vec<u64> = records
            .iter()
            .map(|r| u64::from_le_bytes(r[..8].try_into().unwrap()))
            .collect();
        assert_eq!(ids, *order.lock().unwrap());
    }
}
