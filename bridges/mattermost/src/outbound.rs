//! Events -> native: one rendered delivery becomes posts (created, patched or
//! deleted over REST), or a post through the incoming webhook in webhook mode.

use crate::api::NewPost;
use crate::client::{ApiError, Client, without_url};
use crate::incoming_hook::{HookPost, IncomingHook};
use crate::reaction::ReactionId;
use switchboard_sdk::{
    Attachment, MessageStyle, NativeMsgId, Outbound, OutboundKind, SendError, SendReceipt,
};

/// Mattermost refuses messages over 16,383 characters; bytes bound characters.
pub const MAX_POST_BYTES: usize = 16_000;

/// The post texts of a delivery, as the core decided them (label, split, guard).
fn post_texts(message: &Outbound) -> Vec<String> {
    message.parts.iter().map(|part| part.body.clone()).collect()
}

/// The post type of a delivery: `me` for an action, as Mattermost's `/me` makes.
fn post_kind(message: &Outbound) -> &'static str {
    match &message.kind {
        OutboundKind::Message {
            style: MessageStyle::Action,
            ..
        } => "me",
        _ => "",
    }
}

/// The props that show the remote author's name and picture instead of the bot's,
/// where the core chose to name the author per message.
pub fn override_props(message: &Outbound) -> serde_json::Map<String, serde_json::Value> {
    let mut props = serde_json::Map::new();
    if message.per_message_sender {
        props.insert(
            "override_username".into(),
            message.sender_name.clone().into(),
        );
        if let Some(avatar) = &message.sender_avatar {
            props.insert("override_icon_url".into(), avatar.clone().into());
        }
        props.insert("from_webhook".into(), "true".into());
    }
    props
}

/// Where a delivery goes through the REST API: a channel, as the bridge's own user.
pub struct RestTarget<'a> {
    pub client: &'a Client,
    pub channel_id: &'a str,
    pub own_user_id: &'a str,
}

/// Sends one delivery through the REST API.
pub async fn send_rest(
    target: &RestTarget<'_>,
    message: &Outbound,
    max_upload_bytes: u64,
) -> Result<SendReceipt, SendError> {
    let RestTarget {
        client, channel_id, ..
    } = *target;
    match &message.kind {
        OutboundKind::Message {
            reply_to,
            thread,
            attachments,
            ..
        } => {
            let root = thread.as_ref().or(reply_to.as_ref());
            let mut texts = post_texts(message);
            let (file_ids, unsent) =
                upload_all(client, channel_id, attachments, max_upload_bytes).await;
            if let Some(last) = texts.last_mut() {
                for file in &unsent {
                    if !last.is_empty() {
                        last.push('\n');
                    }
                    last.push_str(&file.url);
                }
            }
            let mut ids = Vec::with_capacity(texts.len());
            let count = texts.len();
            for (index, text) in texts.into_iter().enumerate() {
                let post = NewPost {
                    channel_id,
                    message: text,
                    root_id: root.map_or("", NativeMsgId::as_str),
                    props: override_props(message),
                    kind: post_kind(message),
                    // Files go with the last part, after all of the text.
                    file_ids: if index + 1 == count {
                        file_ids.clone()
                    } else {
                        Vec::new()
                    },
                };
                let created = client
                    .create_post(&post)
                    .await
                    .map_err(|error| cut_short(error, ids.len()))?;
                ids.push(NativeMsgId::new(created.id));
            }
            Ok(SendReceipt { native_ids: ids })
        }
        OutboundKind::Edit { targets, .. } => {
            let text = post_texts(message).concat();
            let Some((first, rest)) = targets.split_first() else {
                return Ok(SendReceipt::default());
            };
            client
                .patch_post(first.as_str(), &text)
                .await
                .map_err(ApiError::into_send_error)?;
            // The new text lives in the first part; the others would repeat old text.
            for part in rest {
                delete_if_present(client, part).await?;
            }
            Ok(SendReceipt {
                native_ids: vec![first.clone()],
            })
        }
        OutboundKind::Delete { targets } => {
            for part in targets {
                delete_if_present(client, part).await?;
            }
            Ok(SendReceipt::default())
        }
        OutboundKind::Reaction { target: post, key } => {
            let Some(emoji_name) = switchboard_sdk::emoji::name_from_key(key) else {
                return Err(SendError::Permanent(format!(
                    "the reaction {key:?} has no Mattermost emoji name"
                )));
            };
            client
                .add_reaction(target.own_user_id, post.as_str(), &emoji_name)
                .await
                .map_err(ApiError::into_send_error)?;
            let id = ReactionId {
                post_id: post.as_str().to_owned(),
                user_id: target.own_user_id.to_owned(),
                emoji_name,
            };
            Ok(SendReceipt {
                native_ids: vec![id.copy(message.delivery_id)],
            })
        }
    }
}

/// An error after some parts were posted: retrying would post those again, so a
/// transient failure is still retried (the core keeps order), but says what happened.
fn cut_short(error: ApiError, parts_posted: usize) -> SendError {
    if parts_posted > 0 {
        tracing::warn!(%error, parts = parts_posted, "Mattermost: a long message was cut by an error after some parts were posted");
    }
    error.into_send_error()
}

/// Deletes a post, or takes back a reaction, unless it is already gone.
async fn delete_if_present(client: &Client, copy: &NativeMsgId) -> Result<(), SendError> {
    let deleted = match ReactionId::parse(copy) {
        Some(reaction) => {
            let ReactionId {
                post_id,
                user_id,
                emoji_name,
            } = &reaction;
            client.remove_reaction(user_id, post_id, emoji_name).await
        }
        None => client.delete_post(copy.as_str()).await,
    };
    match deleted {
        Ok(()) => Ok(()),
        Err(error) if error.status() == Some(404) => Ok(()),
        Err(error) => Err(error.into_send_error()),
    }
}

/// Fetches each file from the other network and uploads it; files that cannot be
/// fetched, are too large, or are refused stay links in the text.
async fn upload_all(
    client: &Client,
    channel_id: &str,
    files: &[Attachment],
    max_bytes: u64,
) -> (Vec<String>, Vec<Attachment>) {
    let mut ids = Vec::new();
    let mut unsent = Vec::new();
    for file in files {
        match upload_one(client, channel_id, file, max_bytes).await {
            Ok(id) => ids.push(id),
            Err(reason) => {
                tracing::info!(file = %file.name, %reason, "Mattermost: file relayed as a link");
                unsent.push(file.clone());
            }
        }
    }
    (ids, unsent)
}

async fn upload_one(
    client: &Client,
    channel_id: &str,
    file: &Attachment,
    max_bytes: u64,
) -> Result<String, String> {
    if file.size.is_some_and(|size| size > max_bytes) {
        return Err(format!("larger than {max_bytes} bytes"));
    }
    let mut response = client
        .http()
        .get(&file.url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| without_url(&error))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| without_url(&error))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max_bytes {
            return Err(format!("larger than {max_bytes} bytes"));
        }
    }
    client
        .upload(channel_id, &file.name, bytes)
        .await
        .map(|info| info.id)
        .map_err(|error| error.to_string())
}

/// Where webhook-mode posts go: the lean client, or reqwest when a proxy is set.
pub enum HookSender<'a> {
    Direct(&'a IncomingHook),
    ThroughProxy { client: &'a Client, url: &'a str },
}

/// Posts through the incoming webhook, which returns no post ids: the receipt is
/// empty, so the core records no copy (webhook mode cannot edit, delete or answer a
/// post anyway, and a made-up id would only be sent to the API in vain later).
///
/// Posts are named by `username` (the config's `webhooks.username`) when senders'
/// names are not overridden; the server honours either only where integrations may
/// override names.
pub async fn send_webhook(
    sender: HookSender<'_>,
    message: &Outbound,
    username: &str,
) -> Result<SendReceipt, SendError> {
    let overridden = message.per_message_sender;
    let username = if overridden {
        message.sender_name.as_str()
    } else {
        username
    };
    for (index, text) in post_texts(message).iter().enumerate() {
        let post = HookPost {
            text,
            // One incoming webhook can serve several channels unless its admin locked it.
            channel: message.room.as_str(),
            username: Some(username).filter(|name| !name.is_empty()),
            icon_url: message.sender_avatar.as_deref().filter(|_| overridden),
        };
        let posted = match &sender {
            HookSender::Direct(hook) => hook.post(&post).await,
            HookSender::ThroughProxy { client, url } => {
                match client.http().post(*url).json(&post).send().await {
                    Ok(response) => crate::client::check(response).await.map(drop),
                    Err(error) => Err(ApiError::Transport(without_url(&error))),
                }
            }
        };
        posted.map_err(|error| cut_short(error, index))?;
    }
    Ok(SendReceipt::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format;
    use switchboard_sdk::{Capabilities, RichText, TextFormat};

    /// How the sender is named, as the core decides it per room.
    #[derive(Clone, Copy, PartialEq)]
    enum Naming {
        Override,
        Label,
    }

    fn message(style: MessageStyle, text: &str) -> Outbound {
        Outbound {
            room: "town-square".into(),
            delivery_id: 7,
            delivery_key: "d7".into(),
            sender_name: "alice".into(),
            sender_avatar: None,
            sender_label: "<alice> ".into(),
            per_message_sender: false,
            parts: Vec::new(),
            origin: Default::default(),
            kind: OutboundKind::Message {
                style,
                content: RichText::plain(text),
                reply_to: None,
                thread: None,
                attachments: Vec::new(),
            },
        }
    }

    /// `message` as the core's policy plans it for a room named that way.
    fn planned(message: &Outbound, naming: Naming) -> Outbound {
        let capabilities = Capabilities {
            per_message_sender: naming == Naming::Override,
            max_message_bytes: Some(MAX_POST_BYTES),
            text: TextFormat::new(format::MattermostText),
            ..Capabilities::default()
        };
        switchboard_sdk::testing::planned_with(&capabilities, message.clone())
    }

    fn texts(message: &Outbound, naming: Naming) -> Vec<String> {
        post_texts(&planned(message, naming))
    }

    #[test]
    fn label_goes_before_the_text_only_without_override() {
        let hello = message(MessageStyle::Normal, "hello");
        assert_eq!(texts(&hello, Naming::Override), vec!["hello"]);
        // Nothing to escape: raw text (notifications, previews) reads the same.
        assert_eq!(texts(&hello, Naming::Label), vec!["alice: hello"]);
        let waves = message(MessageStyle::Action, "waves");
        assert_eq!(texts(&waves, Naming::Label), vec!["*alice waves*"]);
        // Another template is kept as written, escaped where Markdown needs it.
        let custom = Outbound {
            sender_label: "[alice] ".into(),
            ..hello.clone()
        };
        let labelled = texts(&custom, Naming::Label);
        assert_eq!(format::parse(&labelled[0]).to_plain(), "[alice] hello");
        assert!(override_props(&planned(&hello, Naming::Label)).is_empty());
        let props = override_props(&planned(&hello, Naming::Override));
        assert_eq!(props["override_username"], "alice");
    }

    #[test]
    fn actions_are_emphasised() {
        let waves = message(MessageStyle::Action, "waves");
        assert_eq!(texts(&waves, Naming::Override), vec!["*waves*"]);
    }

    #[test]
    fn long_messages_become_several_posts_and_lose_nothing() {
        let text = "word ".repeat(8_000);
        let long = message(MessageStyle::Normal, &text);
        let parts = texts(&long, Naming::Override);
        assert!(parts.len() >= 3, "{} parts", parts.len());
        assert!(parts.iter().all(|part| part.len() <= MAX_POST_BYTES));
        assert_eq!(parts.concat(), format::render(&RichText::plain(text)));
    }
}
