//! `switchboard reload -c FILE`, and loading a config file together with its text
//! (the reloader keeps the text that API changes are made to).

use crate::config::{self, Config, ConfigErrors};
use std::path::Path;
use std::time::Duration;

/// The config in `path` and the text it was read from.
pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigErrors> {
    let fail = |errors| ConfigErrors {
        file: path.display().to_string(),
        errors,
    };
    let text = super::file::read(path).map_err(|error| fail(vec![error]))?;
    let config = config::load_str(&text).map_err(fail)?;
    Ok((config, text))
}

/// How long `switchboard reload` waits: a reload may wait up to the join deadline
/// for new rooms, then roll back.
fn answer_timeout(config: &Config) -> Duration {
    config.reload.join_deadline + config.delivery.shutdown_deadline * 2 + Duration::from_secs(10)
}

/// Asks the daemon running from `path` to reload it; prints the outcome. Returns
/// the exit code: 0 applied or unchanged, 1 otherwise.
pub fn run(path: &Path) -> i32 {
    let config = match load_with_text(path) {
        Ok((config, _)) => config,
        Err(errors) => {
            eprint!("{errors}");
            eprintln!(
                "switchboard reload: not sent: the file has errors (the daemon would refuse it too)"
            );
            return 1;
        }
    };
    let (Some(listen), Some(token)) = (config.http.listen, config.admin.token.as_deref()) else {
        eprintln!(
            "switchboard reload: the admin API is off in {} (admin.enabled); send the daemon SIGHUP instead",
            path.display()
        );
        return 1;
    };
    let url = format!("http://{listen}/admin/api/reload");
    let bearer = format!("Bearer {token}");
    let answer = crate::http::client::request(
        "POST",
        &url,
        "/",
        &[("Authorization", &bearer)],
        b"",
        answer_timeout(&config),
    );
    match answer {
        Ok(answer) => report(path, answer.status, &answer.body),
        Err(error) => {
            eprintln!("switchboard reload: {error}");
            1
        }
    }
}

fn report(path: &Path, status: u16, body: &str) -> i32 {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let outcome = json["outcome"].as_str().unwrap_or("");
    match outcome {
        "applied" => {
            println!(
                "applied: generation {} is running\n{}",
                json["generation"],
                serde_json::to_string_pretty(&json["diff"]).unwrap_or_default()
            );
            0
        }
        "unchanged" => {
            println!("unchanged: the file describes the running config");
            0
        }
        "rejected" => {
            eprintln!("rejected: nothing changed");
            for error in json["errors"].as_array().into_iter().flatten() {
                match (error["line"].as_u64(), error["column"].as_u64()) {
                    (Some(line), Some(column)) => eprintln!(
                        "{}:{line}:{column}: {}",
                        path.display(),
                        error["message"].as_str().unwrap_or("")
                    ),
                    _ => eprintln!(
                        "{}: {}",
                        path.display(),
                        error["message"].as_str().unwrap_or("")
                    ),
                }
                if let Some(hint) = error["hint"].as_str() {
                    eprintln!("  hint: {hint}");
                }
            }
            1
        }
        "rolled_back" => {
            eprintln!(
                "rolled back: the previous config runs again: {}",
                json["cause"].as_str().unwrap_or("")
            );
            1
        }
        _ => {
            eprintln!("switchboard reload: HTTP {status}: {body}");
            1
        }
    }
}
