//! Durations as admins write them: `500ms`, `30s`, `5m`, `1h`, `1h30m`, `2d`.
//!
//! Every step is checked arithmetic against a per-setting maximum, so no text can
//! overflow or wrap. Reasons never repeat the text: it may come from the environment,
//! and the caller says which value it is about.

use std::time::Duration;

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// The duration `text` stands for, at most `max`; otherwise why not, as a predicate
/// ("is not a duration").
pub fn parse(text: &str, max: Duration) -> Result<Duration, String> {
    let too_long = || format!("is too long: the most is {}", format(max));
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty: write a duration such as 30s".into());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err("is not a duration".into());
        }
        // Only digits: the one way `parse` fails is a number past u64.
        let Ok(number) = rest[..digits].parse::<u64>() else {
            return Err(too_long());
        };
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err("needs a unit".into());
        }
        let Some(&(_, unit_ms)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err("has an unknown unit".into());
        };
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|part| total_ms.checked_add(part))
            .filter(|total| *total <= max_ms)
            .ok_or_else(too_long)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// `max` in the largest unit that divides it (`365d`, `1h`, `1500ms`), as written in
/// the file.
pub fn format(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let (name, unit_ms) = UNITS
        .iter()
        .rev()
        .find(|(_, unit_ms)| ms % unit_ms == 0 && ms >= *unit_ms)
        .copied()
        .unwrap_or(("ms", 1));
    format!("{}{name}", ms / unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("500ms", DAY), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s", DAY), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h30m", DAY), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1d", DAY), Ok(DAY));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("", DAY).is_err());
        assert!(parse("10", DAY).unwrap_err().contains("needs a unit"));
        assert!(parse("5 minutes", DAY).is_err());
        assert!(parse("m5", DAY).is_err());
        assert!(parse("5w", DAY).unwrap_err().contains("unknown unit"));
    }

    /// Overflow (a panic before) and wrap-around (to 0 s before) are both "too long".
    #[test]
    fn huge_durations_are_too_long_not_a_panic_or_a_wrap() {
        let too_long = Err("is too long: the most is 1d".to_owned());
        for text in [
            "18446744073709551615s1s",
            "4611686018427387904m",
            "18446744073709551615ms",
            "99999999999999999999999s",
            "1d1ms",
            "25h",
        ] {
            assert_eq!(parse(text, DAY), too_long, "{text}");
        }
    }

    #[test]
    fn maxima_read_as_written() {
        assert_eq!(format(DAY * 365), "365d");
        assert_eq!(format(Duration::from_secs(3600)), "1h");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }
}
