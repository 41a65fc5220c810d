//! The JSON the fake sends, built field by field so that twilight-model's structs
//! (which say which fields are required) deserialize every payload: users,
//! members, roles, channels, guilds, messages, webhooks, the application; and a
//! summary of the fake's state for timeout messages.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::state::{
    Channel, GUILD_TEXT, Guild, Member, PUBLIC_THREAD, Role, State, Stored, User, Webhook, perm,
    snowflake_time,
};

/// A user object. `discriminator` is `"0"` as for every migrated account.
pub(super) fn user(u: &User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "global_name": u.global_name,
        "avatar": u.avatar,
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
        "bot": u.bot,
        "banner": null,
        "accent_color": null,
        "avatar_decoration_data": null,
    })
}

/// `GET /users/@me` and READY's `user`: a user plus `mfa_enabled`, `verified`...
pub(super) fn current_user(u: &User) -> Value {
    let mut value = user(u);
    value["mfa_enabled"] = json!(false);
    value["verified"] = json!(true);
    value["locale"] = json!("en-US");
    value["email"] = Value::Null;
    value
}

fn member_fields(st: &State, m: &Member) -> Value {
    let _ = st;
    json!({
        "nick": m.nick,
        "avatar": null,
        "banner": null,
        "roles": m.roles,
        "joined_at": m.joined_at,
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "communication_disabled_until": null,
        "avatar_decoration_data": null,
    })
}

/// A guild member with its user.
pub(super) fn member(st: &State, m: &Member) -> Value {
    let mut value = member_fields(st, m);
    if let Some(u) = st.user(&m.user_id) {
        value["user"] = user(u);
    }
    value
}

pub(super) fn role(st: &State, r: &Role) -> Value {
    let permissions = if r.managed {
        st.bot_role_permissions()
    } else {
        r.permissions
    };
    json!({
        "id": r.id,
        "name": r.name,
        "color": 0,
        "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
        "hoist": false,
        "icon": null,
        "unicode_emoji": null,
        "position": r.position,
        "permissions": permissions.to_string(),
        "managed": r.managed,
        "mentionable": false,
        "flags": 0,
    })
}

/// A channel, category or thread.
pub(super) fn channel(st: &State, c: &Channel) -> Value {
    let mut value = json!({
        "id": c.id,
        "type": c.kind,
        "guild_id": c.guild_id,
        "name": c.name,
        "parent_id": c.parent_id,
        "flags": 0,
    });
    let last = st
        .messages
        .iter()
        .rev()
        .find(|m| m.msg.channel_id == c.id)
        .map(|m| m.msg.id.clone());
    if c.kind == PUBLIC_THREAD {
        let count = st
            .messages
            .iter()
            .filter(|m| m.msg.channel_id == c.id && !m.msg.deleted)
            .count();
        value["owner_id"] = json!(c.owner_id);
        value["last_message_id"] = json!(last);
        value["message_count"] = json!(count);
        value["member_count"] = json!(count.clamp(1, 50));
        value["rate_limit_per_user"] = json!(0);
        value["thread_metadata"] = json!({
            "archived": false,
            "auto_archive_duration": 1440,
            "archive_timestamp": snowflake_time(&c.id),
            "locked": false,
            "create_timestamp": snowflake_time(&c.id),
        });
        return value;
    }
    value["position"] = json!(c.position);
    value["permission_overwrites"] = json!(overwrites(st, c));
    if c.kind == GUILD_TEXT {
        value["topic"] = Value::Null;
        value["nsfw"] = json!(false);
        value["last_message_id"] = json!(last);
        value["rate_limit_per_user"] = json!(0);
        value["default_auto_archive_duration"] = json!(1440);
    }
    value
}

/// A channel the bots were removed from denies each of them `VIEW_CHANNEL`.
fn overwrites(st: &State, c: &Channel) -> Vec<Value> {
    if !c.hidden_from_bots {
        return Vec::new();
    }
    st.bots
        .iter()
        .map(|b| {
            json!({
                "id": b.user_id,
                "type": 1,
                "allow": "0",
                "deny": perm::VIEW_CHANNEL.to_string(),
            })
        })
        .collect()
}

/// A guild as `GET /guilds/{id}` answers it: no channels, members or threads.
pub(super) fn guild(st: &State, g: &Guild) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "icon": null,
        "splash": null,
        "discovery_splash": null,
        "banner": null,
        "description": null,
        "owner_id": g.owner_id,
        "afk_channel_id": null,
        "afk_timeout": 300,
        "widget_enabled": false,
        "widget_channel_id": null,
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "roles": g.roles.iter().map(|r| role(st, r)).collect::<Vec<_>>(),
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "public_updates_channel_id": null,
        "safety_alerts_channel_id": null,
        "max_members": 500000,
        "max_presences": null,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "vanity_url_code": null,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "premium_progress_bar_enabled": false,
        "incidents_data": null,
    })
}

/// GUILD_CREATE's guild: the REST shape plus channels, threads, members,
/// `member_count`, `joined_at`, `large` and the empty lists. `unavailable` is left
/// out on purpose: twilight reads a payload with it as an unavailable guild.
pub(super) fn gateway_guild(st: &State, g: &Guild, bot_user: &str) -> Value {
    let mut value = guild(st, g);
    let (threads, channels): (Vec<&Channel>, Vec<&Channel>) = st
        .channels
        .iter()
        .filter(|c| c.guild_id == g.id)
        .partition(|c| c.kind == PUBLIC_THREAD);
    let joined_at = g
        .members
        .iter()
        .find(|m| m.user_id == bot_user)
        .map(|m| m.joined_at.clone());
    value["channels"] = channels.iter().map(|c| channel(st, c)).collect();
    value["threads"] = threads.iter().map(|c| channel(st, c)).collect();
    value["members"] = g.members.iter().map(|m| member(st, m)).collect();
    value["member_count"] = json!(g.members.len());
    value["joined_at"] = json!(joined_at);
    value["large"] = json!(false);
    value["presences"] = json!([]);
    value["voice_states"] = json!([]);
    value["stage_instances"] = json!([]);
    value["guild_scheduled_events"] = json!([]);
    value
}

/// `GET /users/@me/guilds` entries.
pub(super) fn current_user_guild(st: &State, g: &Guild) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "icon": null,
        "owner": false,
        "permissions": st.bot_role_permissions().to_string(),
        "features": [],
    })
}

pub(super) fn webhook(st: &State, w: &Webhook, with_token: bool) -> Value {
    let creator = w.creator.as_deref().and_then(|id| st.user(id)).map(user);
    json!({
        "id": w.id,
        "type": 1,
        "guild_id": w.guild_id,
        "channel_id": w.channel_id,
        "name": w.name,
        "avatar": null,
        "application_id": w.application_id,
        "user": creator,
        "token": if with_token { Some(w.token.clone()) } else { None },
        "url": with_token.then(|| format!("https://discord.com/api/webhooks/{}/{}", w.id, w.token)),
    })
}

/// A message. `strip_content` blanks the content, embeds, attachments and
/// stickers, as Discord does for a session without the message content intent.
pub(super) fn message(st: &State, m: &Stored, strip_content: bool) -> Value {
    let msg = &m.msg;
    let author = match (
        &msg.webhook_id,
        m.author_user.as_deref().and_then(|id| st.user(id)),
    ) {
        (None, Some(u)) => user(u),
        _ => json!({
            "id": msg.author_id,
            "username": msg.username.clone().unwrap_or_else(|| msg.author_name.clone()),
            "global_name": null,
            "avatar": null,
            "discriminator": "0000",
            "public_flags": 0,
            "flags": 0,
            "bot": true,
        }),
    };
    let mentions: Vec<Value> = mentioned(st, m)
        .iter()
        .filter_map(|id| st.user(id))
        .map(|u| {
            let mut value = user(u);
            if let Some(member) = st.member(&m.guild_id, &u.id) {
                value["member"] = member_fields(st, member);
            }
            value
        })
        .collect();
    let attachments: Vec<Value> = if strip_content {
        Vec::new()
    } else {
        msg.attachments
            .iter()
            .enumerate()
            .map(|(i, a)| {
                json!({
                    "id": (msg.id.parse::<u64>().unwrap_or(0) + 1 + i as u64).to_string(),
                    "filename": a.filename,
                    "size": a.size,
                    "url": a.url,
                    "proxy_url": a.url,
                    "content_type": guess_type(&a.filename),
                })
            })
            .collect()
    };
    let stickers: Vec<Value> = if strip_content {
        Vec::new()
    } else {
        msg.stickers
            .iter()
            .map(|name| json!({ "id": sticker_id(name), "name": name, "format_type": 1 }))
            .collect()
    };
    let mut value = json!({
        "id": msg.id,
        "type": if msg.reply_to.is_some() { 19 } else { 0 },
        "channel_id": msg.channel_id,
        "guild_id": m.guild_id,
        "author": author,
        "content": if strip_content { "" } else { msg.content.as_str() },
        "timestamp": snowflake_time(&msg.id),
        "edited_timestamp": m.edited_timestamp,
        "tts": false,
        "mention_everyone": false,
        "mentions": mentions,
        "mention_roles": [],
        "attachments": attachments,
        "embeds": [],
        "sticker_items": stickers,
        "pinned": false,
        "flags": 0,
        "components": [],
    });
    if let Some(hook) = &msg.webhook_id {
        value["webhook_id"] = json!(hook);
        if let Some(app) = st.webhook(hook).and_then(|w| w.application_id.clone()) {
            value["application_id"] = json!(app);
        }
    } else if let Some(member) = m
        .author_user
        .as_deref()
        .and_then(|id| st.member(&m.guild_id, id))
    {
        value["member"] = member_fields(st, member);
    }
    if let Some(parent) = &msg.reply_to {
        value["message_reference"] = json!({
            "type": 0,
            "message_id": parent,
            "channel_id": msg.channel_id,
            "guild_id": m.guild_id,
        });
        // Discord embeds the parent (null when it was deleted); not nested further.
        value["referenced_message"] = match st.find(&msg.channel_id, parent) {
            Some(i) => {
                let mut parent = message(st, &st.messages[i], strip_content);
                if let Some(obj) = parent.as_object_mut() {
                    obj.remove("referenced_message");
                }
                parent
            }
            None => Value::Null,
        };
    }
    value
}

/// The users a message pings: those `<@id>` names, unless the request's
/// `allowed_mentions` suppressed them (`parse` without `users`, no `users` list).
pub(super) fn mentioned(st: &State, m: &Stored) -> Vec<String> {
    let all = st.mentioned_users(&m.msg.content);
    let Some(allowed) = &m.msg.allowed_mentions else {
        return all;
    };
    let parse_users = allowed["parse"]
        .as_array()
        .is_some_and(|p| p.iter().any(|v| v == "users"));
    if parse_users {
        return all;
    }
    let listed: Vec<&str> = allowed["users"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    all.into_iter()
        .filter(|id| listed.contains(&id.as_str()))
        .collect()
}

/// A stable id per sticker name (stickers are not modelled beyond their name).
fn sticker_id(name: &str) -> String {
    let hash = name.bytes().fold(1_469_598_103_934_665_603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1_099_511_628_211)
    });
    (1_000_000_000_000_000 + hash % 1_000_000_000_000_000).to_string()
}

fn guess_type(name: &str) -> &'static str {
    match name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("txt") => "text/plain; charset=utf-8",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// `GET /applications/@me`. `owner` (optional in Discord's reference, never null)
/// is left out: the fake's applications have no owner user.
pub(super) fn application(st: &State, app_id: &str, bot_user: &str) -> Value {
    let bot = st.user(bot_user);
    json!({
        "id": app_id,
        "name": bot.map(|u| u.username.clone()).unwrap_or_default(),
        "icon": null,
        "description": "",
        "bot_public": false,
        "bot_require_code_grant": false,
        "verify_key": "0".repeat(64),
        "flags": app_flags(st),
        "bot": bot.map(user),
        "team": null,
        "approximate_guild_count": st.guilds.len(),
        "redirect_uris": [],
        "rpc_origins": [],
        "tags": [],
        // Webhook events (HTTP event delivery) off: 1, as for an app that never set them up.
        "event_webhooks_status": 1,
    })
}

/// The application's flags: `GATEWAY_MESSAGE_CONTENT` (1 << 18) when the knob is on.
pub(super) fn app_flags(st: &State) -> u64 {
    if st.message_content_flag { 1 << 18 } else { 0 }
}

/// A Discord error body.
pub(super) fn error(code: u32, message: &str) -> Value {
    json!({ "message": message, "code": code })
}

/// A form validation error (50035) on one field.
pub(super) fn form_error(field: &str, code: &str, message: &str) -> Value {
    json!({
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": { field: { "_errors": [{ "code": code, "message": message }] } },
    })
}

/// What the fake holds, for timeout panics.
pub(super) fn describe(st: &State) -> String {
    let mut out = String::from("the fake saw:");
    for c in st.channels.iter().filter(|c| c.kind != 4) {
        let _ = write!(out, "\n  #{} ({}, type {}):", c.name, c.id, c.kind);
        for m in st.messages.iter().filter(|m| m.msg.channel_id == c.id) {
            let m = &m.msg;
            let text: String = m.content.chars().take(80).collect();
            let _ = write!(
                out,
                "\n    {} {} webhook={:?} reply_to={:?}{}{}: {text:?}",
                m.id,
                m.author_name,
                m.webhook_id,
                m.reply_to,
                if m.edited { " [edited]" } else { "" },
                if m.deleted { " [deleted]" } else { "" },
            );
        }
    }
    let _ = write!(
        out,
        "\n  gateway: {} connections open ({} opened), {} sessions, {} identifies, {} resumes, {} refused resumes, client closes {:?}",
        st.connections.len(),
        st.connections_opened,
        st.sessions.len(),
        st.identifies,
        st.resumes,
        st.refused_resumes,
        st.client_closes,
    );
    let _ = write!(out, "\n  last REST requests:");
    for r in st.requests.iter().rev().take(10).rev() {
        let _ = write!(out, "\n    {} {} -> {}", r.method, r.path, r.status);
    }
    out
}
