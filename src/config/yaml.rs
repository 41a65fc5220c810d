//! The file's bytes to a position-aware YAML tree. Everything that can be wrong at
//! this level is told in the operator's words at its line and column: bytes that are
//! not UTF-8, duplicate keys, unknown tags, several documents, a file too large or
//! too deeply nested, and syntax errors.

use super::errors::ConfigError;
use super::tree::{Node, Pos, Value};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{
    Budget, DuplicateKeyPolicy, Error as YamlError, MessageFormatter, Options, UserMessageFormatter,
};

/// Far deeper than a config gets (about six levels), and shallow enough that every
/// recursive walk of the tree stays far from the end of the stack.
pub const MAX_DEPTH: usize = 32;
/// Room for thousands of routes; a file past it is a mistake or an attack.
pub const MAX_NODES: usize = 100_000;
/// All the text values together.
pub const MAX_TEXT_BYTES: usize = 16 << 20;

/// `bytes` as text, or where the first byte that is not UTF-8 is.
pub fn text(bytes: &[u8]) -> Result<&str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|error| {
        let valid = &bytes[..error.valid_up_to()];
        let before = std::str::from_utf8(valid).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let pos = Pos {
            line: before.matches('\n').count() as u64 + 1,
            column: before[line_start..].chars().count() as u64 + 1,
        };
        let byte = bytes[error.valid_up_to()];
        ConfigError::at(
            pos,
            format!(
                "the file is not valid UTF-8: byte 0x{byte:02x} here is not part of a character"
            ),
        )
        .hint("save the file as UTF-8")
    })
}

/// Parses one YAML document into a tree; every duplicate key is reported, other
/// problems one at a time (the parser stops at the first).
pub fn parse(text: &str) -> Result<Node, Vec<ConfigError>> {
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_total_scalar_bytes = MAX_TEXT_BYTES;
    let mut options = Options::default();
    options.budget = Some(budget);
    // Duplicates reach the tree, which reports each with where the first one is.
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    // Nothing in a config has a tag; an ignored `!secret` would hide a mistake.
    options.reject_unsupported_tags = true;
    options.with_snippet = false;
    let root: Node = serde_saphyr::from_str_with_options(text, options)
        .map_err(|error| vec![translate(&error, text)])?;
    let mut duplicates = Vec::new();
    find_duplicate_keys(&root, &mut duplicates);
    if duplicates.is_empty() {
        Ok(root)
    } else {
        Err(duplicates)
    }
}

fn find_duplicate_keys(node: &Node, errors: &mut Vec<ConfigError>) {
    match &node.value {
        Value::Map(entries) => {
            for (index, (key, value)) in entries.iter().enumerate() {
                let name = key.key_text();
                if let Some((first, _)) =
                    entries[..index].iter().find(|(k, _)| k.key_text() == name)
                {
                    errors.push(
                        ConfigError::at(
                            key.pos,
                            format!(
                                "duplicate key \"{name}\" (first at {}:{})",
                                first.pos.line, first.pos.column
                            ),
                        )
                        .hint("a key may appear once in a mapping; remove one or merge them"),
                    );
                }
                find_duplicate_keys(value, errors);
            }
        }
        Value::Seq(items) => items
            .iter()
            .for_each(|item| find_duplicate_keys(item, errors)),
        _ => {}
    }
}

/// The parser's error in the operator's words, at its position.
fn translate(error: &YamlError, text: &str) -> ConfigError {
    let mut pos = error
        .location()
        .map(|location| Pos {
            line: location.line().max(1),
            column: location.column().max(1),
        })
        .unwrap_or(Pos { line: 1, column: 1 });
    // An error met while expanding an alias is told as itself, at the alias.
    let mut error = error.without_snippet();
    while let YamlError::AliasError { error: inner, .. } = error {
        error = inner.without_snippet();
    }
    let (message, hint) = match error {
        YamlError::Budget { breach, .. } => budget_message(breach),
        YamlError::MultipleDocuments { .. } => (
            "the file holds several YAML documents; put everything in one".to_owned(),
            Some("remove the `---` or `...` lines between them"),
        ),
        YamlError::UnsupportedTag { tag, .. } | YamlError::TaggedStructFieldName { tag, .. } => {
            // The parser points at the tagged node's content, which may be lines below.
            pos = last_before(text, tag, pos).unwrap_or(pos);
            (
                format!("unknown YAML tag `{tag}`"),
                Some(
                    "the config uses no tags; remove it, or quote the value if the `!` belongs to it",
                ),
            )
        }
        YamlError::DuplicateMappingKey { key, .. } => (
            match key {
                Some(key) => format!("duplicate key \"{key}\""),
                None => "duplicate key".to_owned(),
            },
            Some("a key may appear once in a mapping; remove one or merge them"),
        ),
        YamlError::UnknownAnchor { .. } => (
            "an alias (*name) refers to an anchor (&name) that is not defined before it".into(),
            None,
        ),
        YamlError::RecursiveReferencesRequireWeakTypes { .. } => (
            "an alias (*name) refers to the value it is inside of".into(),
            None,
        ),
        YamlError::NonFiniteFloat { .. } => (
            "this number is too large (or not a number)".into(),
            Some("quote it if it is meant as text"),
        ),
        YamlError::BinaryNotUtf8 { .. } => (
            "a `!!binary` value that is not text".into(),
            Some("the config uses no tags; remove it"),
        ),
        // The library's messages for end users (its default ones speak to developers).
        other => (
            format!(
                "YAML syntax: {}",
                strip_location(&UserMessageFormatter.format_message(other))
            ),
            None,
        ),
    };
    ConfigError::at(pos, message).maybe_hint(hint.map(str::to_owned))
}

fn budget_message(breach: &BudgetBreach) -> (String, Option<&'static str>) {
    let too_large = "a config file is a few hundred lines; check that this is the right file";
    match breach {
        BudgetBreach::Depth { .. } => (
            format!("the file is nested too deeply: more than {MAX_DEPTH} levels"),
            Some("a config is at most about six levels deep; check the indentation and brackets"),
        ),
        BudgetBreach::Nodes { .. } => (
            format!("the file is too large: more than {MAX_NODES} values"),
            Some(too_large),
        ),
        BudgetBreach::ScalarBytes { .. } => (
            format!("the file's text is too large: more than {} MiB in all", MAX_TEXT_BYTES >> 20),
            Some(too_large),
        ),
        BudgetBreach::Documents { .. } => (
            "the file holds several YAML documents; put everything in one".into(),
            Some("remove the `---` or `...` lines between them"),
        ),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::RecordedAnchorEvents { .. }
        | BudgetBreach::RecordedAnchorBytes { .. } => (
            "the file uses anchors (&name) and aliases (*name) too much: they would expand to too many values".into(),
            Some("write the repeated parts out, or use fewer aliases"),
        ),
        BudgetBreach::MergeKeys { .. } => (
            "the file has too many merge keys (<<)".into(),
            None,
        ),
        _ => ("the file is too large or too complex for a config file".into(), Some(too_large)),
    }
}

/// Where `needle` last occurs in `text` before `limit` (a 1-based line and column).
fn last_before(text: &str, needle: &str, limit: Pos) -> Option<Pos> {
    let mut found = None;
    for (index, line) in text.lines().enumerate() {
        let line_number = index as u64 + 1;
        if line_number > limit.line {
            break;
        }
        for (byte, _) in line.match_indices(needle) {
            let column = line[..byte].chars().count() as u64 + 1;
            if line_number < limit.line || column <= limit.column {
                found = Some(Pos {
                    line: line_number,
                    column,
                });
            }
        }
    }
    found
}

/// The parser's message without the " at line L column C" it appends (the position is
/// already in front).
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_reported_at_its_byte() {
        let error = text(b"a: 1\nbb: \"\xc3\xa9\xff\"\n").unwrap_err();
        assert_eq!(error.pos, Some(Pos { line: 2, column: 7 }));
        assert!(error.message.contains("0xff"), "{}", error.message);
    }
}
