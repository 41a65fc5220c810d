//! The Mattermost API v4 wire types the adapter reads and writes (only the fields it
//! uses; unknown fields are ignored so newer servers keep working).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Post {
    pub id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub edit_at: i64,
    pub delete_at: i64,
    pub user_id: String,
    pub channel_id: String,
    pub root_id: String,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub props: serde_json::Map<String, serde_json::Value>,
    pub file_ids: Option<Vec<String>>,
    pub metadata: Option<PostMetadata>,
}

impl Post {
    /// System messages (joins, header changes...) have a type like `system_join_channel`.
    pub fn is_system(&self) -> bool {
        self.kind.starts_with("system_")
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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PostList {
    pub order: Vec<String>,
    pub posts: HashMap<String, Post>,
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
    /// The post carried by `posted`, `post_edited` and `post_deleted` (a JSON string).
    pub fn post(&self) -> Option<Post> {
        let raw = self.data.get("post")?.as_str()?;
        serde_json::from_str(raw).ok()
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
        assert_eq!((post.id.as_str(), post.message.as_str()), ("p1", "hi"));
    }

    #[test]
    fn challenge_reply_is_not_an_event() {
        let message: WsMessage = serde_json::from_str(r#"{"status":"OK","seq_reply":1}"#).unwrap();
        assert!(message.event.is_none());
        assert_eq!(message.seq_reply, Some(1));
    }
}
