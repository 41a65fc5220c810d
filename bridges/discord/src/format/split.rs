//! A message's final parts: its lines and code blocks written and guarded, then
//! packed into parts of at most the byte budget.
//!
//! Cutting finished markdown anywhere would split an escape from its character
//! (the backslash then shows) or a pair of style markers (each half shows stray
//! `**`). So whole lines go together where they fit; a longer line is cut between
//! its pieces (characters and links), preferring a blank (as
//! `switchboard_sdk::text::first_piece_len` does), and each part of it is written
//! on its own, its styles closed at the end and opened again in the next part. A
//! code block is cut between its lines (a line wider than a part between its
//! characters) and each part gets its own fences. Every line is guarded before it
//! is measured, so the guard the core runs on the final parts has nothing to add.
//! Budgets under [`MIN_BUDGET`] bytes are treated as that many (the adapter's is
//! [`super::MAX_MESSAGE_BYTES`]).

use super::mentions::guard;
use super::pieces::{Block, Piece, blocks, code_pieces};
use super::render::{code_lines, fenced, write_line};
use switchboard_sdk::RichText;

/// The smallest budget honoured: room for any one character with its escape and
/// a zero-width space, and for a code block's fences with a little code.
pub(super) const MIN_BUDGET: usize = 16;

/// Code parts narrower than this go as plain text lines instead.
const MIN_CODE_WIDTH: usize = 8;

/// The message's final markdown: one part, or parts of at most `budget` bytes.
pub(super) fn parts(rich: &RichText, budget: Option<usize>) -> Vec<String> {
    let blocks = blocks(rich);
    let Some(budget) = budget else {
        let written: Vec<String> = blocks
            .iter()
            .map(|block| match block {
                Block::Line(pieces) => line(pieces),
                Block::Code { language, code } => fenced(*language, &code_text(code)),
            })
            .collect();
        return vec![written.join("\n")];
    };
    let mut packer = Packer {
        budget: budget.max(MIN_BUDGET),
        parts: Vec::new(),
        current: None,
    };
    for block in &blocks {
        match block {
            Block::Line(pieces) => add_line(&mut packer, pieces),
            Block::Code { language, code } => add_code(&mut packer, *language, code),
        }
    }
    packer.finish()
}

fn line(pieces: &[Piece]) -> String {
    guard(&write_line(pieces))
}

fn code_text(code: &str) -> String {
    guarded_code_lines(code).join("\n")
}

fn guarded_code_lines(code: &str) -> Vec<String> {
    code_lines(code).iter().map(|line| guard(line)).collect()
}

/// Collects lines into parts.
struct Packer {
    budget: usize,
    parts: Vec<String>,
    current: Option<String>,
}

impl Packer {
    /// Adds `text` on a line of its own after what the current part has, when
    /// `new_line` and it fits; otherwise starts a new part with it.
    fn add(&mut self, text: String, new_line: bool) {
        if let Some(current) = &mut self.current
            && new_line
            && current.len() + 1 + text.len() <= self.budget
        {
            current.push('\n');
            current.push_str(&text);
            return;
        }
        self.parts.extend(self.current.replace(text));
    }

    /// The parts, without blank ones (Discord refuses a message with no content).
    fn finish(mut self) -> Vec<String> {
        self.parts.extend(self.current.take());
        self.parts.retain(|part| !part.trim().is_empty());
        if self.parts.is_empty() {
            self.parts.push(String::new());
        }
        self.parts
    }
}

fn add_line(packer: &mut Packer, pieces: &[Piece]) {
    let budget = packer.budget;
    if pieces.iter().map(Piece::text_len).sum::<usize>() <= budget {
        let whole = line(pieces);
        if whole.len() <= budget {
            return packer.add(whole, true);
        }
    }
    let mut pieces = pieces.to_vec();
    let mut start = 0;
    let mut first = true;
    while start < pieces.len() {
        let rest = &pieces[start..];
        let written = if let Some((fit, written)) = longest_fitting(rest, budget) {
            let len = prefer_break(rest, fit);
            let preferred = (len < fit)
                .then(|| line(&rest[..len]))
                .filter(|written| written.len() <= budget);
            match preferred {
                Some(written) => {
                    start += len;
                    written
                }
                None => {
                    start += fit;
                    written
                }
            }
        } else if let Some(plain) = rest[0].degraded() {
            // A link or a styled character alone is too wide: try it as plain text.
            pieces.splice(start..start + 1, plain);
            continue;
        } else {
            start += 1;
            line(&rest[..1])
        };
        packer.add(written, first);
        first = false;
    }
}

/// The most pieces from the start of `pieces` whose line fits `budget`, with that
/// line; `None` when not even the first does. No more pieces fit than hold the
/// budget's worth of text; that many is tried first (plain text mostly fits), then
/// a binary search.
fn longest_fitting(pieces: &[Piece], budget: usize) -> Option<(usize, String)> {
    let mut text = 0;
    let most = pieces
        .iter()
        .take_while(|piece| {
            text += piece.text_len();
            text <= budget
        })
        .count();
    if most == 0 {
        return None;
    }
    let written = line(&pieces[..most]);
    if written.len() <= budget {
        return Some((most, written));
    }
    let (mut fits, mut too_many) = (0, most);
    let mut fit = None;
    while too_many - fits > 1 {
        let mid = (fits + too_many) / 2;
        let written = line(&pieces[..mid]);
        if written.len() <= budget {
            fits = mid;
            fit = Some((mid, written));
        } else {
            too_many = mid;
        }
    }
    fit
}

/// Where to end a part that could take `cut` pieces: before the blank that keeps
/// the part over half full.
fn prefer_break(pieces: &[Piece], cut: usize) -> usize {
    if cut >= pieces.len() {
        return cut;
    }
    let half = cut / 2;
    let space = if pieces[cut].is_blank() {
        Some(cut)
    } else {
        (half + 1..cut).rev().find(|&i| pieces[i].is_blank())
    };
    let Some(mut start) = space else {
        return cut;
    };
    while start > 0 && pieces[start - 1].is_blank() {
        start -= 1;
    }
    if start == 0 { cut } else { start }
}

fn add_code(packer: &mut Packer, language: Option<&str>, code: &str) {
    let budget = packer.budget;
    let lines = guarded_code_lines(code);
    let whole = fenced(language, &lines.join("\n"));
    if whole.len() <= budget {
        return packer.add(whole, true);
    }
    let width = budget.saturating_sub(fenced(language, "").len());
    if width < MIN_CODE_WIDTH {
        for line in code.trim_end_matches(['\n', '\r']).split('\n') {
            add_line(packer, &code_pieces(line));
        }
        return;
    }
    let mut chunk: Vec<String> = Vec::new();
    let mut len = 0;
    let mut first = true;
    for line in &lines {
        for piece in cut_chars(line, width) {
            let joined = if chunk.is_empty() {
                piece.len()
            } else {
                len + 1 + piece.len()
            };
            if joined > width {
                packer.add(fenced(language, &chunk.join("\n")), first);
                first = false;
                chunk.clear();
                len = piece.len();
            } else {
                len = joined;
            }
            chunk.push(piece);
        }
    }
    if !chunk.is_empty() {
        packer.add(fenced(language, &chunk.join("\n")), first);
    }
}

/// `line` cut into pieces of at most `width` bytes, between characters.
fn cut_chars(line: &str, width: usize) -> Vec<String> {
    if line.len() <= width {
        return vec![line.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut piece = String::new();
    for c in line.chars() {
        if !piece.is_empty() && piece.len() + c.len_utf8() > width {
            pieces.push(std::mem::take(&mut piece));
        }
        piece.push(c);
    }
    pieces.push(piece);
    pieces
}
