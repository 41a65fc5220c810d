//! The Python venv holding Synapse: found, or made once per machine.
//!
//! Shared with `scripts/ensure-synapse` (same path, lock file and marker), so a test run
//! and the script never install at the same time or use a half-made venv.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// Overrides where the venv lives.
pub const VENV_ENV: &str = "SWITCHBOARD_SYNAPSE_VENV";
/// Written into the venv after `pip install` succeeded; a venv without it is redone.
const MARKER: &str = ".switchboard-complete";

/// The path of a venv with Synapse installed, installing it first if needed.
///
/// The venv is `$SWITCHBOARD_SYNAPSE_VENV`, else `$HOME/.cache/switchboard/synapse-venv`,
/// and is kept between runs. Installing (`python3 -m venv` + `pip install
/// matrix-synapse`, unpinned, about 15-75 s and 240 MB) happens under an exclusive
/// `flock` on `<venv>.lock`, the same lock `scripts/ensure-synapse` takes; the venv
/// counts as installed only once the marker file is written, last.
pub fn ensure_synapse() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = venv_path();
        if !venv.join(MARKER).is_file() {
            install(&venv);
        }
        venv
    })
    .clone()
}

fn venv_path() -> PathBuf {
    if let Some(path) = std::env::var_os(VENV_ENV).filter(|path| !path.is_empty()) {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .unwrap_or_else(|| {
            panic!("neither {VENV_ENV} nor HOME is set: no place for the Synapse venv")
        });
    PathBuf::from(home).join(".cache/switchboard/synapse-venv")
}

fn install(venv: &Path) {
    let parent = venv.parent().expect("the Synapse venv path has a parent");
    std::fs::create_dir_all(parent)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    let lock_path = PathBuf::from(format!("{}.lock", venv.display()));
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create the lock file {}: {e}", lock_path.display()));
    if lock.try_lock().is_err() {
        eprintln!(
            "synapse: another install is running; waiting for {}",
            lock_path.display()
        );
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    }
    if venv.join(MARKER).is_file() {
        return; // someone else installed it while we waited
    }
    let started = Instant::now();
    eprintln!(
        "synapse: installing matrix-synapse into {} (first run only: about 15-75 s, 240 MB)",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(venv).unwrap_or_else(|e| {
            panic!("cannot remove the unfinished venv {}: {e}", venv.display())
        });
    }
    run(
        Command::new("python3").arg("-m").arg("venv").arg(venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "matrix-synapse",
        ]),
        "pip install matrix-synapse",
    );
    let version = run(
        Command::new(venv.join("bin/python"))
            .args(["-c", "import synapse; print(synapse.__version__)"]),
        "import synapse",
    );
    File::create(venv.join(MARKER))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", venv.join(MARKER).display()));
    eprintln!(
        "synapse: installed Synapse {} in {:.0?}",
        version.trim(),
        started.elapsed()
    );
    // The lock is released when `lock` is dropped.
}

/// Runs `command`, returning its stdout; panics with its output when it fails.
fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| {
        panic!("synapse install: cannot run {what}: {e} (is python3 installed?)")
    });
    if !output.status.success() {
        panic!(
            "synapse install: {what} failed ({}); Synapse needs python3 >= 3.10 with venv and \
             access to PyPI.\nstdout:\n{}\nstderr:\n{}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout), 40),
            tail(&String::from_utf8_lossy(&output.stderr), 40),
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The last `lines` lines of `text`.
pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
