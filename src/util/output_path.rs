//! Where a command will write, checked before it does any work: a path the user names for an
//! output must be able to become one.

#![forbid(unsafe_code)]

use std::path::Path;

use crate::Error;

/// The first of `path` and the folders above it that is a file, if any.
fn file_in_the_way(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.is_file())
}

/// `path` (given by `flag`) can be or become a folder: neither it nor a folder above it is a
/// file.
pub fn check_output_folder(flag: &str, path: &Path) -> Result<(), Error> {
    match file_in_the_way(path) {
        Some(file) if file == path => Err(Error::Input(format!(
            "{flag}: {} is a file; expected a folder (or a path where one can be made)",
            path.display()
        ))),
        Some(file) => Err(Error::Input(format!(
            "{flag}: cannot make the folder {}: {} is a file",
            path.display(),
            file.display()
        ))),
        None => Ok(()),
    }
}

/// `path` (given by `flag`) can be written as a file: it is not a folder, and the folder it
/// goes into exists.
pub fn check_output_file(flag: &str, path: &Path) -> Result<(), Error> {
    if path.is_dir() {
        return Err(Error::Input(format!(
            "{flag}: {} is a folder; expected the path of a file to write",
            path.display()
        )));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    match parent {
        Some(parent) if !parent.is_dir() => Err(Error::Input(format!(
            "{flag}: the folder {} does not exist, so {} cannot be written",
            parent.display(),
            path.display()
        ))),
        _ => Ok(()),
    }
}
