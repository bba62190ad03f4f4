//! One serving process per SQLite file.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Held by a serving process for as long as it serves a SQLite file. The store keeps state
/// that is only right with one process per file (the fan-out cache, the claim bookkeeping), so a
/// second `hookline serve` on the same file is refused instead of quietly double-sending.
pub struct ServeLock {
    _file: std::fs::File,
}

impl ServeLock {
    pub fn acquire(db_path: &Path) -> anyhow::Result<ServeLock> {
        let dir = db_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        // One lock per database file, however the path to it is spelled (relative, symlinks).
        let db_path = std::fs::canonicalize(db_path).unwrap_or_else(|_| {
            std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.to_owned())
                .join(db_path.file_name().unwrap_or_default())
        });
        let mut lock_path = db_path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(ServeLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another hookline process is serving {} (SQLite takes one process per database \
                 file; run several nodes on PostgreSQL)",
                db_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
    }
}
