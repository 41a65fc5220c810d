//! The last check on a post's final markdown: no `@channel`, `@all` or `@here` the
//! Mattermost server would turn into a notification for the whole channel.
//!
//! The server (`getExplicitMentions` and the standard mention parser in
//! `server/channels/app`) does not look at the markdown as written. It parses it with
//! its own markdown package and reads only the text of paragraphs and link labels:
//! backslash escapes and character references are decoded first, while code spans,
//! code blocks, autolinked URLs and link destinations are skipped. It parses no
//! emphasis, so `*`, `_` and `~` stay in that text. The text is cut into words at
//! every character that is not a letter, a digit or one of `: . - _ @`, and `: . - _`
//! are trimmed off both ends of a word (or split it) before `@channel`, `@all` and
//! `@here` are looked for, in any case. So `\@all`, `_@all_`, `__@all__`, `-_@here`
//! and `@channel_` all notify, and so does `@all` rendered from text whose halves
//! carried styles markdown cannot show (colours, underline).
//!
//! This module reads the final markdown the way the server does and puts U+200B
//! ZERO WIDTH SPACE right after the `@` of every such word. The server splits words
//! there (a format character is neither letter nor digit) and neither the server nor
//! markdown removes it, while readers still see the same text. Where the reading
//! here is simpler than the server's it errs towards guarding (every character
//! outside ASCII ends a word; `&name;` references it does not know read as written,
//! and so do link titles). `@all_hands` and `@all-staff` stay intact: the server
//! reads them as people. URLs the server autolinks are left intact (they are never
//! mentions), as are code spans and code blocks. `@everyone`, `@room` and Slack's
//! `<!channel>` mean nothing to Mattermost and are left as written.

/// Inserted after the `@` of a mass mention.
pub const BREAK: char = '\u{200B}';

/// The words after `@` that notify a whole Mattermost channel.
const MASS_WORDS: [&str; 3] = ["channel", "here", "all"];

/// URL schemes the server autolinks (its markdown package's `DefaultURLSchemes`).
const AUTOLINK_SCHEMES: [&str; 6] = ["http", "https", "ftp", "mailto", "tel", "gemini"];

/// `markdown` with U+200B after the `@` of every mass mention the server would see.
pub fn guard(markdown: &str) -> String {
    let at = break_points(markdown);
    if at.is_empty() {
        return markdown.to_owned();
    }
    let mut out = String::with_capacity(markdown.len() + at.len() * BREAK.len_utf8());
    let mut copied = 0;
    for point in at {
        out.push_str(&markdown[copied..point]);
        out.push(BREAK);
        copied = point;
    }
    out.push_str(&markdown[copied..]);
    out
}

/// Whether the server would notify the whole channel for this message.
pub fn has_mass_mention(markdown: &str) -> bool {
    !break_points(markdown).is_empty()
}

/// Byte offsets (ascending) just after each `@` that starts a mass mention.
fn break_points(markdown: &str) -> Vec<usize> {
    if !markdown.contains(['@', '&']) {
        return Vec::new();
    }
    let mut points = Vec::new();
    for (start, end) in text_regions(markdown) {
        let seen = read_inlines(&markdown[start..end], start);
        points.extend(mass_mentions(&seen));
    }
    points
}

/// The byte ranges of the message outside fenced code blocks (which the server
/// never reads for mentions).
fn text_regions(markdown: &str) -> Vec<(usize, usize)> {
    let mut regions = Vec::new();
    let mut region_start = 0;
    let mut fence: Option<(char, usize)> = None;
    let mut offset = 0;
    for line in markdown.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        match fence {
            Some((mark, len)) => {
                if closes_fence(line, mark, len) {
                    fence = None;
                    region_start = offset;
                }
            }
            None => {
                if let Some(opened) = opens_fence(line) {
                    regions.push((region_start, line_start));
                    fence = Some(opened);
                }
            }
        }
    }
    if fence.is_none() {
        regions.push((region_start, markdown.len()));
    }
    regions.retain(|(start, end)| start < end);
    regions
}

/// A fence line: up to three spaces, then three or more backticks (with none
/// after them) or tildes.
fn opens_fence(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let mark = rest.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let len = rest.chars().take_while(|&c| c == mark).count();
    if len < 3 || (mark == '`' && rest[len..].contains('`')) {
        return None;
    }
    Some((mark, len))
}

fn closes_fence(line: &str, mark: char, open_len: usize) -> bool {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let len = rest.chars().take_while(|&c| c == mark).count();
    indent <= 3 && len >= open_len && rest[len..].trim().is_empty()
}

/// One character of the text the server reads, and the byte offset just after
/// where it is written in the markdown. `None` separates runs of text (a code span,
/// a link destination, an autolink, a line break).
type Seen = Option<(char, usize)>;

/// Reads inline markdown in the order the server's inline parser does.
fn read_inlines(raw: &str, base: usize) -> Vec<Seen> {
    let bytes = raw.as_bytes();
    let mut seen: Vec<Seen> = Vec::with_capacity(raw.len());
    // Open `[` / `![`: true while still able to become a link.
    let mut openers: Vec<bool> = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        let c = raw[pos..].chars().next().expect("in bounds");
        match c {
            '\n' | '\r' => {
                seen.push(None);
                // A blank line ends the paragraph, and with it every open bracket.
                if raw[pos + 1..]
                    .trim_start_matches([' ', '\t'])
                    .starts_with(['\n', '\r'])
                {
                    openers.clear();
                }
                pos += 1;
            }
            '\\' => {
                if bytes.get(pos + 1).is_some_and(u8::is_ascii_punctuation) {
                    seen.push(Some((bytes[pos + 1] as char, base + pos + 2)));
                    pos += 2;
                } else {
                    seen.push(Some(('\\', base + pos + 1)));
                    pos += 1;
                }
            }
            '`' => pos = read_backticks(raw, pos, base, &mut seen),
            '&' => match character_reference(&raw[pos..]) {
                Some((decoded, len)) => {
                    seen.push(Some((decoded, base + pos + len)));
                    pos += len;
                }
                None => {
                    seen.push(Some(('&', base + pos + 1)));
                    pos += 1;
                }
            },
            '[' => {
                openers.push(true);
                seen.push(Some(('[', base + pos + 1)));
                pos += 1;
            }
            '!' if bytes.get(pos + 1) == Some(&b'[') => {
                openers.push(true);
                seen.push(Some(('!', base + pos + 1)));
                seen.push(Some(('[', base + pos + 2)));
                pos += 2;
            }
            ']' => {
                let link_end = match openers.pop() {
                    Some(true) => inline_destination_end(raw, pos + 1),
                    _ => None,
                };
                seen.push(Some((']', base + pos + 1)));
                match link_end {
                    Some(end) => {
                        // Brackets before a link cannot become links any more.
                        openers.iter_mut().for_each(|open| *open = false);
                        seen.push(None);
                        pos = end;
                    }
                    None => pos += 1,
                }
            }
            ':' | 'w' | 'W' if openers.iter().all(|open| !open) => {
                let link = if c == ':' {
                    url_autolink(raw, pos)
                } else {
                    www_autolink(raw, pos)
                };
                match link {
                    Some((start, end)) => {
                        // The scheme was read as text before the colon was reached.
                        while matches!(seen.last(), Some(Some((_, at))) if *at > base + start) {
                            seen.pop();
                        }
                        seen.push(None);
                        pos = end;
                    }
                    None => {
                        seen.push(Some((c, base + pos + c.len_utf8())));
                        pos += c.len_utf8();
                    }
                }
            }
            c => {
                seen.push(Some((c, base + pos + c.len_utf8())));
                pos += c.len_utf8();
            }
        }
    }
    seen
}

/// A code span from `pos` (a run of backticks closed by a run of the same length)
/// is skipped; an unclosed run is text. Returns where reading goes on.
fn read_backticks(raw: &str, pos: usize, base: usize, seen: &mut Vec<Seen>) -> usize {
    let count = raw[pos..].bytes().take_while(|&b| b == b'`').count();
    let fence = &raw[pos..pos + count];
    let mut search = pos + count;
    while let Some(found) = raw[search..].find(fence) {
        let after = search + found + count;
        if raw.as_bytes().get(after) == Some(&b'`') {
            search = after + raw[after..].bytes().take_while(|&b| b == b'`').count();
            continue;
        }
        seen.push(None);
        return after;
    }
    for i in 0..count {
        seen.push(Some(('`', base + pos + i + 1)));
    }
    pos + count
}

/// `&...;` the server decodes to a character that could be part of a mention:
/// numeric references, and the named ones for `@ _ . : -`. Others read as written
/// (`&` and `;` separate words either way). Returns the character and the length.
fn character_reference(text: &str) -> Option<(char, usize)> {
    let semicolon = text.find(';')?;
    let name = &text[1..semicolon];
    let decoded = if let Some(number) = name.strip_prefix('#') {
        let value = match number.strip_prefix(['x', 'X']) {
            Some(hex) if (1..=8).contains(&hex.len()) => u32::from_str_radix(hex, 16).ok()?,
            Some(_) => return None,
            None if (1..=8).contains(&number.len())
                && number.bytes().all(|b| b.is_ascii_digit()) =>
            {
                number.parse().ok()?
            }
            None => return None,
        };
        char::from_u32(value)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{FFFD}')
    } else {
        match name {
            "commat" => '@',
            "lowbar" | "UnderBar" => '_',
            "period" => '.',
            "colon" => ':',
            "hyphen" | "dash" => '\u{2010}',
            _ => return None,
        }
    };
    Some((decoded, semicolon + 1))
}

/// Where an inline link's `(destination)` that starts at `pos` ends (after the
/// `)`), if one does. Titles are not read: without one understood, the text after
/// `]` is read as text, which can only guard more.
fn inline_destination_end(raw: &str, pos: usize) -> Option<usize> {
    let bytes = raw.as_bytes();
    if bytes.get(pos) != Some(&b'(') {
        return None;
    }
    let mut i = pos + 1;
    while bytes
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n'))
    {
        i += 1;
    }
    if bytes.get(i) == Some(&b'<') {
        i += 1;
        loop {
            match bytes.get(i)? {
                b'\\' => i += 2,
                b'>' => break,
                b'<' | b'\n' | b'\r' => return None,
                _ => i += 1,
            }
        }
        i += 1;
    } else {
        let mut depth = 0usize;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'\\' if bytes.get(i + 1).is_some_and(u8::is_ascii_punctuation) => i += 2,
                b'(' => {
                    depth += 1;
                    i += 1;
                }
                b')' if depth == 0 => break,
                b')' => {
                    depth -= 1;
                    i += 1;
                }
                b if b.is_ascii_whitespace() || b.is_ascii_control() => break,
                _ => i += 1,
            }
        }
        if depth != 0 {
            return None;
        }
    }
    while bytes
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n'))
    {
        i += 1;
    }
    (bytes.get(i) == Some(&b')')).then_some(i + 1)
}

/// The range of the URL the server autolinks around the `:` at `colon`, if any:
/// an allowed scheme, `://`, a host with no `_`, then everything up to whitespace,
/// less the trailing punctuation it trims.
fn url_autolink(raw: &str, colon: usize) -> Option<(usize, usize)> {
    let bytes = raw.as_bytes();
    if colon == 0 || !raw[colon..].starts_with("://") || raw.len() - colon < 4 {
        return None;
    }
    let mut start = colon - 1;
    while start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
        start -= 1;
    }
    let scheme = &raw[start..colon];
    if !AUTOLINK_SCHEMES
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(scheme))
    {
        return None;
    }
    let host = &raw[colon + 3..];
    if !host.chars().next().is_some_and(is_host_char) || host_has_underscore(host) {
        return None;
    }
    let end = colon + 3 + host.find(is_ascii_space).unwrap_or(host.len());
    trimmed_link(raw, start, end)
}

/// `www.` links: after whitespace or one of `*_~)<(>`, `www` (up to three digits)
/// and a dot, and a host with a dot and no `_`.
fn www_autolink(raw: &str, pos: usize) -> Option<(usize, usize)> {
    let bytes = raw.as_bytes();
    // The server does not look before the second byte of a paragraph; looking
    // always can only guard more.
    if pos > 0 {
        let before = bytes[pos - 1];
        if !(before.is_ascii_whitespace() || b"*_~)<(>".contains(&before)) {
            return None;
        }
    }
    let rest = &raw[pos..];
    let digits = rest
        .get(3..)
        .filter(|_| rest.starts_with("www"))?
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits > 3 || rest.as_bytes().get(3 + digits) != Some(&b'.') || rest.len() < 4 {
        return None;
    }
    if host_has_underscore(rest) {
        return None;
    }
    let end = pos + rest.find(is_ascii_space).unwrap_or(rest.len());
    trimmed_link(raw, pos, end)
}

fn is_ascii_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{B}' | '\u{C}')
}

/// Neither whitespace nor punctuation. Outside ASCII only letters and digits
/// count, which can only make fewer links (and so guard more).
fn is_host_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "$+<=>^`|~".contains(c)
    } else {
        c.is_alphanumeric()
    }
}

/// Whether the host part the server checks has a `_` (then it makes no link).
/// The part is taken generously (up to whitespace or ASCII punctuation other than
/// `-`, `.` and `_`): finding an underscore the server would not only guards more.
fn host_has_underscore(text: &str) -> bool {
    text.chars()
        .skip(1)
        .take_while(|&c| {
            !(is_ascii_space(c) || (c.is_ascii_punctuation() && !"-._$+<=>^`|~".contains(c)))
        })
        .any(|c| c == '_')
}

/// The end of a link from `start` to `end` once the server has cut it at `<`/`>`
/// and trimmed trailing punctuation, unmatched `)` and a trailing entity.
fn trimmed_link(raw: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let chars: Vec<(usize, char)> = raw[start..end].char_indices().collect();
    let mut len = chars
        .iter()
        .position(|&(_, c)| c == '<' || c == '>')
        .unwrap_or(chars.len());
    let count =
        |len: usize, wanted: char| chars[..len].iter().filter(|&&(_, c)| c == wanted).count();
    while len > 0 {
        let last = chars[len - 1].1;
        match last {
            '?' | '!' | '.' | ',' | ':' | '*' | '_' | '~' | '\'' | '"' => len -= 1,
            ';' => {
                let mut back = len.saturating_sub(2);
                while back > 0 && chars[back].1.is_ascii_alphabetic() {
                    back -= 1;
                }
                if back + 2 < len && chars[back].1 == '&' {
                    len = back;
                } else {
                    len -= 1;
                }
            }
            ')' if count(len, ')') > count(len, '(') => len -= 1,
            _ => break,
        }
    }
    let end = chars.get(len).map_or(end, |&(i, _)| start + i);
    (end > start).then_some((start, end))
}

/// The break points of the mass mentions in what the server reads.
///
/// A word is a run of letters, digits and `: . - _ @`. The server trims `: . - _`
/// off its start, and then finds `@all` if the word is `@all` followed only by
/// `. - : _` (trimmed one by one off the end). A word that does not start with `@`
/// is also split at `. - :`, so `x.@all` and `x.@all-y` notify too, but `x_@all`,
/// `a@all`, `@all_hands` and `@all-staff` do not (the last two may be people).
/// Characters outside ASCII count as separators here, which can only guard more.
fn mass_mentions(seen: &[Seen]) -> Vec<usize> {
    let char_at = |at: usize| seen.get(at).copied().flatten().map(|(c, _)| c);
    let in_word = |c: char| c.is_ascii_alphanumeric() || ":.-_@".contains(c);
    let mut points = Vec::new();
    for (i, entry) in seen.iter().enumerate() {
        let Some(('@', after_at)) = *entry else {
            continue;
        };
        let Some(word) = MASS_WORDS.iter().find(|word| {
            word.chars().enumerate().all(|(k, wanted)| {
                char_at(i + 1 + k).is_some_and(|c| c.eq_ignore_ascii_case(&wanted))
            })
        }) else {
            continue;
        };
        let before: Vec<char> = (0..i)
            .rev()
            .map_while(|at| char_at(at).filter(|&c| in_word(c)))
            .collect();
        let after: Vec<char> = (i + 1 + word.len()..seen.len())
            .map_while(|at| char_at(at).filter(|&c| in_word(c)))
            .collect();
        let starts_word = before.iter().all(|c| ":.-_".contains(*c));
        let notifies = if starts_word {
            after.iter().all(|c| ".-:_".contains(*c))
        } else {
            before.first().is_some_and(|c| ".-:".contains(*c))
                && after.first().is_none_or(|c| ".-:".contains(*c))
        };
        if notifies {
            points.push(after_at);
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(markdown: &str) -> String {
        let once = guard(markdown);
        assert_eq!(guard(&once), once, "guarding twice changes {markdown:?}");
        assert!(!has_mass_mention(&once), "{once:?}");
        once
    }

    #[test]
    fn breaks_what_the_server_reads_as_a_mass_mention() {
        for (markdown, sent) in [
            ("@all", "@\u{200B}all"),
            ("ping @HERE now", "ping @\u{200B}HERE now"),
            ("@channel\\_", "@\u{200B}channel\\_"),
            ("\\_\\_@all\\_\\_", "\\_\\_@\u{200B}all\\_\\_"),
            ("-\\_@here", "-\\_@\u{200B}here"),
            ("\\@all", "\\@\u{200B}all"),
            ("**@all**", "**@\u{200B}all**"),
            ("x.@all", "x.@\u{200B}all"),
            ("x.@all-y", "x.@\u{200B}all-y"),
            ("@here's", "@\u{200B}here's"),
            ("@all\\_:", "@\u{200B}all\\_:"),
            ("&#64;all", "&#64;\u{200B}all"),
            ("&commat;here", "&commat;\u{200B}here"),
            (
                "[@all](https://x.example/)",
                "[@\u{200B}all](https://x.example/)",
            ),
            // No autolinks inside a link's label, and none with `_` in the host.
            (
                "[see https://social.example/@all](https://y.example/)",
                "[see https://social.example/@\u{200B}all](https://y.example/)",
            ),
            (
                "https://my_host.example/@all",
                "https://my_host.example/@\u{200B}all",
            ),
            // A code span that never closes is text.
            ("`@all", "`@\u{200B}all"),
            ("```\n@all\n```\n@here", "```\n@all\n```\n@\u{200B}here"),
        ] {
            assert_eq!(guarded(markdown), sent, "{markdown:?}");
        }
    }

    #[test]
    fn leaves_alone_what_notifies_no_channel() {
        for markdown in [
            "@alice and @all_hands, @all-staff and @here.now",
            "a@all x\\_@all bob@here.example",
            "`@all` and ``x `@here` y``",
            "```\n@channel\n```",
            "~~~\n@channel\n~~~",
            "https://social.example/@all",
            "see <https://social.example/@all>, now",
            "www.social.example/@here!",
            "[x](https://social.example/@all)",
            "@everyone @room <!channel> \\<!here>",
            "@\u{200B}all",
        ] {
            assert_eq!(guarded(markdown), markdown);
        }
    }
}
