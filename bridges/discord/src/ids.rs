//! Discord's ids: snowflakes (time-ordered 64-bit numbers) and how the adapter writes
//! native message ids.
//!
//! A `NativeMsgId` is the message's snowflake in decimal, for messages the bridge
//! receives and for the copies it sends alike (through the channel webhook or as the
//! bot): what Discord users reply to, start threads on and delete is that id, so the
//! core's id map finds it. Which way a copy was sent (so that edits and deletes go
//! the same way, `PATCH /webhooks/{id}/{token}/messages/{m}` or
//! `PATCH /channels/{c}/messages/{m}`) the adapter remembers beside it; for a copy it
//! no longer remembers (after a restart) it tries the channel's webhook first and the
//! bot when Discord says the webhook did not write it. Events the adapter derives from
//! a message get suffixes: `{id}~edited~{ms}` for an edit, `{id}~deleted` for a delete.

use switchboard_sdk::NativeMsgId;

/// Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// When the snowflake `id` was made, in Unix milliseconds.
pub fn snowflake_ms(id: u64) -> i64 {
    ((id >> 22) + DISCORD_EPOCH_MS) as i64
}

/// The smallest snowflake made at `unix_ms` (0 before Discord's epoch): a message id
/// `after=` it lists everything from that time on.
pub fn snowflake_at(unix_ms: i64) -> u64 {
    let ms = u64::try_from(unix_ms).unwrap_or(0);
    ms.saturating_sub(DISCORD_EPOCH_MS) << 22
}

/// The message snowflake a native id names: the id itself, or what precedes a
/// suffix (`~edited~`, `~deleted`); tolerant of a `w{webhook}:` prefix.
pub fn message_id(native: &NativeMsgId) -> Option<u64> {
    let text = native.as_str();
    let text = text.split('~').next().unwrap_or(text);
    let text = text.rsplit(':').next().unwrap_or(text);
    text.parse::<u64>().ok().filter(|id| *id > 0)
}

pub fn native(id: u64) -> NativeMsgId {
    NativeMsgId::new(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snowflakes_carry_their_time() {
        // Discord's documentation example: 175928847299117063 is 2016-04-30 11:18:25.796 UTC.
        assert_eq!(snowflake_ms(175_928_847_299_117_063), 1_462_015_105_796);
        let at = snowflake_at(1_462_015_105_796);
        assert_eq!(snowflake_ms(at), 1_462_015_105_796);
        assert!(at <= 175_928_847_299_117_063);
        assert_eq!(snowflake_at(0), 0);
        assert_eq!(snowflake_at(-5), 0);
    }

    #[test]
    fn native_ids_name_their_message() {
        assert_eq!(message_id(&native(42)), Some(42));
        assert_eq!(message_id(&NativeMsgId::new("42~edited~1700")), Some(42));
        assert_eq!(message_id(&NativeMsgId::new("42~deleted")), Some(42));
        assert_eq!(message_id(&NativeMsgId::new("w7:42")), Some(42));
        assert_eq!(message_id(&NativeMsgId::new("1700000000.0001")), None);
        assert_eq!(message_id(&NativeMsgId::new("0")), None);
    }
}
