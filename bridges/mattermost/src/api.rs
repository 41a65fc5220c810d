//! The Mattermost API v4 wire types the adapter reads and writes (only the fields it
//! uses; unknown fields are ignored so newer servers keep working).

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;

/// A post. Every field reads `null` as absent (the server's Go structs can send it,
/// and one null field must not make the whole post unreadable); whether what was read
/// is enough to relay is `Post::unreadable`'s call.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Post {
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub create_at: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub update_at: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub edit_at: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub delete_at: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub user_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub channel_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub root_id: String,
    /// `None` when the server sent `null` (or nothing): the text is unknown, which is
    /// not the same as an empty message.
    pub message: Option<String>,
    #[serde(rename = "type", deserialize_with = "null_as_default")]
    pub kind: String,
    #[serde(deserialize_with = "null_as_default")]
    pub props: serde_json::Map<String, serde_json::Value>,
    pub file_ids: Option<Vec<String>>,
    pub metadata: Option<PostMetadata>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl Post {
    /// System messages (joins, header changes...) have a type like `system_join_channel`.
    pub fn is_system(&self) -> bool {
        self.kind.starts_with("system_")
    }

    /// The text (empty when the server did not say).
    pub fn text(&self) -> &str {
        self.message.as_deref().unwrap_or_default()
    }

    /// Why this post cannot be relayed as it is, if it cannot: without its id,
    /// channel, author, creation time or text it would be relayed wrong or not at all.
    pub fn unreadable(&self) -> Option<&'static str> {
        if self.id.is_empty() {
            Some("no post id")
        } else if self.channel_id.is_empty() {
            Some("no channel_id")
        } else if self.user_id.is_empty() {
            Some("no user_id")
        } else if self.create_at <= 0 {
            Some("no create_at")
        } else if self.message.is_none() {
            Some("no message")
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct PostMetadata {
    pub files: Option<Vec<FileInfo>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct FileInfo {
    pub id: String,
    pub name: String,
    pub mime_type: String,
    pub size: u64,
}

/// A page of posts: `order` lists the ids newest first.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PostList {
    #[serde(deserialize_with = "null_as_default")]
    pub order: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub posts: HashMap<String, Post>,
    /// The post just older than this page (empty at the channel's start).
    #[serde(deserialize_with = "null_as_default")]
    pub prev_post_id: String,
}

impl PostList {
    /// The posts in `order` (newest first); ids missing from `posts` are skipped.
    pub fn into_ordered(mut self) -> Vec<Post> {
        self.order
            .iter()
            .filter_map(|id| self.posts.remove(id))
            .collect()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct User {
    pub id: String,
    pub username: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Team {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub team_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct UploadResult {
    pub file_infos: Vec<FileInfo>,
}

/// The error body every API v4 failure carries.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AppError {
    pub id: String,
    pub message: String,
    pub status_code: u16,
}

/// What we send to create a post.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NewPost<'a> {
    pub channel_id: &'a str,
    pub message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub root_id: &'a str,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub props: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_ids: Vec<String>,
    /// `me` for a `/me` post; empty for a plain one.
    #[serde(rename = "type", skip_serializing_if = "str::is_empty")]
    pub kind: &'static str,
}

/// One frame from the websocket: an event, or the reply to one of our actions.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct WsMessage {
    pub event: Option<String>,
    pub data: serde_json::Map<String, serde_json::Value>,
    pub broadcast: WsBroadcast,
    pub seq: Option<i64>,
    pub status: Option<String>,
    pub seq_reply: Option<i64>,
    pub error: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct WsBroadcast {
    pub channel_id: String,
    pub user_id: String,
}

impl WsMessage {
    /// The post carried by `posted`, `post_edited` and `post_deleted` (a JSON string;
    /// an object is taken too), or why it cannot be read, with its id where that
    /// could be read, to fetch it by.
    pub fn post(&self) -> Result<Post, Unreadable> {
        let value = self.carried("post").map_err(|reason| Unreadable {
            reason,
            post_id: None,
        })?;
        let unreadable = |reason: String, post_id: Option<String>| Unreadable { reason, post_id };
        let post_id = value
            .get("id")
            .and_then(serde_json::Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let post = Post::deserialize(&value).map_err(|error| {
            unreadable(format!("`post` is not a post: {error}"), post_id.clone())
        })?;
        match post.unreadable() {
            None => Ok(post),
            Some(reason) => Err(unreadable(reason.to_owned(), post_id)),
        }
    }

    /// The reaction carried by `reaction_added` and `reaction_removed`.
    pub fn reaction(&self) -> Result<Reaction, String> {
        let reaction = Reaction::deserialize(&self.carried("reaction")?)
            .map_err(|error| format!("`reaction` is not a reaction: {error}"))?;
        if reaction.post_id.is_empty()
            || reaction.user_id.is_empty()
            || reaction.emoji_name.is_empty()
        {
            return Err("the reaction lacks its post, user or emoji".into());
        }
        Ok(reaction)
    }

    /// The object under `key` in `data`: the server sends it as a JSON string; an
    /// object is taken too.
    fn carried(&self, key: &str) -> Result<serde_json::Value, String> {
        match self.data.get(key) {
            Some(serde_json::Value::String(raw)) => {
                serde_json::from_str(raw).map_err(|error| format!("`{key}` is not JSON: {error}"))
            }
            Some(value @ serde_json::Value::Object(_)) => Ok(value.clone()),
            Some(other) => Err(format!("`{key}` is {}", json_kind(other))),
            None => Err(format!("no `{key}` in the event")),
        }
    }
}

/// A reaction: one user's emoji on one post. The server knows it by those three;
/// `reaction_removed` events carry no creation time.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct Reaction {
    #[serde(deserialize_with = "null_as_default")]
    pub user_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub post_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub emoji_name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub create_at: i64,
}

/// Why an event's post cannot be relayed as it came.
#[derive(Debug)]
pub struct Unreadable {
    pub reason: String,
    pub post_id: Option<String>,
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_event_carries_the_post_as_a_string() {
        let frame = r#"{"event":"posted","data":{"channel_name":"town-square","post":"{\"id\":\"p1\",\"create_at\":5,\"user_id\":\"u1\",\"channel_id\":\"c1\",\"root_id\":\"\",\"message\":\"hi\",\"type\":\"\",\"props\":{}}","sender_name":"@alice"},"broadcast":{"omit_users":null,"user_id":"","channel_id":"c1","team_id":""},"seq":3}"#;
        let message: WsMessage = serde_json::from_str(frame).unwrap();
        assert_eq!(message.event.as_deref(), Some("posted"));
        assert_eq!(message.seq, Some(3));
        let post = message.post().unwrap();
        assert_eq!((post.id.as_str(), post.text()), ("p1", "hi"));
    }

    #[test]
    fn null_fields_do_not_make_a_post_unparseable_but_are_reported() {
        let frame = |post: &str| {
            let data = serde_json::json!({ "post": post });
            serde_json::from_value::<WsMessage>(
                serde_json::json!({ "event": "posted", "data": data }),
            )
            .unwrap()
        };
        let complete = r#"{"id":"p1","create_at":5,"user_id":"u1","channel_id":"c1","message":"hi","props":null,"root_id":null,"type":null}"#;
        assert_eq!(frame(complete).post().unwrap().text(), "hi");
        let unreadable =
            frame(r#"{"id":"p1","create_at":5,"user_id":"u1","channel_id":"c1","message":null}"#)
                .post()
                .unwrap_err();
        assert_eq!(unreadable.reason, "no message");
        assert_eq!(unreadable.post_id.as_deref(), Some("p1"));
        let unreadable = frame("not json").post().unwrap_err();
        assert!(
            unreadable.reason.contains("not JSON"),
            "{}",
            unreadable.reason
        );
        assert!(unreadable.post_id.is_none());
    }

    #[test]
    fn reaction_events_carry_the_reaction_as_a_string() {
        let frame = r#"{"event":"reaction_added","data":{"reaction":"{\"user_id\":\"u1\",\"post_id\":\"p1\",\"emoji_name\":\"+1\",\"create_at\":7}"},"broadcast":{"channel_id":"c1"},"seq":4}"#;
        let message: WsMessage = serde_json::from_str(frame).unwrap();
        let reaction = message.reaction().unwrap();
        assert_eq!(
            (reaction.post_id.as_str(), reaction.emoji_name.as_str()),
            ("p1", "+1")
        );
        assert_eq!(message.broadcast.channel_id, "c1");
        let empty = serde_json::json!({"event": "reaction_removed", "data": {"reaction": "{}"}});
        let message: WsMessage = serde_json::from_value(empty).unwrap();
        assert!(message.reaction().is_err());
    }

    #[test]
    fn challenge_reply_is_not_an_event() {
        let message: WsMessage = serde_json::from_str(r#"{"status":"OK","seq_reply":1}"#).unwrap();
        assert!(message.event.is_none());
        assert_eq!(message.seq_reply, Some(1));
    }
}
