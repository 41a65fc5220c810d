//! `switchboard check` golden tests: each `tests/golden/NAME.yaml` is checked by the
//! real binary and its stderr must equal `NAME.expected` exactly. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test check_golden`, then review every diff by hand.

use std::path::Path;
use std::process::Command;

const SECRET: &str = "hunter2-do-not-print";

fn check(dir: &Path, file: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check", "-c", file])
        .current_dir(dir)
        .env("SWITCHBOARD_GOLDEN_SECRET", SECRET)
        .env_remove("SWITCHBOARD_GOLDEN_UNSET_PASSWORD")
        .env_remove("SWITCHBOARD_GOLDEN_ALSO_UNSET")
        .output()
        .expect("run switchboard check")
}

#[test]
fn every_golden_config_reports_exactly_its_problems() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "golden files missing: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let output = check(&dir, name);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let expected_path = dir.join(name.replace(".yaml", ".expected"));
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: check must fail; stderr:\n{stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{name}: nothing on stdout for a failed check"
        );
        assert!(
            !stderr.contains(SECRET),
            "{name}: a secret from the environment was printed:\n{stderr}"
        );
        if update {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{name}: no {}", expected_path.display()));
        if expected != stderr {
            failures.push(format!("--- {name}: expected\n{expected}--- got\n{stderr}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_example_config_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["check", "-c", "config.example.yaml"])
        .current_dir(root)
        .env("LIBERA_SASL_PASSWORD", "x")
        .env("SECRET_ROOM_KEY", "y")
        .env("MATTERMOST_TOKEN", "t")
        .env(
            "MATTERMOST_INCOMING_WEBHOOK_URL",
            "https://chat.example.org/hooks/x",
        )
        .env("MATTERMOST_OUTGOING_TOKEN", "o")
        .env("MATRIX_PASSWORD", "p")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "config.example.yaml: ok (5 networks, 3 routes)\n",
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn run_refuses_a_broken_config_with_the_same_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["run", "-c", "unknown-network.yaml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let expected = std::fs::read_to_string(dir.join("unknown-network.expected")).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(stderr.contains("not started"), "{stderr}");
    assert_eq!(output.status.code(), Some(1));
}
