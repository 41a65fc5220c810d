//! Config problems, each with a position and an optional hint, reported all at once.

use super::tree::Pos;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `None` for problems with the file as a whole (cannot read it).
    pub pos: Option<Pos>,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            pos: Some(pos),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

/// Every problem found in one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.errors {
            match error.pos {
                Some(pos) => writeln!(
                    f,
                    "{}:{}:{}: {}",
                    self.file, pos.line, pos.column, error.message
                )?,
                None => writeln!(f, "{}: {}", self.file, error.message)?,
            }
            if let Some(hint) = &error.hint {
                writeln!(f, "  hint: {hint}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `did you mean "x"?` when a known name is close to what was written.
pub fn did_you_mean<'a>(written: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    known
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(written, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| format!("did you mean \"{candidate}\"?"))
}

/// A hint for a name that is not one of `known`: the closest, or the whole list.
pub fn suggest(written: &str, known: &[&str]) -> String {
    did_you_mean(written, known.iter().copied()).unwrap_or_else(|| {
        let list: Vec<String> = known.iter().map(|k| format!("\"{k}\"")).collect();
        format!("expected one of {}", list.join(", "))
    })
}
