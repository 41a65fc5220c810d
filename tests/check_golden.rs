//! `switchboard check` golden tests: each `tests/golden/NAME.yaml` is checked by the
//! real binary and its stderr must equal `NAME.expected` exactly. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test check_golden`, then review every diff by hand.

use std::path::Path;
use std::process::Command;

const SECRET: &str = "hunter2-do-not-print";
/// Not a valid nick (a space, a quote, a backtick), and a secret all the same.
const BAD_NICK: &str = "hunter3 \"do-not\" `print`";

fn check(dir: &Path, file: &str) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(["check", "-c", file])
        .current_dir(dir)
        .env("SWITCHBOARD_GOLDEN_SECRET", SECRET)
        .env("SWITCHBOARD_GOLDEN_BAD_NICK", BAD_NICK);
    for unset in [
        "SWITCHBOARD_GOLDEN_UNSET_PASSWORD",
        "SWITCHBOARD_GOLDEN_ALSO_UNSET",
        "SWITCHBOARD_GOLDEN_UNSET_NICK",
        "SWITCHBOARD_GOLDEN_UNSET_TIMEOUT",
        "SWITCHBOARD_GOLDEN_UNSET_TOKEN",
        "SWITCHBOARD_GOLDEN_UNSET_AGE",
    ] {
        command.env_remove(unset);
    }
    command.output().expect("run switchboard check")
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
        for secret in [SECRET, BAD_NICK] {
            assert_no_trace_of(secret, &stderr, name);
        }
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
        .env("SWITCHBOARD_ADMIN_TOKEN", "an-admin-token-long-enough")
        .env("SLACK_BOT_TOKEN", "xoxb-1")
        .env("SLACK_APP_TOKEN", "xapp-1")
        .env("SLACK_EVENTS_BOT_TOKEN", "xoxb-2")
        .env("SLACK_SIGNING_SECRET", "s")
        .env(
            "SLACK_INCOMING_WEBHOOK_URL",
            "https://hooks.slack.com/services/T/B/x",
        )
        .env("SLACK_OUTGOING_TOKEN", "o")
        .env("DISCORD_BOT_TOKEN", "MTIz.GaBcDe.x")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "config.example.yaml: ok (9 networks, 3 routes)\n",
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

/// Every form in which `secret` could be shown: as is, trimmed, escaped as Rust and
/// JSON strings are, and each piece of it between characters that quoting or
/// escaping changes or cuts at (pieces of 4 characters or more).
fn traces_of(secret: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        secret.trim().to_owned(),
        secret.escape_debug().to_string(),
        secret.escape_default().to_string(),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
    ];
    forms.extend(
        secret
            .split(|c: char| c.is_whitespace() || c.is_control() || "\"'`\\".contains(c))
            .map(str::to_owned),
    );
    forms.retain(|form| form.chars().count() >= 4);
    forms
}

fn assert_no_trace_of(secret: &str, output: &str, context: &str) {
    for trace in traces_of(secret) {
        assert!(
            !output.contains(&trace),
            "{context}: {trace:?} (from the secret {secret:?}) was printed:\n{output}"
        );
    }
}

/// A config with `${SB_SECRET}` in every kind of place a value can be wrong.
const SECRET_EVERYWHERE: &str = r#"
state_dir: ./state-never-created
http:
  listen: ${SB_SECRET}
delivery:
  retry_max: ${SB_SECRET}
networks:
  libera:
    irc:
      server: ${SB_SECRET}
      nick: ${SB_SECRET}
      alt_nicks: ["${SB_SECRET}"]
      password: ${SB_SECRET}
      ping_timeout_secs: ${SB_SECRET}
      name_guard: ${SB_SECRET}
      flood:
        burst: "${SB_SECRET}"
  oftc:
    irc:
      server: "irc.${SB_SECRET}:6697"
      nick: "x${SB_SECRET}"
  chat:
    mattermost:
      server: ${SB_SECRET}
      team: ${SB_SECRET}
      token: ${SB_SECRET}
  hooks:
    mattermost:
      server: https://chat.example.org
      team: project
      override_names: ${SB_SECRET}
      webhooks:
        incoming_url: ${SB_SECRET}
        outgoing_token: ${SB_SECRET}
        username: ${SB_SECRET}
  matrix:
    matrix:
      homeserver: ${SB_SECRET}
      user_id: ${SB_SECRET}
      access_token: ${SB_SECRET}
      device_name: ${SB_SECRET}
  puppets:
    matrix:
      homeserver: https://matrix.example.org
      user_id: "@bot:example.org"
      appservice:
        url: ${SB_SECRET}
        ghost_prefix: ${SB_SECRET}
        alias_prefix: "${SB_SECRET}"
        as_token: ${SB_SECRET}
routes:
  - name: ${SB_SECRET}
    max_age: ${SB_SECRET}
    nick_template: "${SB_SECRET}"
    relay_membership: ${SB_SECRET}
    ignore:
      nicks: ["${SB_SECRET}"]
      text: ["${SB_SECRET}(", "[${SB_SECRET}"]
    rooms:
      - libera: ${SB_SECRET}
      - oftc: ${SB_SECRET}
        direction: ${SB_SECRET}
        nick_template: "{${SB_SECRET}}"
      - matrix: ${SB_SECRET}
      - chat: ${SB_SECRET}
  - name: ${SB_SECRET}
    rooms:
      - libera: ${SB_SECRET}
      - puppets: ${SB_SECRET}
"#;

/// Issue 17 item 9: a secret from the environment with a quote, surrounding spaces,
/// a backtick, a newline, a backslash or non-ASCII text is never printed, whole or in
/// part, escaped, trimmed or cut, by `check` or by `run`'s config loading.
#[test]
fn secrets_from_the_environment_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secrets.yaml"), SECRET_EVERYWHERE).unwrap();
    let secrets = [
        "pa\"ss-hunter2-quote",
        "   spaced-hunter3-around   ",
        "tick`hunter4`cut-here",
        "line1-hunter5\nline2-hunter6",
        "back\\slash-hunter7",
        "ünïcødé-hunter8-🔑",
        "tab\there-hunter9\r",
        "{hunter10} <{nick}> ${NOT_A_VAR}",
        "irc.example.org:hunter11",
        "https://chat.example.org/hooks/hunter12",
    ];
    for secret in secrets {
        for command in ["check", "run"] {
            let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .args([command, "-c", "secrets.yaml"])
                .current_dir(dir.path())
                .env("SB_SECRET", secret)
                .env("RUST_LOG", "trace")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{command} {secret:?}: {stderr}"
            );
            assert!(
                stderr.contains("the value of ${SB_SECRET} (line "),
                "{command} {secret:?}: messages should name the variable:\n{stderr}"
            );
            let both = format!("{stdout}{stderr}");
            assert_no_trace_of(secret, &both, &format!("{command} with {secret:?}"));
        }
    }
    assert!(!dir.path().join("state-never-created").exists());
}
