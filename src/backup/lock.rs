//! One gateway per data directory: the lock a running gateway holds, and a restore takes.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

const LOCK_FILE: &str = "gateway.lock";

/// An exclusive lock on a data directory, held by a running gateway (and by a restore).
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock, or says which process seems to hold it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // Released when the file is closed (the process ends, or the lock is dropped).
        if let Err(e) = file.try_lock() {
            if let std::fs::TryLockError::Error(e) = e {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "a wa-gateway is using {} (it holds {}{}); stop it first",
                data_dir.display(),
                path.display(),
                match holder.trim() {
                    "" => String::new(),
                    pid => format!(", pid {pid}"),
                }
            );
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(DataDirLock { _file: file })
    }
}
