//! Keeps the state private: the database holds the Matrix access token and the
//! application service's `as_token`/`hs_token`, so the state directory is 0700 and
//! the database files 0600 whatever the umask, and a directory or database left
//! readable by others (an older version, a hand-made directory, systemd's 0755
//! `StateDirectory`) is tightened at start, with a warning.
//!
//! SQLite creates the `-wal` and `-shm` files with the database file's mode, so
//! creating the database file 0600 before SQLite opens it covers them too.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Permission bits that give group or others any access.
const SHARED_BITS: u32 = 0o077;

/// Creates `dir` (and missing parents) 0700, or tightens an existing one to 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    tighten(dir, 0o700);
    Ok(())
}

/// Creates `file` empty and 0600 if it does not exist, or tightens it to 0600.
pub fn private_file(file: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    tighten(file, 0o600);
    Ok(())
}

/// The database and the files SQLite keeps beside it: created or tightened 0600.
pub fn private_database(database: &Path) -> std::io::Result<()> {
    private_file(database)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = database.as_os_str().to_owned();
        companion.push(suffix);
        let companion = Path::new(&companion);
        if companion.exists() {
            tighten(companion, 0o600);
        }
    }
    Ok(())
}

/// Sets `mode` on `path` if group or others have access; warns either way, since
/// someone may have read the secrets meanwhile.
fn tighten(path: &Path, mode: u32) {
    let current = match std::fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o7777,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot check the permissions of the state");
            return;
        }
    };
    if current & SHARED_BITS == 0 {
        return;
    }
    match std::fs::set_permissions(path, Permissions::from_mode(mode)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            was = format!("{current:o}"),
            now = format!("{mode:o}"),
            "state was accessible to other users (it holds access tokens); made it private"
        ),
        Err(error) => tracing::warn!(
            path = %path.display(),
            mode = format!("{current:o}"),
            %error,
            "state is accessible to other users (it holds access tokens) and cannot be made private: restrict it by hand"
        ),
    }
}
