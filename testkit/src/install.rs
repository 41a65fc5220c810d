//! Installs a Debian package when its program is missing (tests run as root in CI).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static APT: Mutex<()> = Mutex::new(());

/// The path of `program`, installing `package` with apt-get first if needed.
pub fn ensure(program: &str, package: &str) -> PathBuf {
    let _serialised = APT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = find(program) {
        return path;
    }
    let install = |update: bool| {
        if update {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        }
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|status| status.success())
    };
    if !install(false) && !install(true) {
        panic!(
            "{program} is missing and `apt-get install {package}` failed; install it (scripts/test does)"
        );
    }
    find(program).unwrap_or_else(|| {
        panic!("{package} installed but {program} is not on PATH or in /usr/sbin")
    })
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|candidate| candidate.is_file())
}
