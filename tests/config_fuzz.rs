//! Fuzzing the config loader: random YAML, and random mutations of
//! `config.example.yaml` (byte flips, spliced pieces of the file, deleted, duplicated
//! and swapped lines, huge numbers, tags, anchors and aliases, deep nesting) must each
//! give a config or errors: never a panic, never an error in the YAML library's words.
//!
//! A short pass runs with the test suite. `SWITCHBOARD_FUZZ_CASES=1000000 cargo test
//! --release --test config_fuzz -- --nocapture` runs a million inputs and prints how
//! long they took and the slowest input's time.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::time::{Duration, Instant};

const EXAMPLE: &str = include_str!("../config.example.yaml");

/// Cases per strategy in the pass that runs with the test suite: about half a minute
/// in all in a debug build (the mutations' alias bombs are the slow inputs there).
const DEFAULT_MUTATIONS: u32 = 300;
const DEFAULT_RANDOM: u32 = 2_000;

/// Text inserted at random places: what breaks parsers and arithmetic.
const TOKENS: &[&str] = &[
    "18446744073709551615s1s",
    "4611686018427387904m",
    "99999999999999999999999999",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "-1",
    "0",
    "1e999",
    "-.inf",
    ".nan",
    "0x7fffffffffffffff",
    "0o777",
    "1_000",
    "!foo ",
    "!!str ",
    "!!int ",
    "!!binary ",
    "!!map ",
    "!!seq ",
    "! ",
    "!<tag:yaml.org,2002:str> ",
    "&a ",
    "*a",
    "&b [1, *b]",
    "<<: *a",
    "<<: ",
    "${MATTERMOST_TOKEN}",
    "${",
    "${}",
    "${1X}",
    "}",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "%TAG ! tag:x,2000:\n",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "? ",
    "\"",
    "'",
    "|\n",
    ">-\n",
    "#",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\0",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "é",
    "\u{1F600}",
    "\\",
    "\\u",
    "\"\\x\"",
    "{nick",
    "{nick}",
    "(?",
    "a{99999}{99999}",
    "0.0.0.0:0",
    "[::1]:65536",
    "~",
    "null",
    "true",
    "yes",
];

/// Keys the loader knows, so that random documents reach its deeper checks.
const KEYS: &[&str] = &[
    "networks",
    "routes",
    "delivery",
    "http",
    "state_dir",
    "listen",
    "allow_non_loopback",
    "retry_initial",
    "retry_max",
    "shutdown_deadline",
    "irc",
    "mattermost",
    "matrix",
    "server",
    "nick",
    "alt_nicks",
    "tls",
    "sasl",
    "username",
    "password",
    "flood",
    "burst",
    "interval_ms",
    "ping_timeout_secs",
    "channel_keys",
    "name_guard",
    "team",
    "token",
    "webhooks",
    "incoming_url",
    "outgoing_token",
    "catch_up_max_age_secs",
    "max_upload_bytes",
    "homeserver",
    "user_id",
    "access_token",
    "appservice",
    "ghost_prefix",
    "as_token",
    "hs_token",
    "name",
    "rooms",
    "nick_template",
    "relay_membership",
    "max_age",
    "ignore",
    "nicks",
    "text",
    "direction",
    "libera",
    "oftc",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte {
        at: usize,
        mask: u8,
    },
    Insert {
        at: usize,
        token: usize,
    },
    Splice {
        from: usize,
        len: usize,
        at: usize,
    },
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Nest {
        at: usize,
        depth: usize,
        flow: bool,
    },
    ReplaceValue {
        line: usize,
        token: usize,
    },
    /// Anchors whose aliases multiply ("billion laughs").
    AliasBomb {
        at: usize,
        levels: usize,
        width: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let position = any::<prop::sample::Index>();
    prop_oneof![
        (position.clone(), 1u8..=255).prop_map(|(at, mask)| Mutation::FlipByte {
            at: at.index(usize::MAX),
            mask
        }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 1usize..200, any::<usize>())
            .prop_map(|(from, len, at)| Mutation::Splice { from, len, at }),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 1usize..300, any::<bool>()).prop_map(|(at, depth, flow)| Mutation::Nest {
            at,
            depth,
            flow
        }),
        (any::<usize>(), 0..TOKENS.len())
            .prop_map(|(line, token)| Mutation::ReplaceValue { line, token }),
        (any::<usize>(), 1usize..6, 2usize..20)
            .prop_map(|(at, levels, width)| Mutation::AliasBomb { at, levels, width }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len().max(1);
    match *mutation {
        Mutation::FlipByte { at, mask } => {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
        }
        Mutation::Insert { at, token } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, TOKENS[token].bytes());
        }
        Mutation::Splice {
            from,
            len: count,
            at,
        } => {
            let from = from % len;
            let piece: Vec<u8> = bytes.iter().skip(from).take(count).copied().collect();
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, piece);
        }
        Mutation::DeleteLine(line) => edit_lines(bytes, |lines| {
            if !lines.is_empty() {
                let index = line % lines.len();
                lines.remove(index);
            }
        }),
        Mutation::DuplicateLine(line) => edit_lines(bytes, |lines| {
            if !lines.is_empty() {
                let index = line % lines.len();
                lines.insert(index, lines[index].clone());
            }
        }),
        Mutation::SwapLines(a, b) => edit_lines(bytes, |lines| {
            if !lines.is_empty() {
                let count = lines.len();
                lines.swap(a % count, b % count);
            }
        }),
        Mutation::Nest { at, depth, flow } => {
            let at = at % (bytes.len() + 1);
            let nested = if flow {
                format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
            } else {
                (0..depth)
                    .map(|level| format!("\n{}k{level}:", " ".repeat(level * 2 + 2)))
                    .collect::<String>()
            };
            bytes.splice(at..at, nested.into_bytes());
        }
        Mutation::AliasBomb { at, levels, width } => edit_lines(bytes, |lines| {
            let at = at % (lines.len() + 1);
            let bomb = (0..levels).map(|level| {
                let items = if level == 0 {
                    vec!["0".to_owned(); width]
                } else {
                    vec![format!("*l{}", level - 1); width]
                };
                format!("l{level}: &l{level} [{}]", items.join(", ")).into_bytes()
            });
            lines.splice(at..at, bomb);
        }),
        Mutation::ReplaceValue { line, token } => edit_lines(bytes, |lines| {
            if lines.is_empty() {
                return;
            }
            let index = line % lines.len();
            if let Some(colon) = lines[index].windows(2).position(|w| w == b": ") {
                lines[index].truncate(colon + 2);
                lines[index].extend_from_slice(TOKENS[token].as_bytes());
            }
        }),
    }
}

fn edit_lines(bytes: &mut Vec<u8>, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    edit(&mut lines);
    *bytes = lines.join(&b'\n');
}

/// Random YAML documents, block or flow style, with the loader's own keys.
fn yaml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        prop::sample::select(TOKENS).prop_map(|t| t.replace('\n', " ")),
        prop::sample::select(KEYS).prop_map(str::to_owned),
        "[a-z#@:/._ -]{0,20}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("{n}s")),
        "\"[^\"\\\\]{0,12}\"",
    ];
    scalar.prop_recursive(8, 64, 6, |inner| {
        let key = prop_oneof![
            4 => prop::sample::select(KEYS).prop_map(str::to_owned),
            1 => "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((key, inner), 0..6).prop_map(|entries| {
                let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
        ]
    })
}

fn yaml_document() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Flow style as is.
        yaml_value().prop_map(String::into_bytes),
        // Block style: the top level's entries on lines of their own.
        prop::collection::vec((prop::sample::select(KEYS), yaml_value()), 1..8).prop_map(
            |entries| {
                entries
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}\n"))
                    .collect::<String>()
                    .into_bytes()
            }
        ),
    ]
}

fn mutated_example() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..6).prop_map(|mutations| {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        bytes
    })
}

/// Words of the YAML library's API that must never reach an operator.
const LIBRARY_WORDS: &[&str] = &[
    "Policy",
    "from_str",
    "Options",
    "budget",
    "Budget",
    "Spanned",
    "serde_saphyr",
    "Weak",
];

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(errors) = switchboard::config::load_bytes(bytes) {
        prop_assert!(!errors.is_empty(), "an Err with no error");
        for error in &errors {
            for word in LIBRARY_WORDS {
                prop_assert!(
                    !error.message.contains(word),
                    "library words in {:?} for {:?}",
                    error.message,
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }
    Ok(())
}

fn cases(default: u32) -> u32 {
    std::env::var("SWITCHBOARD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Runs `cases` inputs of `strategy`; prints the count, the time and the slowest input.
fn fuzz(name: &str, strategy: impl Strategy<Value = Vec<u8>>, cases: u32) {
    let config = Config {
        cases,
        failure_persistence: None,
        // Inputs are small; shrinking a failure should not take longer than finding it.
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let seed = std::env::var("SWITCHBOARD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let rng = match seed {
        Some(seed) => {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
        }
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let started = Instant::now();
    let slowest = std::cell::Cell::new(Duration::ZERO);
    let inputs = std::cell::Cell::new(0u64);
    let result = runner.run(&strategy, |bytes| {
        inputs.set(inputs.get() + 1);
        let start = Instant::now();
        let outcome = check(&bytes);
        slowest.set(slowest.get().max(start.elapsed()));
        outcome
    });
    let longest = slowest.get();
    println!(
        "config fuzz {name}: {} inputs in {:.1?}, slowest {longest:.1?}",
        inputs.get(),
        started.elapsed()
    );
    if let Err(failure) = result {
        panic!("config fuzz {name}: {failure}");
    }
}

#[test]
fn mutations_of_the_example_never_panic() {
    fuzz(
        "example mutations",
        mutated_example(),
        cases(DEFAULT_MUTATIONS),
    );
}

#[test]
fn random_yaml_never_panics() {
    fuzz("random YAML", yaml_document(), cases(DEFAULT_RANDOM));
}

/// The inputs of issue 17 that panicked or wrapped, and the pieces the fuzzer uses.
#[test]
fn known_bad_inputs_are_errors() {
    for text in [
        "delivery:\n  retry_max: 18446744073709551615s1s\n",
        "routes:\n  - name: r\n    max_age: 4611686018427387904m\n",
    ] {
        let errors = switchboard::config::load_str(text).unwrap_err();
        assert!(
            errors.iter().any(|e| e.message.contains("is too long")),
            "{errors:?}"
        );
    }
}
