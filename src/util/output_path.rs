//! Where a command will write, checked before it does any work: a path the user names for an
//! output must be able to become one.

#![forbid(unsafe_code)]

use std::path::Path;

use crate::Error;

/// The first of `path` and the folders above it that exists but is not a folder (a file, a
/// device such as /dev/null), if any.
fn in_the_way(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists() && !p.is_dir())
}

/// `path` (given by `flag`) can be or become a folder: neither it nor a folder above it is a
/// file, and the nearest folder that exists lets a folder be made in it.
pub fn check_output_folder(flag: &str, path: &Path) -> Result<(), Error> {
    match in_the_way(path) {
        Some(file) if file == path => Err(Error::Input(format!(
            "{flag}: {} is a file, not a folder",
            path.display()
        ))),
        Some(file) => Err(Error::Input(format!(
            "{flag}: {} is a file, not a folder, so {} cannot be made",
            file.display(),
            path.display()
        ))),
        None => check_writable(flag, path),
    }
}

/// `path` (given by `flag`) can be written as a file: it is a regular file or does not exist,
/// and the folder it goes into exists.
pub fn check_output_file(flag: &str, path: &Path) -> Result<(), Error> {
    if path.is_dir() {
        return Err(Error::Input(format!(
            "{flag}: {} is a folder; expected the path of a file to write",
            path.display()
        )));
    }
    if path.exists() && !path.is_file() {
        return Err(Error::Input(format!(
            "{flag}: {} is not a regular file (a device?); expected the path of a file to write",
            path.display()
        )));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    match parent {
        Some(parent) if in_the_way(parent).is_some() || !parent.is_dir() => {
            Err(Error::Input(format!(
                "{flag}: the folder {} does not exist, so {} cannot be written",
                parent.display(),
                path.display()
            )))
        }
        Some(parent) => check_writable(flag, parent),
        None => Ok(()),
    }
}

/// A folder can be made in the nearest existing folder of `path`: tried, with one that is
/// removed at once, so that the answer is the file system's own.
fn check_writable(flag: &str, path: &Path) -> Result<(), Error> {
    let Some(existing) = path
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.is_dir())
    else {
        return Ok(());
    };
    let base = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let probe = base.join(format!(".prunelab-probe-{}", std::process::id()));
    match std::fs::create_dir(&probe) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&probe);
            Ok(())
        }
        Err(e) => Err(Error::Input(format!(
            "{flag}: {} cannot be written: {} takes no new folder ({e})",
            path.display(),
            base.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_files_and_devices_in_the_way_are_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        check_output_folder("--out", &dir.path().join("a/b")).unwrap();
        check_output_file("--json", &dir.path().join("x.json")).unwrap();
        check_output_file("--json", &file).unwrap();
        let refused = |r: Result<(), Error>| r.unwrap_err().to_string();
        assert!(refused(check_output_folder("--out", &file)).contains("is a file"));
        assert!(refused(check_output_folder("--out", &file.join("a"))).contains("cannot be made"));
        assert!(
            refused(check_output_folder("--out", Path::new("/dev/null/x"))).contains("/dev/null")
        );
        assert!(refused(check_output_file("--json", dir.path())).contains("is a folder"));
        assert!(refused(check_output_file("--json", Path::new("/dev/null")))
            .contains("not a regular file"));
        assert!(
            refused(check_output_file("--json", &file.join("x.json"))).contains("does not exist")
        );
        assert!(
            refused(check_output_folder("--out", Path::new("/proc/prunelab")))
                .contains("/proc takes no new folder")
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the probe is gone"
        );
    }
}
