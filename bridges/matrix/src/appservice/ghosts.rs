//! Ghost users: one Matrix user per remote sender, named
//! `@<prefix><network>_<sender>:<server>` (escaped to the characters a user id may
//! hold), shown with the sender's name plus the configured suffix. A ghost is
//! registered, named and joined on first use in a room; what was done is remembered
//! for the run, and a restart simply repeats it (each step is idempotent).

use super::api::{Api, ApiError};
use std::collections::{HashMap, HashSet};
use switchboard_sdk::Origin;
use tokio::sync::Mutex;

/// Longest escaped sender part kept whole; longer ones are cut and hashed.
const MAX_SENDER_PART: usize = 100;

/// `Alice[m]` -> `_alice=5bm=5d`: lower-case letters, digits, `.` and `-` stay;
/// an upper-case letter becomes `_` + its lower case; `_` doubles; anything else
/// is `=` + hex bytes. Different names stay different.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => out.push(byte as char),
            b'A'..=b'Z' => {
                out.push('_');
                out.push(byte.to_ascii_lowercase() as char);
            }
            b'_' => out.push_str("__"),
            _ => out.push_str(&format!("={byte:02x}")),
        }
    }
    out
}

/// The ghost's localpart for a remote sender.
pub fn localpart(prefix: &str, origin: &Origin) -> String {
    let mut sender = escape(&origin.sender_id);
    if sender.len() > MAX_SENDER_PART {
        // FNV-1a: stable across builds, unlike std's hasher.
        let hash = origin
            .sender_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        sender.truncate(MAX_SENDER_PART);
        sender.push_str(&format!("={hash:016x}"));
    }
    format!("{prefix}{}_{sender}", escape(origin.network.as_str()))
}

/// Whether `user_id` is one of the service's ghosts.
pub fn is_ghost(user_id: &str, prefix: &str, server: &str) -> bool {
    user_id
        .strip_prefix('@')
        .and_then(|rest| rest.strip_suffix(server))
        .and_then(|rest| rest.strip_suffix(':'))
        .is_some_and(|local| local.starts_with(prefix))
}

/// Display names longer than this are cut (Synapse refuses more than 256).
const MAX_DISPLAY_NAME_CHARS: usize = 200;

/// `alice` + ` ({protocol})` -> `alice (IRC)`.
pub fn display_name(name: &str, suffix: &str, origin: &Origin) -> String {
    let suffix = suffix
        .replace("{protocol}", protocol_name(&origin.protocol))
        .replace("{network}", origin.network.as_str());
    let mut name: String = name.chars().take(MAX_DISPLAY_NAME_CHARS).collect();
    name.push_str(&suffix);
    name
}

/// How people write a protocol's name.
fn protocol_name(protocol: &str) -> &str {
    match protocol {
        "irc" => "IRC",
        "mattermost" => "Mattermost",
        "matrix" => "Matrix",
        "slack" => "Slack",
        "discord" => "Discord",
        other => other,
    }
}

#[derive(Default)]
struct Ghost {
    registered: bool,
    display_name: Option<String>,
    rooms: HashSet<String>,
}

/// What this run has done for each ghost.
#[derive(Default)]
pub struct Ghosts {
    // One lock for all: setting a ghost up takes a few requests, once per room.
    known: Mutex<HashMap<String, Ghost>>,
}

impl Ghosts {
    /// Registers `user_id` (localpart `local`), gives it `name` and joins it to
    /// `room_id`, doing only what this run has not done yet.
    pub async fn ensure(
        &self,
        api: &Api,
        user_id: &str,
        local: &str,
        name: &str,
        room_id: &str,
    ) -> Result<(), ApiError> {
        let mut known = self.known.lock().await;
        let ghost = known.entry(user_id.to_owned()).or_default();
        if !ghost.registered {
            api.register(local).await?;
            ghost.registered = true;
        }
        if ghost.display_name.as_deref() != Some(name) {
            // Before joining, so the join already shows the name.
            api.set_display_name(user_id, name).await?;
            ghost.display_name = Some(name.to_owned());
        }
        if !ghost.rooms.contains(room_id) {
            match api.join(room_id, Some(user_id)).await {
                Ok(_) => {}
                Err(error) if error.status() == Some(403) => {
                    // Invite-only room: the bot (a member) lets the ghost in.
                    api.invite(room_id, user_id).await?;
                    api.join(room_id, Some(user_id)).await?;
                }
                Err(error) => return Err(error),
            }
            ghost.rooms.insert(room_id.to_owned());
        }
        Ok(())
    }

    /// After a send was refused: the ghost may have been kicked; join again next time.
    pub async fn forget_room(&self, user_id: &str, room_id: &str) {
        if let Some(ghost) = self.known.lock().await.get_mut(user_id) {
            ghost.rooms.remove(room_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::NetworkId;

    fn origin(network: &str, sender: &str) -> Origin {
        Origin {
            network: NetworkId::new(network),
            protocol: "irc".into(),
            sender_id: sender.into(),
        }
    }

    #[test]
    fn localparts_are_valid_and_distinct() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("Alice"), "_alice");
        assert_eq!(escape("a_b"), "a__b");
        assert_eq!(escape("[m]|x"), "=5bm=5d=7cx");
        assert_ne!(escape("Alice"), escape("_alice"));
        assert_eq!(
            localpart("_sb_", &origin("libera", "Bob")),
            "_sb_libera__bob"
        );
        let long = "x".repeat(300);
        let local = localpart("_sb_", &origin("n", &long));
        assert!(local.len() < 140, "{local}");
        assert_ne!(local, localpart("_sb_", &origin("n", &format!("{long}y"))));
        for local in [local, localpart("_sb_", &origin("Net", "ä ö"))] {
            assert!(
                local
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/".contains(&b)),
                "{local}"
            );
        }
    }

    #[test]
    fn ghosts_are_recognised_by_prefix_and_server() {
        assert!(is_ghost("@_sb_irc_bob:example.org", "_sb_", "example.org"));
        assert!(!is_ghost("@_sb_irc_bob:other.org", "_sb_", "example.org"));
        assert!(!is_ghost("@bob:example.org", "_sb_", "example.org"));
    }

    #[test]
    fn display_names_carry_the_suffix() {
        let origin = origin("libera", "bob");
        assert_eq!(display_name("bob", " ({protocol})", &origin), "bob (IRC)");
        assert_eq!(display_name("bob", " [{network}]", &origin), "bob [libera]");
    }
}
