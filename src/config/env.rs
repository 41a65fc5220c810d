//! `${NAME}` in string values: replaced by the environment variable's value, and each
//! such value remembered by its position. Messages about a value from the environment
//! name the variable and the line instead of showing the value (it is usually a
//! secret), and a variable that is not set is the only problem reported for its value.

use super::errors::ConfigError;
use super::tree::{Node, Pos, Value};
use std::collections::BTreeMap;

/// A string value that was written with `${...}` in it.
#[derive(Debug)]
struct Origin {
    /// As written in the file (after YAML unquoting), e.g. `${IRC_NICK}`.
    written: String,
    /// After substitution.
    value: String,
    /// False when a variable was unset or misnamed: that is already reported.
    resolved: bool,
}

/// Where the environment's values are in the tree.
#[derive(Debug, Default)]
pub struct EnvValues {
    origins: BTreeMap<Pos, Origin>,
}

/// Fragments shorter than this are not searched for in messages: they would match
/// ordinary words, and no secret is that short.
const MIN_FRAGMENT: usize = 4;

impl EnvValues {
    /// Substitutes every `${NAME}` below `node` using `lookup`; the problems returned
    /// are unset or misnamed variables, at the `$`.
    pub fn substitute(
        node: &mut Node,
        text: &str,
        lookup: &dyn Fn(&str) -> Result<String, std::env::VarError>,
    ) -> (Self, Vec<ConfigError>) {
        let mut env = Self::default();
        let mut errors = Vec::new();
        env.walk(node, text, lookup, &mut errors);
        (env, errors)
    }

    fn walk(
        &mut self,
        node: &mut Node,
        text: &str,
        lookup: &dyn Fn(&str) -> Result<String, std::env::VarError>,
        errors: &mut Vec<ConfigError>,
    ) {
        match &mut node.value {
            Value::Str(value) if value.contains("${") => {
                let quoted = char_at(text, node.pos).is_some_and(|c| c == '"' || c == '\'');
                let (substituted, problems) = substitute_one(value, node.pos, quoted, lookup);
                self.origins.insert(
                    node.pos,
                    Origin {
                        written: std::mem::replace(value, substituted.clone()),
                        value: substituted,
                        resolved: problems.is_empty(),
                    },
                );
                errors.extend(problems);
            }
            Value::Seq(items) => items
                .iter_mut()
                .for_each(|item| self.walk(item, text, lookup, errors)),
            Value::Map(entries) => entries
                .iter_mut()
                .for_each(|(_, value)| self.walk(value, text, lookup, errors)),
            _ => {}
        }
    }

    /// `the value of ${NAME} (line 4)` for a value from the environment.
    pub fn describe(&self, pos: Pos) -> Option<String> {
        let origin = self.origins.get(&pos)?;
        let single = origin.written.starts_with("${")
            && origin.written.ends_with('}')
            && origin.written.matches("${").count() == 1;
        Some(if single {
            format!("the value of {} (line {})", origin.written, pos.line)
        } else {
            format!("the value of \"{}\" (line {})", origin.written, pos.line)
        })
    }

    /// True when the value at `pos` names a variable that is not set: its only problem.
    pub fn unresolved(&self, pos: Pos) -> bool {
        self.origins
            .get(&pos)
            .is_some_and(|origin| !origin.resolved)
    }

    /// The description of the first environment value that `error` shows in any form
    /// (whole, trimmed, escaped, or a piece of it), if any.
    pub fn leaked_in(&self, error: &ConfigError) -> Option<String> {
        let shown = [Some(error.message.as_str()), error.hint.as_deref()];
        self.origins.iter().find_map(|(pos, origin)| {
            fragments(&origin.value)
                .iter()
                .any(|fragment| {
                    shown
                        .iter()
                        .flatten()
                        .any(|text| text.contains(fragment.as_str()))
                })
                .then(|| self.describe(*pos))
                .flatten()
        })
    }
}

/// The forms in which a message could show `value`: as is, trimmed, escaped as Rust
/// and JSON strings are, and each piece between characters that escaping or quoting
/// changes or cuts at.
fn fragments(value: &str) -> Vec<String> {
    let mut forms = vec![
        value.to_owned(),
        value.trim().to_owned(),
        value.escape_debug().to_string(),
        value.escape_default().to_string(),
        serde_json::to_string(value)
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned(),
    ];
    forms.extend(
        value
            .split(|c: char| c.is_whitespace() || c.is_control() || "\"'`\\".contains(c))
            .map(str::to_owned),
    );
    forms.retain(|form| form.chars().count() >= MIN_FRAGMENT);
    forms.sort();
    forms.dedup();
    forms
}

/// One string with its `${NAME}`s replaced; problems are placed at each `$`.
fn substitute_one(
    text: &str,
    pos: Pos,
    quoted: bool,
    lookup: &dyn Fn(&str) -> Result<String, std::env::VarError>,
) -> (String, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut out = String::new();
    let mut rest = text;
    let mut offset = 0u64;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let at = Pos {
            line: pos.line,
            column: pos.column + u64::from(quoted) + offset + rest[..start].chars().count() as u64,
        };
        let Some(end) = after.find('}') else {
            errors.push(
                ConfigError::at(at, "unclosed ${ in string").hint("write ${NAME} or remove the $"),
            );
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            errors.push(
                ConfigError::at(at, format!("invalid environment variable name \"{name}\""))
                    .hint("names are letters, digits and _, not starting with a digit"),
            );
        } else {
            match lookup(name) {
                Ok(value) => out.push_str(&value),
                Err(std::env::VarError::NotPresent) => errors.push(
                    ConfigError::at(at, format!("environment variable {name} is not set")).hint(
                        format!("export {name}=... before starting, or put the value in the file"),
                    ),
                ),
                Err(std::env::VarError::NotUnicode(_)) => errors.push(ConfigError::at(
                    at,
                    format!("environment variable {name} is not valid UTF-8"),
                )),
            }
        }
        offset += rest[..start + 2 + end + 1].chars().count() as u64;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (out, errors)
}

fn char_at(text: &str, pos: Pos) -> Option<char> {
    let line = text
        .lines()
        .nth(usize::try_from(pos.line.checked_sub(1)?).ok()?)?;
    line.chars()
        .nth(usize::try_from(pos.column.checked_sub(1)?).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_value_is_a_fragment() {
        let forms = fragments(" pa\"ss`word\n ");
        for form in [
            " pa\"ss`word\n ",
            "pa\"ss`word",
            " pa\\\"ss`word\\n ",
            "word",
        ] {
            assert!(forms.iter().any(|f| f == form), "{form:?} not in {forms:?}");
        }
        assert!(fragments("ab").is_empty());
    }
}
