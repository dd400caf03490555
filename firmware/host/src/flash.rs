//! The board's flash: a state directory. Every write is power-loss safe: temp file, fsync, rename, fsync dir, so a
//! kill -9 at any moment leaves the old or the new file, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub const CONFIG: &str = "config.json";
pub const FALLBACKS: &str = "fallbacks.json";

/// The state directory of one board.
#[derive(Debug, Clone)]
pub struct Flash {
    dir: PathBuf,
}

impl Flash {
    /// Opens (creating if needed) the state directory.
    pub fn open(dir: &Path) -> Result<Flash> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create state dir {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve state dir {}", dir.display()))?;
        // Temp files of an interrupted write are garbage: the rename never happened.
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(Flash { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The file's content, if it exists and is readable text.
    pub fn read(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.path(name)).ok()
    }

    /// Replaces a file atomically.
    pub fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        let target = self.path(name);
        let tmp = self.path(&format!("{name}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &target)
            .with_context(|| format!("cannot replace {}", target.display()))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_and_cleans_temp_files() {
        let dir = std::env::temp_dir().join(format!("vb-flash-{}", std::process::id()));
        let flash = Flash::open(&dir).unwrap();
        flash.write("a.json", b"1").unwrap();
        flash.write("a.json", b"22").unwrap();
        assert_eq!(flash.read("a.json").as_deref(), Some("22"));
        std::fs::write(dir.join("a.json.tmp"), b"torn").unwrap();
        let flash = Flash::open(&dir).unwrap();
        assert!(!dir.join("a.json.tmp").exists());
        assert_eq!(flash.read("a.json").as_deref(), Some("22"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
