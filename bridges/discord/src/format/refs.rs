//! Discord's `<...>` references as a message's `content` carries them: users,
//! roles, channels, commands, custom emoji, timestamps and `<url>` links.

/// A name Discord keeps by id (a snowflake), which the adapter looks up before it
/// parses a message: see [`references`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    User(String),
    Role(String),
    Channel(String),
}

/// The names behind ids, as the adapter resolved them; `None` for an id it could
/// not resolve (the parser then shows a placeholder name).
pub trait Names {
    fn user(&self, id: &str) -> Option<String>;
    fn role(&self, id: &str) -> Option<String>;
    fn channel(&self, id: &str) -> Option<String>;
}

/// Names nothing. For reading back what the renderer wrote (which has no
/// references) and for text whose references cannot be looked up.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNames;

impl Names for NoNames {
    fn user(&self, _: &str) -> Option<String> {
        None
    }
    fn role(&self, _: &str) -> Option<String> {
        None
    }
    fn channel(&self, _: &str) -> Option<String> {
        None
    }
}

/// What a user mention shows when the user is not known.
pub(super) const UNKNOWN_USER: &str = "unknown-user";
/// What a role mention shows when the role is not known.
pub(super) const UNKNOWN_ROLE: &str = "unknown-role";
/// What a channel mention shows when the channel is not known.
pub(super) const UNKNOWN_CHANNEL: &str = "unknown-channel";

/// One `<...>` construct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Angle<'a> {
    User(&'a str),
    Role(&'a str),
    Channel(&'a str),
    /// `</name:id>` or `</name sub:id>`: the command's name.
    Command(&'a str),
    /// `<:name:id>` or `<a:name:id>`: the emoji's name.
    Emoji(&'a str),
    /// `<t:unix>` or `<t:unix:style>`.
    Time(i64, Option<char>),
    /// `<https://...>`: a link without an embed.
    Url(&'a str),
}

/// The construct at the start of `text` (which starts with `<`) and its length.
pub(super) fn angle_at(text: &str) -> Option<(Angle<'_>, usize)> {
    // Nothing inside has a `<` or a line break: looking no further keeps reading a
    // text with many `<` linear.
    let end = 1 + text[1..].find(['>', '<', '\n'])?;
    if text.as_bytes()[end] != b'>' {
        return None;
    }
    let inner = &text[1..end];
    let len = end + 1;
    let snowflake =
        |id: &str| (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit());
    let angle = if let Some(id) = inner.strip_prefix("@&") {
        snowflake(id).then_some(Angle::Role(id))?
    } else if let Some(id) = inner.strip_prefix('@') {
        let id = id.strip_prefix('!').unwrap_or(id);
        snowflake(id).then_some(Angle::User(id))?
    } else if let Some(id) = inner.strip_prefix('#') {
        snowflake(id).then_some(Angle::Channel(id))?
    } else if let Some(command) = inner.strip_prefix('/') {
        let (name, id) = command.rsplit_once(':')?;
        let valid = !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '));
        (valid && snowflake(id)).then_some(Angle::Command(name))?
    } else if let Some(time) = inner.strip_prefix("t:") {
        let (unix, style) = match time.split_once(':') {
            Some((unix, style)) if style.len() == 1 && "tTdDfFR".contains(style) => {
                (unix, style.chars().next())
            }
            Some(_) => return None,
            None => (time, None),
        };
        let digits = unix.strip_prefix('-').unwrap_or(unix);
        if digits.is_empty() || digits.len() > 17 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Angle::Time(unix.parse().ok()?, style)
    } else if inner.starts_with("http://") || inner.starts_with("https://") {
        (!inner.contains(' ')).then_some(Angle::Url(inner))?
    } else {
        let emoji = inner.strip_prefix('a').unwrap_or(inner);
        let (name, id) = emoji.strip_prefix(':')?.split_once(':')?;
        let valid = (2..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        (valid && snowflake(id)).then_some(Angle::Emoji(name))?
    };
    Some((angle, len))
}

/// The user, role and channel references in a message `content`, each id once, in
/// the order they first appear, so the adapter can look their names up before
/// [`super::parse`]. Code counts too (it costs a lookup at most).
pub fn references(content: &str) -> Vec<Reference> {
    let mut found: Vec<Reference> = Vec::new();
    for (at, _) in content.match_indices('<') {
        let reference = match angle_at(&content[at..]) {
            Some((Angle::User(id), _)) => Reference::User(id.to_owned()),
            Some((Angle::Role(id), _)) => Reference::Role(id.to_owned()),
            Some((Angle::Channel(id), _)) => Reference::Channel(id.to_owned()),
            _ => continue,
        };
        if !found.contains(&reference) {
            found.push(reference);
        }
    }
    found
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const WEEKDAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

/// A Discord timestamp as readable UTC text, in the detail its style asks for
/// (`R`, relative, is shown as the absolute time: it is read later, elsewhere).
/// `None` for a time too far out to show.
pub(super) fn time_text(unix: i64, style: Option<char>) -> Option<String> {
    // Discord shows times within about 270,000 years either side of 1970.
    if unix.unsigned_abs() > 8_640_000_000_000 {
        return None;
    }
    let days = unix.div_euclid(86_400);
    let seconds = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let month = MONTHS[(month - 1) as usize];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let date = format!("{day} {month} {year}");
    let time = format!("{hour:02}:{minute:02}");
    Some(match style {
        Some('t') => format!("{time} UTC"),
        Some('T') => format!("{time}:{second:02} UTC"),
        Some('d' | 'D') => date,
        Some('F') => format!("{weekday}, {date} {time} UTC"),
        _ => format!("{date} {time} UTC"),
    })
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
