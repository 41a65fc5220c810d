//! Each destination's rule for "this text notifies a whole room (or a person)",
//! written from the servers' code and public docs, independently of the adapters'
//! guards, so a test can prove the guard on the final text a server received.

use regex::Regex;
use std::sync::LazyLock;

/// Whether the Mattermost server would notify the whole channel for `message`: the
/// text its markdown package hands to the mention parser (escapes and numeric
/// references decoded; code blocks, code spans, link destinations and autolinked
/// URLs left out), cut into words and trimmed as `StandardMentionParser` does.
pub fn mattermost_notifies_channel(message: &str) -> bool {
    server_texts(message).iter().any(|text| process_text(text))
}

fn server_texts(message: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut fenced = false;
    for line in message.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            texts.push(String::new());
            continue;
        }
        if fenced {
            continue;
        }
        let mut text = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let rest: String = chars[i..].iter().collect();
            if c == '\\' && chars.get(i + 1).is_some_and(char::is_ascii_punctuation) {
                text.push(chars[i + 1]);
                i += 2;
            } else if c == '`' {
                let run = chars[i..].iter().take_while(|&&c| c == '`').count();
                let fence: String = "`".repeat(run);
                match rest[run..].find(&fence) {
                    Some(end) => {
                        texts.push(std::mem::take(&mut text));
                        i += run + rest[run..][..end].chars().count() + run;
                    }
                    None => {
                        text.push_str(&fence);
                        i += run;
                    }
                }
            } else if c == ']' && chars.get(i + 1) == Some(&'(') {
                let close = rest.find(')').map_or(rest.len(), |end| end + 1);
                texts.push(std::mem::take(&mut text));
                i += rest[..close].chars().count();
            } else if (rest.starts_with("https://") || rest.starts_with("http://"))
                && !text.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '[')
            {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let url = rest[..end]
                    .trim_end_matches(['?', '!', '.', ',', ':', '*', '_', '~', '\'', '"']);
                let url = &url[..url.find(['<', '>']).unwrap_or(url.len())];
                texts.push(std::mem::take(&mut text));
                i += url.chars().count();
            } else if let Some(decoded) = numeric_reference(&rest) {
                text.push(decoded.0);
                i += decoded.1;
            } else {
                text.push(c);
                i += 1;
            }
        }
        texts.push(text);
    }
    texts
}

fn numeric_reference(text: &str) -> Option<(char, usize)> {
    let inner = text.strip_prefix("&#")?;
    let end = inner.find(';')?;
    let digits = &inner[..end];
    let value = match digits.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some((char::from_u32(value)?, end + 3))
}

/// `StandardMentionParser.ProcessText` for the three channel-wide words.
fn process_text(text: &str) -> bool {
    let system = |word: &str| ["@here", "@channel", "@all"].contains(&word.to_lowercase().as_str());
    let exact = |word: &str| ["@here", "@channel", "@all"].contains(&word);
    for word in text.split(|c: char| !(":.-_@".contains(c) || c.is_alphanumeric())) {
        if word.is_empty() || (word.len() > 1 && word.starts_with(':') && word.ends_with(':')) {
            continue;
        }
        let word = word.trim_start_matches([':', '.', '-', '_']);
        if system(word) {
            return true;
        }
        let mut shorter = word;
        while let Some(cut) = shorter.strip_suffix(['.', '-', ':', '_']) {
            shorter = cut;
            if system(shorter) {
                return true;
            }
        }
        let other_mention = !exact(word) && word.starts_with('@');
        if !other_mention
            && word.contains(['.', '-', ':'])
            && word.split(['.', '-', ':']).any(system)
        {
            return true;
        }
    }
    false
}

/// Synapse's word matcher for the legacy `.m.rule.roomnotif` (`@room` in the body).
static ROOM_NOTIFY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|\b|\W)@room(?:\b|\W|$)").expect("valid regex"));

static URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"https?://\S+").expect("valid regex"));

/// Whether a legacy push rule would notify the room for `text`. URLs are left out:
/// `m.mentions: {}` (checked end to end) keeps them quiet, and they must stay intact.
pub fn matrix_notifies_room(text: &str) -> bool {
    ROOM_NOTIFY.is_match(&URL.replace_all(&text.to_lowercase(), " "))
}

/// What a reader sees of `formatted_body`, code left out: tags dropped (they do not
/// split words), the escapes the renderer writes decoded.
pub fn html_text_outside_code(html: &str) -> String {
    let without_code = Regex::new(r"(?s)<code[^>]*>.*?</code>").expect("valid regex");
    let tags = Regex::new(r"<[^>]*>").expect("valid regex");
    let text = without_code.replace_all(html, " ");
    tags.replace_all(&text, "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
        .replace("&#64;", "@")
        .replace("&amp;", "&")
}

/// Whether Slack would ping anyone for `text` as posted: a control sequence
/// (`<!channel>`, `<!here|here>`, `<!subteam^S1>`, `<@U1>`, `<#C1>`) in the raw
/// text (entities such as `&lt;` are shown, never parsed), or a bare `@here`,
/// `@channel` or `@everyone` word, in any case, that `link_names` would resolve.
pub fn slack_pings(text: &str) -> bool {
    static BARE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)(^|[^\w])@(here|channel|everyone)\b").unwrap());
    // A link's address is not read for mentions: `<https://x/@here>`.
    static LINKS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"<(https?|mailto):[^>]*>").unwrap());
    let outside_links = LINKS.replace_all(text, " ");
    ["<!", "<@", "<#"]
        .iter()
        .any(|control| text.contains(control))
        || BARE.is_match(&outside_links)
}

/// Whether Discord could ping anyone for `content` were `allowed_mentions` not
/// sent: `@everyone` or `@here` anywhere (Discord matches them inside words and
/// links too), or a user, role or channel mention `<@1>`, `<@!1>`, `<@&1>`, `<#1>`.
/// A backslash before the `@` would also stop it, but the adapters do not rely on
/// that, so it counts as a ping here.
pub fn discord_pings(content: &str) -> bool {
    static MENTION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"<(@[!&]?|#)\d+>").expect("valid regex"));
    let lower = content.to_lowercase();
    lower.contains("@everyone") || lower.contains("@here") || MENTION.is_match(content)
}
