//! JSON shapes of the REST answers (teams, channels, members, users, client
//! config), AppError constructors, and the state summary a failed wait prints.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::state::{Channel, State, Team, User};
use super::{
    AppError, BUILD_HASH, BUILD_NUMBER, MAX_FILE_BYTES, MAX_POST_CHARS, Post, SERVER_VERSION,
    now_ms,
};

impl State {
    pub(super) fn team_json(&self, team: &Team) -> Value {
        json!({
            "id": team.id,
            "create_at": team.create_at,
            "update_at": team.create_at,
            "delete_at": 0,
            "display_name": team.display_name,
            "name": team.name,
            "description": "",
            "email": "",
            "type": "O",
            "company_name": "",
            "allowed_domains": "",
            "invite_id": team.invite_id,
            "allow_open_invite": true,
            "last_team_icon_update": 0,
            "scheme_id": null,
            "group_constrained": null,
            "policy_id": null,
            "cloud_limits_archived": false,
        })
    }

    pub(super) fn channel_json(&self, channel: &Channel) -> Value {
        let posts: Vec<&Post> = self
            .posts
            .iter()
            .filter(|p| p.channel_id == channel.id && p.delete_at == 0)
            .collect();
        let last_post_at = posts.iter().map(|p| p.create_at).max().unwrap_or(0);
        let last_root_post_at = posts
            .iter()
            .filter(|p| p.root_id.is_empty())
            .map(|p| p.create_at)
            .max()
            .unwrap_or(0);
        let roots = posts.iter().filter(|p| p.root_id.is_empty()).count();
        json!({
            "id": channel.id,
            "create_at": channel.create_at,
            "update_at": channel.create_at,
            "delete_at": 0,
            "team_id": channel.team_id,
            "type": "O",
            "display_name": channel.display_name,
            "name": channel.name,
            "header": "",
            "purpose": "",
            "last_post_at": last_post_at,
            "total_msg_count": posts.len(),
            "extra_update_at": 0,
            "creator_id": "",
            "scheme_id": null,
            "props": null,
            "group_constrained": null,
            "shared": null,
            "total_msg_count_root": roots,
            "policy_id": null,
            "last_root_post_at": last_root_post_at,
        })
    }

    pub(super) fn member_json(&self, channel_id: &str, user_id: &str) -> Value {
        json!({
            "channel_id": channel_id,
            "user_id": user_id,
            "roles": "channel_user",
            "last_viewed_at": 0,
            "msg_count": 0,
            "mention_count": 0,
            "mention_count_root": 0,
            "urgent_mention_count": 0,
            "msg_count_root": 0,
            "notify_props": {
                "desktop": "default",
                "email": "default",
                "ignore_channel_mentions": "default",
                "mark_unread": "all",
                "push": "default",
            },
            "last_update_at": now_ms(),
            "scheme_guest": false,
            "scheme_user": true,
            "scheme_admin": false,
            "explicit_roles": "",
        })
    }

    /// A user as the API shows it; `is_self` adds the fields only the user sees.
    pub(super) fn user_json(&self, user: &User, is_self: bool) -> Value {
        let mut value = json!({
            "id": user.id,
            "create_at": user.create_at,
            "update_at": user.create_at,
            "delete_at": 0,
            "username": user.username,
            "auth_data": "",
            "auth_service": "",
            "email": format!("{}@switchboard.test", user.username),
            "nickname": "",
            "first_name": "",
            "last_name": "",
            "position": "",
            "roles": user.roles,
            "locale": "en",
            "timezone": {
                "automaticTimezone": "",
                "manualTimezone": "",
                "useAutomaticTimezone": "true",
            },
            "is_bot": user.is_bot,
            "last_picture_update": 0,
            "disable_welcome_email": false,
        });
        if user.is_bot {
            value["bot_description"] = json!("");
        }
        if is_self {
            value["email_verified"] = json!(true);
            value["last_password_update"] = json!(user.create_at);
            value["notify_props"] = json!({
                "channel": "true",
                "comments": "never",
                "desktop": "mention",
                "desktop_sound": "true",
                "email": "true",
                "first_name": "false",
                "mention_keys": "",
                "push": "mention",
                "push_status": "away",
            });
        }
        value
    }

    /// `GET /config/client?format=old`; without a session the server gives
    /// the limited map, which lacks the posting settings.
    pub(super) fn client_config(&self, logged_in: bool) -> Value {
        let mut config = json!({
            "BuildDate": "Tue Aug 20 12:00:00 UTC 2024",
            "BuildEnterpriseReady": "false",
            "BuildHash": BUILD_HASH,
            "BuildHashEnterprise": "none",
            "BuildNumber": BUILD_NUMBER,
            "DiagnosticId": "",
            "DiagnosticsEnabled": "false",
            "EnableSignInWithUsername": "true",
            "EnableSignUpWithEmail": "true",
            "EnableUserCreation": "true",
            "SiteName": "Mattermost",
            "SiteURL": self.site_url,
            "Version": SERVER_VERSION,
            "WebsocketPort": "80",
            "WebsocketSecurePort": "443",
            "WebsocketURL": "",
        });
        if logged_in {
            let full = json!({
                "EnableCustomEmoji": "true",
                "EnableFileAttachments": "true",
                "EnableIncomingWebhooks": "true",
                "EnableOutgoingWebhooks": "true",
                "EnablePostIconOverride": self.allow_icon_override.to_string(),
                "EnablePostUsernameOverride": self.allow_name_override.to_string(),
                "EnablePublicLink": "true",
                "ExperimentalEnableDefaultChannelLeaveJoinMessages": "true",
                "MaxFileSize": MAX_FILE_BYTES.to_string(),
                "MaxPostSize": MAX_POST_CHARS.to_string(),
                "PostEditTimeLimit": "-1",
                "ShowEmailAddress": "true",
                "TeammateNameDisplay": "username",
            });
            if let (Some(config), Some(full)) = (config.as_object_mut(), full.as_object()) {
                config.extend(full.clone());
            }
        }
        config
    }
}

impl AppError {
    pub(super) fn new(status: u16, id: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            id,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(id: &'static str, message: &str) -> Self {
        Self::new(400, id, message)
    }

    pub(super) fn session_expired() -> Self {
        Self::new(
            401,
            "api.context.session_expired.app_error",
            "Invalid or expired session, please login again.",
        )
    }

    pub(super) fn forbidden() -> Self {
        Self::new(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        )
    }

    pub(super) fn channel_not_found() -> Self {
        Self::new(
            404,
            "app.channel.get.existing.app_error",
            "Unable to find the existing channel.",
        )
    }

    pub(super) fn user_not_found() -> Self {
        Self::new(
            404,
            "app.user.missing_account.const",
            "Unable to find the user.",
        )
    }

    pub(super) fn post_not_found() -> Self {
        Self::new(404, "app.post.get.app_error", "Unable to get the post.")
    }

    pub(super) fn invalid_param(name: &str) -> Self {
        Self::new(
            400,
            "api.context.invalid_url_param.app_error",
            format!("Invalid or missing {name} parameter in request URL."),
        )
    }

    pub(super) fn invalid_body(name: &str) -> Self {
        Self::new(
            400,
            "api.context.invalid_body_param.app_error",
            format!("Invalid or missing {name} in request body."),
        )
    }

    pub(super) fn to_json(&self, request_id: &str) -> Value {
        json!({
            "id": self.id,
            "message": self.message,
            "detailed_error": "",
            "request_id": request_id,
            "status_code": self.status,
        })
    }
}

/// What a timed-out wait reports.
pub(super) fn describe(st: &State) -> String {
    let mut out = String::from("the fake saw:");
    for channel in &st.channels {
        let _ = write!(out, "\n  channel {} ({}):", channel.name, channel.id);
        for post in st.posts.iter().filter(|p| p.channel_id == channel.id) {
            let author = st.user(&post.user_id).map_or("?", |u| u.username.as_str());
            let mut message: String = post.message.chars().take(80).collect();
            if post.delete_at != 0 {
                message.push_str(" [deleted]");
            }
            let _ = write!(
                out,
                "\n    {} {author} type={:?}: {message:?}",
                post.id, post.r#type
            );
        }
    }
    let _ = write!(
        out,
        "\n  websockets: {} live, {} sessions ever",
        st.sockets.len(),
        st.sessions_ever
    );
    let _ = write!(
        out,
        "\n  outgoing webhook results: {:?}",
        st.webhook_results
    );
    let skip = st.request_log.len().saturating_sub(20);
    let _ = write!(out, "\n  last requests:");
    for (method, path, status) in &st.request_log[skip..] {
        let _ = write!(out, "\n    {method} {path} -> {status}");
    }
    out
}
