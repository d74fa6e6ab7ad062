//! The directory a benchmark's databases live in, removed however the run
//! ends.

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `<parent or the system's temporary directory>/<name>-<pid>`; not
    /// created here (the stores create what they need).
    pub fn new(parent: Option<&Path>, name: &str) -> ScratchDir {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        ScratchDir(parent.join(format!("{name}-{}", std::process::id())))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
