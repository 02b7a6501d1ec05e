//! One writer per folder: an exclusive OS lock on `FOLDER/.lock`, held while a process writes the folder.
//!
//! The lock is `flock(2)` through `fs4`: the kernel releases it when its holder exits, however it exits, so
//! the lock file a killed process leaves behind never blocks anyone; the next writer simply takes the lock
//! over. The file holds the holder's process ID and command, so a refused writer can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};

/// The lock file's name inside the folder it guards.
pub const LOCK_FILE: &str = ".lock";

/// A held lock; dropping it releases the lock (the file stays, for the next holder to reuse).
#[derive(Debug)]
pub struct FolderLock {
    file: File,
    path: PathBuf,
}

impl FolderLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Another process holds the folder, or its lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("`{}` is being written by another prnn process: {}", folder.display(), holder.as_deref().unwrap_or("its process ID is not recorded"))]
    Held { folder: PathBuf, holder: Option<String>, pid: Option<u32> },
    #[error("cannot lock `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl LockError {
    /// What to do about it.
    pub fn help(&self) -> String {
        match self {
            LockError::Held { pid: Some(pid), .. } => {
                format!("wait for process {pid} to finish, or stop it (`kill {pid}`) and run again: a stopped run resumes where it was")
            }
            LockError::Held { .. } => "wait for the other process to finish, or stop it and run again".to_string(),
            LockError::Io { .. } => "check the folder's permissions and that its file system supports locks".to_string(),
        }
    }
}

/// Takes the lock of `folder` (which must exist) for this process, or says who holds it.
pub fn lock_folder(folder: &Path) -> Result<FolderLock, LockError> {
    let path = folder.join(LOCK_FILE);
    let io = |source| LockError::Io { path: path.clone(), source };
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    match FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut recorded = String::new();
            let _ = file.read_to_string(&mut recorded);
            let recorded = recorded.trim();
            let pid = recorded.split_whitespace().nth(1).and_then(|pid| pid.parse().ok());
            let holder = (!recorded.is_empty()).then(|| recorded.to_string());
            return Err(LockError::Held { folder: folder.to_path_buf(), holder, pid });
        }
        Err(TryLockError::Error(source)) => return Err(io(source)),
    }
    // Ours now: whatever a killed holder left in the file is replaced by this process's record.
    let command: Vec<String> = std::iter::once("prnn".to_string()).chain(super::command_line().into_iter().skip(1)).collect();
    let record = format!("process {} since {} running `{}`\n", std::process::id(), now(), command.join(" "));
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(record.as_bytes()))
        .and_then(|()| file.flush())
        .map_err(io)?;
    Ok(FolderLock { file, path })
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the release explicit.
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_process_id_and_the_lock_is_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_folder(dir.path()).unwrap();
        assert_eq!(held.path(), dir.path().join(LOCK_FILE));
        // flock locks belong to open files, so a second open in this process is refused like another process.
        match lock_folder(dir.path()) {
            Err(LockError::Held { pid, holder, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert!(holder.unwrap().starts_with(&format!("process {} since ", std::process::id())));
            }
            other => panic!("a second writer got {other:?}"),
        }
        drop(held);
        lock_folder(dir.path()).expect("the lock is free once its holder lets go");
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "process 999999 since 2026-01-01 00:00:00 UTC running `prnn train`\n").unwrap();
        let lock = lock_folder(dir.path()).expect("an unlocked leftover is taken over");
        let record = std::fs::read_to_string(lock.path()).unwrap();
        assert!(record.starts_with(&format!("process {} ", std::process::id())), "{record}");
    }
}
