//! The last check on what a relayed Matrix message says: no `@room` that could
//! notify the whole room.
//!
//! Matrix has one room-wide mention, `@room`. Every message the bridge sends carries
//! `m.mentions: {}` (see `outbound.rs`), which under the intentional-mentions rules
//! (Matrix 1.7) says it mentions nobody, and servers that know those rules skip the
//! legacy body match for such events. Servers and clients that predate them still
//! apply the legacy `.m.rule.roomnotif` rule: `@room` in `content.body`, in any
//! case, as a word (Synapse's matcher: `@room` not followed by a word character;
//! what comes before does not matter, `x@room` matches). So `body` is guarded by that
//! rule, and `formatted_body` by the same rule on the text a reader sees (tags such
//! as `<b>@</b>room` do not split it), so both show the same.
//!
//! Guarding puts U+200B ZERO WIDTH SPACE right after the `@`. URLs are left intact
//! (`https://social.example/@room` stays clickable: `m.mentions` covers it), and so
//! is code in `formatted_body`. Other networks' words (`@channel`, `@here`, `@all`,
//! `@everyone`) mean nothing to Matrix and are left as written.

use switchboard_sdk::text::find_url;

/// Inserted after the `@` of a room mention.
pub const BREAK: char = '\u{200B}';

const ROOM: &str = "room";

/// A character of the text checked and the byte offset just after it in the
/// source; `None` is something that is not checked (code, a URL, a line break).
type Seen = Option<(char, usize)>;

/// The plain `body` with every `@room` the legacy push rule would match broken.
pub fn guard_body(body: &str) -> String {
    if !body.contains('@') {
        return body.to_owned();
    }
    let seen: Vec<Seen> = body
        .char_indices()
        .map(|(i, c)| Some((c, i + c.len_utf8())))
        .collect();
    insert_breaks(body, &room_mentions(&without_urls(seen)))
}

/// `formatted_body` with every `@room` a reader would see broken, outside code.
pub fn guard_html(html: &str) -> String {
    if !html.contains(['@', '&']) {
        return html.to_owned();
    }
    insert_breaks(html, &room_mentions(&without_urls(read_html(html))))
}

/// Whether a legacy push rule would notify the room for this `body`.
pub fn body_notifies_room(body: &str) -> bool {
    guard_body(body) != body
}

fn insert_breaks(text: &str, points: &[usize]) -> String {
    let mut out = String::with_capacity(text.len() + points.len() * BREAK.len_utf8());
    let mut copied = 0;
    for &point in points {
        out.push_str(&text[copied..point]);
        out.push(BREAK);
        copied = point;
    }
    out.push_str(&text[copied..]);
    out
}

/// The text of the HTML as shown: tags of inline styles are transparent, other
/// tags separate, character references decoded, code not checked.
fn read_html(html: &str) -> Vec<Seen> {
    let mut seen = Vec::with_capacity(html.len());
    let mut in_code = 0usize;
    let mut pos = 0;
    while pos < html.len() {
        let rest = &html[pos..];
        let c = rest.chars().next().expect("in bounds");
        if c == '<'
            && let Some(len) = rest.find('>').map(|i| i + 1)
        {
            let tag = &rest[1..len - 1];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            match name.as_str() {
                "code" | "pre" if closing => in_code = in_code.saturating_sub(1),
                "code" | "pre" => in_code += 1,
                "b" | "strong" | "i" | "em" | "u" | "del" | "s" | "strike" | "a" | "span"
                | "font" | "sub" | "sup" => {}
                _ => seen.push(None),
            }
            pos += len;
            continue;
        }
        let (shown, len) = match c {
            '&' => character_reference(rest).unwrap_or(('&', 1)),
            c => (c, c.len_utf8()),
        };
        seen.push((in_code == 0).then_some((shown, pos + len)));
        pos += len;
    }
    seen
}

/// `&amp;`-style references a Matrix client decodes (numeric and the few named
/// ones the renderer writes; any other reads as written, which only guards more).
fn character_reference(text: &str) -> Option<(char, usize)> {
    let semicolon = text.find(';').filter(|&i| i <= 12)?;
    let name = &text[1..semicolon];
    let decoded = if let Some(number) = name.strip_prefix('#') {
        let value = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        char::from_u32(value)?
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => '\u{A0}',
            "commat" => '@',
            _ => return None,
        }
    };
    Some((decoded, semicolon + 1))
}

/// Marks the characters of every URL in the text as not checked.
fn without_urls(mut seen: Vec<Seen>) -> Vec<Seen> {
    // A line break stands in for what is not checked, so no URL runs across it.
    let shown: String = seen.iter().map(|s| s.map_or('\n', |(c, _)| c)).collect();
    let starts: Vec<usize> = shown.char_indices().map(|(byte, _)| byte).collect();
    let mut from = 0;
    while let Some(found) = find_url(&shown[from..]) {
        let (start, end) = (from + found.start, from + found.end);
        let first = starts.partition_point(|&byte| byte < start);
        let last = starts.partition_point(|&byte| byte < end);
        seen[first..last].iter_mut().for_each(|s| *s = None);
        from = end;
    }
    seen
}

/// Break points (after the `@`) of each `@room` not followed by a character that
/// continues a word. Outside ASCII anything counts as ending the word, which only
/// guards more.
fn room_mentions(seen: &[Seen]) -> Vec<usize> {
    let mut points = Vec::new();
    for (i, entry) in seen.iter().enumerate() {
        let Some(('@', after_at)) = *entry else {
            continue;
        };
        let spelled = ROOM.chars().enumerate().all(|(k, wanted)| {
            seen.get(i + 1 + k)
                .copied()
                .flatten()
                .is_some_and(|(c, _)| c.eq_ignore_ascii_case(&wanted))
        });
        let word_goes_on = seen
            .get(i + 1 + ROOM.len())
            .copied()
            .flatten()
            .is_some_and(|(c, _)| c.is_ascii_alphanumeric() || c == '_');
        if spelled && !word_goes_on {
            points.push(after_at);
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_guarded_by_the_legacy_rule_except_in_urls() {
        for (body, sent) in [
            ("@room", "@\u{200B}room"),
            ("x@ROOM: hi", "x@\u{200B}ROOM: hi"),
            ("_@room.", "_@\u{200B}room."),
            ("@room_ @roomy", "@room_ @roomy"),
            (
                "https://social.example/@room",
                "https://social.example/@room",
            ),
            (
                "@all @channel @here @everyone",
                "@all @channel @here @everyone",
            ),
        ] {
            assert_eq!(guard_body(body), sent, "{body:?}");
            assert_eq!(guard_body(sent), sent);
        }
    }

    #[test]
    fn html_is_guarded_as_read_outside_code_and_urls() {
        for (html, sent) in [
            ("<strong>@</strong>room", "<strong>@\u{200B}</strong>room"),
            ("@<em>room</em>!", "@\u{200B}<em>room</em>!"),
            ("&#64;room", "&#64;\u{200B}room"),
            ("<code>@room</code>", "<code>@room</code>"),
            (
                "<pre><code>@room\n</code></pre>",
                "<pre><code>@room\n</code></pre>",
            ),
            (
                "<a href=\"https://x.example/@room\">https://x.example/@room</a>",
                "<a href=\"https://x.example/@room\">https://x.example/@room</a>",
            ),
            ("@room<br>@room_", "@\u{200B}room<br>@room_"),
        ] {
            assert_eq!(guard_html(html), sent, "{html:?}");
        }
    }
}
