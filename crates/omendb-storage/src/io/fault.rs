//! An in-memory [`FileSystem`] that fails the way disks fail, for tests.
//!
//! Every file is an inode with two contents: what the process sees, and
//! what the disk holds (updated by `sync`). Directory entries likewise have
//! a live and a durable view (updated by `sync_dir`). [`FaultFs::crash`]
//! returns the file system a power cut would leave: durable entries and
//! contents only, optionally with a torn prefix of the unsynced tail of
//! each file. On top, tests can cap the disk size (writes then fail with
//! `StorageFull`, after writing what fit), inject errors into chosen
//! operations on chosen paths, and flip bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::{FileSystem, ReadFile, WriteFile};

/// An operation that a [`Fault`] can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Write,
    Sync,
    Read,
    Rename,
    Remove,
    SyncDir,
}

/// An injected failure: the matching operations fail with `kind`.
#[derive(Clone, Debug)]
pub struct Fault {
    pub op: Op,
    /// Only paths containing this string match ("" matches all).
    pub path_contains: String,
    pub kind: io::ErrorKind,
    /// Let this many matching operations succeed first.
    pub skip: usize,
    /// Fail this many matching operations, then stop (`None`: forever).
    pub times: Option<usize>,
}

impl Fault {
    /// Fails every `op` on paths containing `path_contains` with `kind`.
    pub fn new(op: Op, path_contains: &str, kind: io::ErrorKind) -> Fault {
        Fault {
            op,
            path_contains: path_contains.into(),
            kind,
            skip: 0,
            times: None,
        }
    }
}

/// What a crash does to data written since the last sync.
#[derive(Clone, Copy, Debug)]
pub enum CrashMode {
    /// Unsynced bytes are lost.
    DropUnsynced,
    /// Each file keeps a random prefix of its unsynced appended bytes, the
    /// last few of them sometimes garbled (a torn sector). Seeded.
    TornTail { seed: u64 },
}

/// The fault-injecting in-memory file system. Clones share one disk.
#[derive(Clone, Debug, Default)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    live: BTreeMap<PathBuf, Arc<Mutex<Inode>>>,
    durable: BTreeMap<PathBuf, Arc<Mutex<Inode>>>,
    dirs: BTreeSet<PathBuf>,
    disk_limit: Option<u64>,
    faults: Vec<Fault>,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug)]
struct FaultWriteFile {
    fs: FaultFs,
    path: PathBuf,
    inode: Arc<Mutex<Inode>>,
}

#[derive(Debug)]
struct FaultReadFile {
    fs: FaultFs,
    path: PathBuf,
    inode: Arc<Mutex<Inode>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock leaves consistent data:
    // every mutation below completes before it can panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl FaultFs {
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    /// Caps the bytes all live files may hold; `None` removes the cap.
    pub fn set_disk_limit(&self, limit: Option<u64>) {
        lock(&self.state).disk_limit = limit;
    }

    /// Adds an injected failure.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state).faults.push(fault);
    }

    /// Removes every injected failure.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// XORs `mask` into the byte at `offset` of `path`, on disk and in view.
    pub fn corrupt(&self, path: &Path, offset: usize, mask: u8) -> io::Result<()> {
        let state = lock(&self.state);
        let inode = state.live.get(path).ok_or_else(|| not_found(path))?;
        let mut inode = lock(inode);
        let Inode { data, synced } = &mut *inode;
        for content in [data, synced] {
            if let Some(byte) = content.get_mut(offset) {
                *byte ^= mask;
            }
        }
        Ok(())
    }

    /// The file system a power cut would leave behind. Injected faults and
    /// the disk limit are not carried over.
    pub fn crash(&self, mode: CrashMode) -> FaultFs {
        let state = lock(&self.state);
        let mut seed = match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::TornTail { seed } => seed | 1,
        };
        let mut next = move || {
            // xorshift64: enough to pick torn lengths reproducibly.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut survived = BTreeMap::new();
        for (path, inode) in &state.durable {
            let inode = lock(inode);
            let mut data = inode.synced.clone();
            let unsynced = inode
                .data
                .strip_prefix(inode.synced.as_slice())
                .unwrap_or(&[]);
            if matches!(mode, CrashMode::TornTail { .. }) && !unsynced.is_empty() {
                let keep = (next() % (unsynced.len() as u64 + 1)) as usize;
                data.extend_from_slice(&unsynced[..keep]);
                if keep > 0 && next() % 2 == 0 {
                    let garbled = keep.min(8);
                    let end = data.len();
                    for byte in &mut data[end - garbled..] {
                        *byte = next() as u8;
                    }
                }
            }
            let copy = Inode {
                synced: data.clone(),
                data,
            };
            survived.insert(path.clone(), Arc::new(Mutex::new(copy)));
        }
        let state = State {
            live: survived.clone(),
            durable: survived,
            dirs: state.dirs.clone(),
            disk_limit: None,
            faults: Vec::new(),
        };
        FaultFs {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Fails `op` on `path` if an injected fault says so.
    fn check(&self, op: Op, path: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        let text = path.to_string_lossy();
        for fault in &mut state.faults {
            if fault.op != op || !text.contains(fault.path_contains.as_str()) {
                continue;
            }
            if fault.skip > 0 {
                fault.skip -= 1;
                continue;
            }
            match &mut fault.times {
                Some(0) => continue,
                Some(times) => *times -= 1,
                None => {}
            }
            return Err(io::Error::new(
                fault.kind,
                format!("injected {op:?} failure on {text}"),
            ));
        }
        Ok(())
    }

    fn live_bytes(state: &State) -> u64 {
        state
            .live
            .values()
            .map(|inode| lock(inode).data.len() as u64)
            .sum()
    }
}

impl FileSystem for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = lock(&self.state);
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        self.check(Op::Create, path)?;
        let mut state = lock(&self.state);
        if !path.parent().is_some_and(|dir| state.dirs.contains(dir)) {
            return Err(not_found(path));
        }
        // A new inode: a crash before `sync_dir` forgets the name, and
        // truncating a file that exists is modelled as replacing it.
        let inode = Arc::new(Mutex::new(Inode::default()));
        state.live.insert(path.to_path_buf(), inode.clone());
        Ok(Box::new(FaultWriteFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let state = lock(&self.state);
        let inode = state.live.get(path).ok_or_else(|| not_found(path))?.clone();
        Ok(Box::new(FaultWriteFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>> {
        self.check(Op::Read, path)?;
        let state = lock(&self.state);
        let inode = state.live.get(path).ok_or_else(|| not_found(path))?.clone();
        Ok(Arc::new(FaultReadFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename, from)?;
        let mut state = lock(&self.state);
        let inode = state.live.remove(from).ok_or_else(|| not_found(from))?;
        state.live.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path)?;
        let mut state = lock(&self.state);
        state
            .live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = lock(&self.state);
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let names = state
            .live
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir, dir)?;
        let mut state = lock(&self.state);
        let State { live, durable, .. } = &mut *state;
        durable.retain(|path, _| path.parent() != Some(dir));
        for (path, inode) in live.iter().filter(|(path, _)| path.parent() == Some(dir)) {
            durable.insert(path.clone(), inode.clone());
        }
        Ok(())
    }

    fn map_immutable(&self, path: &Path) -> io::Result<Bytes> {
        self.check(Op::Read, path)?;
        let state = lock(&self.state);
        let inode = state.live.get(path).ok_or_else(|| not_found(path))?;
        Ok(Bytes::copy_from_slice(&lock(inode).data))
    }
}

impl WriteFile for FaultWriteFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.fs.check(Op::Write, &self.path)?;
        let state = lock(&self.fs.state);
        let room = match state.disk_limit {
            Some(limit) => limit.saturating_sub(FaultFs::live_bytes(&state)),
            None => u64::MAX,
        };
        let mut inode = lock(&self.inode);
        let fits = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        inode.data.extend_from_slice(&buf[..fits]);
        if fits < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected: no space left on device",
            ));
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.fs.check(Op::Sync, &self.path)?;
        let mut inode = lock(&self.inode);
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        lock(&self.inode).data.resize(len, 0);
        Ok(())
    }

    fn len(&self) -> u64 {
        lock(&self.inode).data.len() as u64
    }
}

impl ReadFile for FaultReadFile {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.fs.check(Op::Read, &self.path)?;
        let inode = lock(&self.inode);
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let source = start
            .checked_add(buf.len())
            .and_then(|end| inode.data.get(start..end))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(source);
        Ok(())
    }

    fn len(&self) -> u64 {
        lock(&self.inode).data.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs_with_dir() -> (FaultFs, PathBuf) {
        let fs = FaultFs::new();
        let dir = PathBuf::from("/db");
        fs.create_dir_all(&dir).unwrap();
        (fs, dir)
    }

    #[test]
    fn a_crash_keeps_synced_bytes_and_synced_names_only() {
        let (fs, dir) = fs_with_dir();
        let mut file = fs.create(&dir.join("a")).unwrap();
        file.write_all(b"durable").unwrap();
        file.sync().unwrap();
        file.write_all(b" lost").unwrap();
        fs.sync_dir(&dir).unwrap();
        let mut unnamed = fs.create(&dir.join("b")).unwrap();
        unnamed.write_all(b"x").unwrap();
        unnamed.sync().unwrap();

        let after = fs.crash(CrashMode::DropUnsynced);
        assert_eq!(after.read_all(&dir.join("a")).unwrap(), b"durable");
        assert!(
            after.read_all(&dir.join("b")).is_err(),
            "its directory entry was never synced"
        );
    }

    #[test]
    fn renames_survive_only_after_sync_dir() {
        let (fs, dir) = fs_with_dir();
        let mut file = fs.create(&dir.join("tmp")).unwrap();
        file.write_all(b"v2").unwrap();
        file.sync().unwrap();
        fs.sync_dir(&dir).unwrap();
        fs.rename(&dir.join("tmp"), &dir.join("final")).unwrap();
        let before_sync = fs.crash(CrashMode::DropUnsynced);
        assert_eq!(before_sync.list(&dir).unwrap(), vec!["tmp".to_string()]);
        fs.sync_dir(&dir).unwrap();
        let after_sync = fs.crash(CrashMode::DropUnsynced);
        assert_eq!(after_sync.list(&dir).unwrap(), vec!["final".to_string()]);
    }

    #[test]
    fn torn_tails_keep_a_prefix_of_the_unsynced_bytes() {
        let (fs, dir) = fs_with_dir();
        let mut file = fs.create(&dir.join("log")).unwrap();
        file.write_all(b"synced|").unwrap();
        file.sync().unwrap();
        fs.sync_dir(&dir).unwrap();
        file.write_all(b"0123456789abcdef0123456789").unwrap();
        let mut lengths = BTreeSet::new();
        for seed in 0..64 {
            let after = fs.crash(CrashMode::TornTail { seed });
            let data = after.read_all(&dir.join("log")).unwrap();
            assert!(data.starts_with(b"synced|"));
            lengths.insert(data.len());
        }
        assert!(lengths.len() > 5, "torn lengths vary: {lengths:?}");
    }

    #[test]
    fn a_full_disk_writes_what_fits_then_fails() {
        let (fs, dir) = fs_with_dir();
        fs.set_disk_limit(Some(10));
        let mut file = fs.create(&dir.join("a")).unwrap();
        file.write_all(b"12345678").unwrap();
        let err = file.write_all(b"abcd").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs.read_all(&dir.join("a")).unwrap(), b"12345678ab");
        file.set_len(8).unwrap();
        fs.set_disk_limit(None);
        file.write_all(b"cd").unwrap();
        assert_eq!(fs.read_all(&dir.join("a")).unwrap(), b"12345678cd");
    }

    #[test]
    fn injected_faults_skip_then_fail_a_number_of_times() {
        let (fs, dir) = fs_with_dir();
        fs.inject(Fault {
            skip: 1,
            times: Some(1),
            ..Fault::new(Op::Sync, "wal", io::ErrorKind::Other)
        });
        let mut wal = fs.create(&dir.join("wal-1")).unwrap();
        let mut other = fs.create(&dir.join("data")).unwrap();
        other.sync().unwrap();
        wal.sync().unwrap();
        assert!(wal.sync().is_err());
        wal.sync().unwrap();
        fs.corrupt(&dir.join("data"), 0, 1).unwrap();
    }
}
