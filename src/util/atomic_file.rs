//! Writing a file so that a crash leaves either the old version or the new one, never half.

#![forbid(unsafe_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::tables::FileError;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk, then renames it over
/// `path` (atomic on POSIX file systems).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |temporary| {
        let mut file = fs::File::create(temporary)?;
        file.write_all(bytes)?;
        file.sync_all()
    })
}

/// Writes `value` as pretty JSON with [`write`]; an error names the file.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), FileError> {
    let json = serde_json::to_vec_pretty(value).expect("our records serialise");
    write(path, &json).map_err(|e| FileError::new(path, e))
}

/// Lets `produce` write a temporary file beside `path` (with the same extension, for writers
/// that choose a format by it), then renames it over `path`. A failed `produce` leaves no
/// temporary behind.
pub fn write_with(
    path: &Path,
    produce: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let temporary = temporary_beside(path);
    let result = produce(&temporary).and_then(|()| fs::rename(&temporary, path));
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Lets `produce` fill a temporary folder beside `path`, then renames it to `path`: a killed
/// writer leaves only a hidden temporary, never a half-filled `path`. Temporaries of `path`
/// left by processes that no longer run are removed first; a failed `produce` leaves none.
/// If another writer got there first, its folder is kept and this one dropped.
#[cfg(feature = "download")]
pub fn write_dir_with(
    path: &Path,
    produce: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    remove_abandoned_temporaries_of(path)?;
    let temporary = temporary_beside(path);
    let result = fs::create_dir(&temporary)
        .and_then(|()| produce(&temporary))
        .and_then(|()| fs::File::open(&temporary)?.sync_all())
        .and_then(|()| match fs::rename(&temporary, path) {
            Err(_) if path.is_dir() => fs::remove_dir_all(&temporary),
            renamed => renamed,
        });
    if result.is_err() {
        let _ = fs::remove_dir_all(&temporary);
    }
    result
}

/// Removes the temporaries of `path` whose writing process is gone.
#[cfg(feature = "download")]
fn remove_abandoned_temporaries_of(path: &Path) -> std::io::Result<()> {
    let Some(parent) = path.parent().filter(|p| p.is_dir()) else {
        return Ok(());
    };
    let prefix = format!(
        ".{}.",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    for entry in fs::read_dir(parent)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        let running = Path::new("/proc").join(pid).exists();
        if is_temporary(&name) && !running {
            let entry = entry.path();
            if entry.is_dir() {
                fs::remove_dir_all(entry)?;
            } else {
                fs::remove_file(entry)?;
            }
        }
    }
    Ok(())
}

/// Removes the temporaries that killed writers left in `dir` and its subfolders (a run's
/// stage folders). Only for a folder the caller holds the lock of (see `RunLock`): no other
/// writer can be using them.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if is_temporary(&name) && kind.is_file() {
            fs::remove_file(entry.path())?;
        } else if kind.is_dir() && !name.starts_with('.') && !entry.path().join(".lock").exists() {
            // A folder with its own lock is another run's (a grid point's, under `runs/`).
            remove_stale_temporaries(&entry.path())?;
        }
    }
    Ok(())
}

fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name.split('.').any(|part| {
            part.split_once('-').is_some_and(|(pid, n)| {
                !pid.is_empty()
                    && pid.bytes().all(|b| b.is_ascii_digit())
                    && n.parse::<u64>().is_ok()
            })
        })
        && name.contains(".tmp")
}

/// `.<name>.<pid>-<n>.tmp.<ext>`: unique per process and per call, so concurrent writers
/// never share one, and hidden so a half-written one is not mistaken for an output.
fn temporary_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}-{n}.tmp", std::process::id()));
    if let Some(extension) = path.extension() {
        name.push(".");
        name.push(extension);
    }
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_unique_and_keep_the_extension() {
        let a = temporary_beside(Path::new("out/curves.png"));
        let b = temporary_beside(Path::new("out/curves.png"));
        assert_ne!(a, b);
        assert_eq!(a.extension().unwrap(), "png");
        assert!(a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".curves.png."));
    }

    #[test]
    fn only_temporaries_are_recognised_as_such() {
        let t = temporary_beside(Path::new("out/model.safetensors"));
        assert!(is_temporary(&t.file_name().unwrap().to_string_lossy()));
        for name in [
            ".lock",
            "model.safetensors",
            ".hidden",
            "a.tmp",
            ".notes.tmp.txt",
        ] {
            assert!(!is_temporary(name), "{name}");
        }
    }

    #[test]
    fn a_failed_writer_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        write(&path, b"old").unwrap();
        let err = write_with(&path, |t| {
            fs::write(t, b"half")?;
            Err(std::io::Error::other("killed"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
