//! One process at a time per run folder: an advisory lock on `<run>/.lock`, held until the
//! process exits (the kernel releases it even after SIGKILL, so a crash never leaves a stale
//! lock behind).

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::Error;

/// Held while a command writes into a run folder. Taking it also clears the temporaries that
/// killed writers left there.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Creates `dir` if needed and locks it, or refuses naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Input(format!(
                "--results: cannot create the run folder {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(".lock");
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("another process ({holder})")
                };
                return Err(Error::Busy(format!(
                    "{} is in use by {holder}; wait for it to finish, or give this run another `name` or --results folder",
                    dir.display()
                )));
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        let command: Vec<String> = std::env::args().collect();
        write!(file, "pid {}: {}", std::process::id(), command.join(" ")).map_err(io)?;
        crate::util::atomic_file::remove_stale_temporaries(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self { _file: file })
    }
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
}
