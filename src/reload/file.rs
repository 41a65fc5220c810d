//! Reading the config file for a reload, and writing an admin's change back to it
//! so that the file and the running daemon never disagree.

use crate::config::{self, ConfigError};
use std::io::Write;
use std::path::Path;

/// The file's text, or the error `switchboard check` would report for it.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    let unreadable = |message: String| ConfigError {
        pos: None,
        message,
        hint: None,
    };
    let bytes = std::fs::read(path).map_err(|error| unreadable(format!("cannot read: {error}")))?;
    config::text_of(&bytes).map(str::to_owned)
}

/// Replaces `path` with `text` so that a crash at any moment leaves either the old
/// file or the new one: a temporary file in the same directory (same filesystem,
/// same mode as the old file: it may hold secrets), synced, renamed over it, and
/// the directory synced so the rename itself is durable.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".switchboard-config-")
        .tempfile_in(dir)?;
    if let Ok(metadata) = std::fs::metadata(path) {
        temp.as_file().set_permissions(metadata.permissions())?;
    }
    temp.write_all(text.as_bytes())?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_the_file_keeping_its_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.yaml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, "new: text\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new: text\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["switchboard.yaml"]);
    }

    #[test]
    fn an_unreadable_file_is_a_config_error() {
        let error = read(Path::new("/nonexistent/switchboard.yaml")).unwrap_err();
        assert!(error.message.starts_with("cannot read:"), "{error:?}");
    }
}
