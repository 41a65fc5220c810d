//! The scanners behind `parse.rs`: where a bare link ends, and where each style
//! that may start at a marker closes (simple-markdown's regular expressions,
//! written out by hand).

/// Where a style's content lies and how much of the source the whole takes.
pub(super) type Inner = (usize, usize, usize);

/// The length of the bare link at the start of `text`, if one starts there.
pub(super) fn url_len(text: &str) -> Option<usize> {
    let scheme = if text.starts_with("https://") {
        8
    } else if text.starts_with("http://") {
        7
    } else {
        return None;
    };
    let run = text[scheme..]
        .find(|c: char| c.is_whitespace() || c == '<')
        .map_or(text.len(), |len| scheme + len);
    let mut url = &text[..run];
    while url.ends_with(['.', ',', ':', ';', '"', '\'', ')', ']']) {
        url = &url[..url.len() - 1];
    }
    (url[scheme..].chars().count() >= 2).then_some(url.len())
}

/// Whether `url` is an http(s) address with something after the scheme: the only
/// links Discord makes.
pub(super) fn is_http(url: &str) -> bool {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty())
}

/// `*x*` or `_x_` at `i`.
pub(super) fn em(src: &str, i: usize, end: usize) -> Option<Inner> {
    let marker = src[i..].chars().next()?;
    let mut j = i + 1;
    let mut items = 0;
    if marker == '*' && src[j..end].chars().next().is_none_or(char::is_whitespace) {
        return None;
    }
    loop {
        let c = src[j..end].chars().next()?;
        let double = if marker == '*' { "**" } else { "__" };
        if c == marker {
            let next = src[j + 1..end].chars().next();
            let closes = items > 0
                && match marker {
                    '*' => next != Some('*'),
                    _ => next.is_none_or(|n| !(n.is_ascii_alphanumeric() || n == '_')),
                };
            if closes {
                return Some((i + 1, j, j + 1 - i));
            }
            if !src[j..end].starts_with(double) {
                return None;
            }
            j += 2;
        } else if c == '\\' {
            j += 1 + src[j + 1..end].chars().next()?.len_utf8();
        } else if c.is_whitespace() && marker == '*' {
            j += src[j..end].len() - src[j..end].trim_start().len();
            let n = src[j..end].chars().next()?;
            if n == '\\' {
                j += 1 + src[j + 1..end].chars().next()?.len_utf8();
            } else if src[j..end].starts_with("**") {
                j += 2;
            } else if n == '*' {
                return None;
            } else {
                j += n.len_utf8();
            }
        } else {
            j += c.len_utf8();
        }
        items += 1;
    }
}

/// `**x**` or `__x__` at `i`: the first closing marker not followed by `after`.
pub(super) fn pair(src: &str, i: usize, end: usize, marker: &str, after: char) -> Option<Inner> {
    if !src[i..end].starts_with(marker) {
        return None;
    }
    let mut j = i + marker.len();
    let mut first = true;
    loop {
        let c = src[j..end].chars().next()?;
        if !first
            && src[j..end].starts_with(marker)
            && !src[j + marker.len()..end].starts_with(after)
        {
            return Some((i + marker.len(), j, j + marker.len() - i));
        }
        j += c.len_utf8();
        if c == '\\' {
            j += src[j..end].chars().next()?.len_utf8();
        }
        first = false;
    }
}

/// `~~x~~` or `||x||` at `i`: the first closing pair (not followed by `after`),
/// escaped or not.
pub(super) fn pair_lazy(
    src: &str,
    i: usize,
    end: usize,
    marker: &str,
    after: Option<char>,
) -> Option<Inner> {
    if !src[i..end].starts_with(marker) {
        return None;
    }
    let start = i + marker.len();
    let mut j = start + src[start..end].chars().next()?.len_utf8();
    loop {
        let rest = &src[j..end];
        if rest.starts_with(marker)
            && after.is_none_or(|after| !rest[marker.len()..].starts_with(after))
        {
            return Some((start, j, j + marker.len() - i));
        }
        j += rest.chars().next()?.len_utf8();
    }
}
