//! A message's final parts: its lines and code blocks written and guarded, then
//! packed into parts of at most the byte budget.
//!
//! Cutting the finished mrkdwn anywhere would break an entity (`&am` + `p;` shows
//! both halves), a link, or a pair of style markers (each half then shows a stray
//! `*`). So whole lines go together where they fit; a longer line is cut between
//! its characters, preferring a space (as `split_to_byte_budget` does), and each
//! part of it is written on its own, its styles closed at the end and reopened in
//! the next part; a code block is cut between its lines and each part gets its own
//! fences. Only a single character whose markup is wider than the budget (a
//! literal marker or a line's first `>` with its zero-width spaces, in a budget
//! under seven bytes) is cut inside its markup, between the zero-width spaces and
//! the character; an entity wider than the budget goes whole, so no part ever has
//! a `<` the renderer did not mean. (`switchboard_sdk::text::split_to_byte_budget`
//! cuts finished text anywhere, so it is not used here; the space rule is the
//! same.) Every line is guarded before it is measured, so the guard the core runs
//! on the final parts has nothing left to add.

use super::controls::escape;
use super::line::{Block, Piece, blocks, plain_pieces};
use super::mentions::guard;
use super::render::{break_fences, write_line, written_lens};
use switchboard_sdk::RichText;

/// `"```\n"` and `"\n```"`.
const FENCES: usize = 8;

/// Code parts narrower than this go as plain text lines instead: the fences would
/// take most of the part.
const MIN_CODE_WIDTH: usize = 8;

/// The message's final mrkdwn: one part, or parts of at most `budget` bytes (an
/// entity wider than the budget goes alone).
pub(super) fn parts(rich: &RichText, budget: Option<usize>) -> Vec<String> {
    let blocks = blocks(rich);
    let Some(budget) = budget else {
        let written: Vec<String> = blocks
            .iter()
            .map(|block| match block {
                Block::Line(pieces) => line(pieces),
                Block::Code(code) => fenced(&code_lines(code).join("\n")),
            })
            .collect();
        return vec![written.join("\n")];
    };
    let budget = budget.max(1);
    let mut packer = Packer {
        budget,
        parts: Vec::new(),
        current: None,
    };
    for block in &blocks {
        match block {
            Block::Line(pieces) => add_line(&mut packer, pieces),
            Block::Code(code) => add_code(&mut packer, code),
        }
    }
    packer.finish()
}

fn line(pieces: &[Piece]) -> String {
    guard(&write_line(pieces))
}

/// Collects lines into parts.
struct Packer {
    budget: usize,
    parts: Vec<String>,
    current: Option<String>,
}

impl Packer {
    /// Adds `text` on a line of its own after what the current part has, when
    /// `new_line` and it fits; otherwise starts a new part with it (the second and
    /// later pieces of a long line start parts, never lines).
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

    /// The parts, without blank ones (Slack refuses a message with no text).
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
    if text_len(pieces) <= budget {
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
        let chunks = if let Some(fit) = longest_fitting(rest, budget) {
            let (len, written) = match prefer_break(rest, fit.0) {
                len if len < fit.0 => Some((len, line(&rest[..len])))
                    .filter(|(_, written)| written.len() <= budget)
                    .unwrap_or(fit),
                _ => fit,
            };
            start += len;
            vec![written]
        } else if let Some(plain) = rest[0].degraded() {
            // A link or a styled character alone is too wide: try it as plain text.
            pieces.splice(start..start + 1, plain);
            continue;
        } else {
            let written = line(&rest[..1]);
            start += 1;
            cut_written(&written, budget)
        };
        for chunk in chunks {
            packer.add(chunk, first);
            first = false;
        }
    }
}

/// The bytes of the pieces' own text: no line of them writes fewer.
fn text_len(pieces: &[Piece]) -> usize {
    pieces.iter().map(Piece::text_len).sum()
}

/// The most pieces from the start of `pieces` whose line fits `budget`, with that
/// line; `None` when not even the first does. Each write costs as much as the part,
/// so rather than a binary search over the whole budget: no more pieces fit than
/// hold the budget's worth of text (nothing writes less than its text); the first
/// guess adds up what each piece writes (exact without styles), and a guess that
/// writes too long gives back pieces about as wide as it went over; a binary search
/// then closes the gap that is left, until the part is within a sixty-fourth of
/// full.
fn longest_fitting(pieces: &[Piece], budget: usize) -> Option<(usize, String)> {
    let mut text = 0;
    let most = pieces
        .iter()
        .take_while(|piece| {
            text += piece.text_len();
            text <= budget
        })
        .count();
    let lens = written_lens(&pieces[..(most + 1).min(pieces.len())]);
    let mut written_len = 0;
    let mut guess = lens
        .iter()
        .take_while(|len| {
            written_len += **len;
            written_len <= budget
        })
        .count()
        .min(most);
    let mut fit: Option<(usize, String)> = None;
    // The fewest pieces known not to fit.
    let mut too_many = most + 1;
    for _ in 0..4 {
        if guess == 0 {
            break;
        }
        let written = line(&pieces[..guess]);
        if written.len() <= budget {
            fit = Some((guess, written));
            break;
        }
        too_many = guess;
        let mut over = written.len() - budget;
        while guess > 0 && over > 0 {
            guess -= 1;
            over = over.saturating_sub(lens[guess]);
        }
    }
    // A part within this much of full is full enough: no more writes for it.
    let enough = budget - budget / 64;
    let mut fits = fit.as_ref().map_or(0, |(len, _)| *len);
    while too_many - fits > 1
        && fit
            .as_ref()
            .is_none_or(|(_, written)| written.len() < enough)
    {
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

/// Where to end a part that could take `cut` pieces: as `first_piece_len` does,
/// before the whitespace that keeps the part over half full, so that the space
/// starts the next part (servers keep leading spaces, not trailing ones).
fn prefer_break(pieces: &[Piece], cut: usize) -> usize {
    if cut >= pieces.len() {
        return cut;
    }
    let half = cut / 2;
    let space = if pieces[cut].is_break() {
        Some(cut)
    } else {
        (half + 1..cut).rev().find(|&i| pieces[i].is_break())
    };
    let Some(mut start) = space else {
        return cut;
    };
    while start > 0 && pieces[start - 1].is_break() {
        start -= 1;
    }
    if start == 0 { cut } else { start }
}

/// A code block's lines as written inside fences: escaped, with no run of three
/// backticks (it would end the block), guarded.
fn code_lines(code: &str) -> Vec<String> {
    code.trim_end_matches(['\n', '\r'])
        .split('\n')
        .map(|line| guard(&break_fences(&escape(&line.replace('\r', "")))))
        .collect()
}

/// The block's fences around `content`; the line breaks inside them are not part
/// of the code (the parser drops them again).
fn fenced(content: &str) -> String {
    if content.is_empty() {
        "```\n```".to_owned()
    } else {
        format!("```\n{content}\n```")
    }
}

fn add_code(packer: &mut Packer, code: &str) {
    let budget = packer.budget;
    let lines = code_lines(code);
    let whole = fenced(&lines.join("\n"));
    if whole.len() <= budget {
        return packer.add(whole, true);
    }
    let width = budget.saturating_sub(FENCES);
    if width < MIN_CODE_WIDTH {
        for line in code.trim_end_matches(['\n', '\r']).split('\n') {
            add_line(packer, &plain_pieces(&line.replace('\r', "")));
        }
        return;
    }
    let mut chunk: Vec<String> = Vec::new();
    let mut len = 0;
    let mut first = true;
    for line in &lines {
        // The pieces of a line wider than a part never share one: each is full.
        for piece in cut_written(line, width) {
            let joined = if chunk.is_empty() {
                piece.len()
            } else {
                len + 1 + piece.len()
            };
            if joined > width {
                packer.add(fenced(&chunk.join("\n")), first);
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
        packer.add(fenced(&chunk.join("\n")), first);
    }
}

/// Written text cut into pieces of at most `width` bytes (a wider entity or
/// character alone), never inside an entity (every `&` in escaped text starts one)
/// or a character.
fn cut_written(line: &str, width: usize) -> Vec<String> {
    if line.len() <= width {
        return vec![line.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let len = if c == '&' {
            rest.find(';').map_or(1, |end| end + 1)
        } else {
            c.len_utf8()
        };
        if !piece.is_empty() && piece.len() + len > width {
            pieces.push(std::mem::take(&mut piece));
        }
        piece.push_str(&rest[..len]);
        rest = &rest[len..];
    }
    pieces.push(piece);
    pieces
}
