//! One process at a time per run folder: an advisory lock on `<run>/.lock`, held until the
//! process exits (the kernel releases it even after SIGKILL, so a crash never leaves a stale
//! lock behind). The file names its holder on one line, written in one piece over the
//! previous holder's, so that a refused process can say who holds the folder.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Error;

/// Held while a command writes into a run folder. Taking it also clears the temporaries that
/// killed writers left there.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    dir: PathBuf,
    /// The folders this lock created (the run folder and the missing ones above it, innermost
    /// first): a command that fails before writing anything there removes them again.
    created: Vec<PathBuf>,
}

/// The lock file in `dir`.
fn lock_path(dir: &Path) -> PathBuf {
    dir.join(".lock")
}

impl RunLock {
    /// Creates `dir` if needed and locks it, or refuses naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self, Error> {
        let created: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Input(format!(
                "--results: cannot create the run folder {}: {e}",
                dir.display()
            ))
        })?;
        let path = lock_path(dir);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = open_lock(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(busy(dir, &file)),
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let command: Vec<String> = std::env::args().collect();
        let holder = format!("pid {}: {}\n", std::process::id(), command.join(" "));
        // One write over the old text, then the cut: a reader sees the new line first at
        // every moment, never an emptied file.
        file.write_all_at(holder.as_bytes(), 0).map_err(io)?;
        file.set_len(holder.len() as u64).map_err(io)?;
        crate::util::atomic_file::remove_stale_temporaries(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            _file: file,
            dir: dir.to_path_buf(),
            created,
        })
    }

    /// Locks the existing run folder `dir` shared with other tasks that write only files of
    /// their own (the oracle's shards): a whole run of the folder is refused meanwhile, and
    /// they are refused while one holds it.
    pub fn acquire_shared(dir: &Path) -> Result<Self, Error> {
        let path = lock_path(dir);
        let file = open_lock(&path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Self {
                _file: file,
                dir: dir.to_path_buf(),
                created: Vec::new(),
            }),
            Err(TryLockError::WouldBlock) => Err(busy(dir, &file)),
            Err(TryLockError::Error(source)) => Err(Error::Io { path, source }),
        }
    }

    /// Refuses, as [`acquire`](Self::acquire) would, when another process holds `dir`;
    /// creates nothing (what `--dry-run` checks).
    pub fn check_free(dir: &Path) -> Result<(), Error> {
        not_a_file(&lock_path(dir))?;
        let Ok(file) = File::open(lock_path(dir)) else {
            return Ok(());
        };
        match file.try_lock_shared() {
            Err(TryLockError::WouldBlock) => Err(busy(dir, &file)),
            _ => Ok(()),
        }
    }
}

/// Opens (or creates) the lock file at `path`; refused when something else stands there.
fn open_lock(path: &Path) -> Result<File, Error> {
    not_a_file(path)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Refuses a lock path that something other than a file occupies.
fn not_a_file(path: &Path) -> Result<(), Error> {
    match path.exists() && !path.is_file() {
        true => Err(Error::Input(format!(
            "{} is not a file: prunelab keeps the run folder's lock there; remove it",
            path.display()
        ))),
        false => Ok(()),
    }
}

/// The run folder `path` lies in (itself or the nearest folder above it that a run has
/// locked), if any.
pub fn run_folder_holding(path: &Path) -> Option<PathBuf> {
    let path = std::path::absolute(path).ok()?;
    path.ancestors()
        .find(|dir| lock_path(dir).is_file())
        .map(Path::to_path_buf)
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let only_the_lock = std::fs::read_dir(&self.dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .all(|e| e.file_name() == ".lock")
        });
        if only_the_lock {
            let _ = std::fs::remove_file(lock_path(&self.dir));
            // `remove_dir` leaves a folder that is not empty.
            for dir in &self.created {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
    }
}

/// The refusal for a folder `lock_file` is locked by another process, naming it. Its line is
/// read again for a moment if it is not complete yet (the holder took the lock just now).
fn busy(dir: &Path, lock_file: &File) -> Error {
    let started = Instant::now();
    let holder = loop {
        let mut bytes = vec![0u8; 4096];
        let read = lock_file.read_at(&mut bytes, 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&bytes[..read]).into_owned();
        match text.split_once('\n') {
            Some((line, _)) => break format!("another process ({line})"),
            None if started.elapsed() > Duration::from_secs(2) => {
                break "another process".to_string()
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    Error::Busy(format!(
        "{} is in use by {holder}; wait for it to finish, or give this run another `name` or --results folder",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let refused = RunLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(refused, Error::Busy(_)), "{refused}");
        assert!(refused
            .to_string()
            .contains("in use by another process (pid "));
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn the_check_refuses_a_held_folder_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("results/run");
        RunLock::check_free(&run).unwrap();
        assert!(!dir.path().join("results").exists());
        let held = RunLock::acquire(&run).unwrap();
        let refused = RunLock::check_free(&run).unwrap_err();
        assert!(matches!(refused, Error::Busy(_)), "{refused}");
        let pid = format!("(pid {}: ", std::process::id());
        assert!(refused.to_string().contains(&pid), "{refused}");
        drop(held);
        RunLock::check_free(&run).unwrap();
    }

    #[test]
    fn folders_it_created_go_again_when_nothing_was_written_there() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("results/run");
        drop(RunLock::acquire(&run).unwrap());
        assert!(!dir.path().join("results").exists());

        let lock = RunLock::acquire(&run).unwrap();
        std::fs::write(run.join("out.txt"), "x").unwrap();
        drop(lock);
        assert!(run.join("out.txt").is_file() && run.join(".lock").is_file());

        let existing = dir.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        drop(RunLock::acquire(&existing).unwrap());
        assert!(existing.is_dir(), "a folder it did not create stays");
    }
}
