//! Reactions on the fake server, as API v4 has them: `POST /reactions`,
//! `GET /posts/{id}/reactions`, `DELETE /users/{user}/posts/{post}/reactions/{emoji}`,
//! and the `reaction_added` / `reaction_removed` websocket events (the reaction as a
//! JSON string, broadcast to the post's channel). As on the server, a reaction is
//! known by (user, post, emoji): reacting twice keeps one, the removal event carries
//! no creation time, and a reaction bumps the post's `update_at` (not `edit_at`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Json;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::rest::{parse_json, read_body, require_id, session};
use super::{AppError, FakeMattermost, Inner, State as ServerState, event};

/// One reaction as the API serialises it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reaction {
    pub user_id: String,
    pub post_id: String,
    pub emoji_name: String,
    pub create_at: i64,
}

pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/api/v4/reactions", post(create))
        .route("/api/v4/posts/{post_id}/reactions", get(list))
        .route(
            "/api/v4/users/{user_id}/posts/{post_id}/reactions/{emoji_name}",
            delete(remove),
        )
}

/// `model.Reaction.IsValid`: emoji names of letters, digits, `-`, `+` and `_`.
fn valid_emoji_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '_'))
}

async fn create(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Reaction>, AppError> {
    let me = session(&inner, &headers)?;
    let body: Reaction = parse_json(&read_body(body).await?, "reaction")?;
    if body.user_id != me {
        return Err(AppError::forbidden());
    }
    if !super::is_valid_id(&body.post_id) || !valid_emoji_name(&body.emoji_name) {
        return Err(AppError::invalid_body("reaction"));
    }
    Ok(Json(inner.react(&me, &body.post_id, &body.emoji_name)?))
}

async fn list(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(post_id): Path<String>,
) -> Result<Json<Vec<Reaction>>, AppError> {
    let me = session(&inner, &headers)?;
    require_id(&post_id, "post_id")?;
    let st = inner.lock();
    let channel = st
        .post_index(&post_id)
        .map(|i| st.posts[i].channel_id.clone());
    match channel {
        Some(channel) if st.is_member(&channel, &me) => Ok(Json(
            st.reactions
                .iter()
                .filter(|r| r.post_id == post_id)
                .cloned()
                .collect(),
        )),
        Some(_) => Err(AppError::forbidden()),
        None => Err(AppError::post_not_found()),
    }
}

async fn remove(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((user_id, post_id, emoji_name)): Path<(String, String, String)>,
) -> Result<Json<Value>, AppError> {
    let me = session(&inner, &headers)?;
    require_id(&user_id, "user_id")?;
    require_id(&post_id, "post_id")?;
    let admin = inner.lock().user(&me).is_some_and(|u| u.is_admin());
    if user_id != me && !admin {
        return Err(AppError::forbidden());
    }
    inner.unreact(&user_id, &post_id, &emoji_name)?;
    Ok(Json(json!({ "status": "OK" })))
}

impl Inner {
    /// `user_id` reacts (once per emoji); `reaction_added` is broadcast.
    fn react(&self, user_id: &str, post_id: &str, emoji_name: &str) -> Result<Reaction, AppError> {
        let reaction = {
            let mut st = self.lock();
            let index = st
                .post_index(post_id)
                .filter(|&i| st.posts[i].delete_at == 0)
                .ok_or_else(AppError::post_not_found)?;
            let channel_id = st.posts[index].channel_id.clone();
            if !st.is_member(&channel_id, user_id) {
                return Err(AppError::forbidden());
            }
            let same = |r: &&Reaction| {
                r.user_id == user_id && r.post_id == post_id && r.emoji_name == emoji_name
            };
            if let Some(existing) = st.reactions.iter().find(same) {
                return Ok(existing.clone());
            }
            let reaction = Reaction {
                user_id: user_id.to_owned(),
                post_id: post_id.to_owned(),
                emoji_name: emoji_name.to_owned(),
                create_at: st.stamp(),
            };
            st.posts[index].update_at = reaction.create_at;
            st.reactions.push(reaction.clone());
            let added = event("reaction_added", reaction_data(&reaction), &channel_id);
            st.send_to_channel(&channel_id, &added, None);
            reaction
        };
        self.bump();
        Ok(reaction)
    }

    /// Takes a reaction back; `reaction_removed` is broadcast, carrying what the
    /// request named (no creation time), as the server does.
    fn unreact(&self, user_id: &str, post_id: &str, emoji_name: &str) -> Result<(), AppError> {
        {
            let mut st = self.lock();
            let index = st
                .post_index(post_id)
                .ok_or_else(AppError::post_not_found)?;
            let channel_id = st.posts[index].channel_id.clone();
            let before = st.reactions.len();
            st.reactions.retain(|r| {
                !(r.user_id == user_id && r.post_id == post_id && r.emoji_name == emoji_name)
            });
            if st.reactions.len() < before {
                st.posts[index].update_at = st.stamp();
                let named = Reaction {
                    user_id: user_id.to_owned(),
                    post_id: post_id.to_owned(),
                    emoji_name: emoji_name.to_owned(),
                    create_at: 0,
                };
                let removed = event("reaction_removed", reaction_data(&named), &channel_id);
                st.send_to_channel(&channel_id, &removed, None);
            }
        }
        self.bump();
        Ok(())
    }
}

fn reaction_data(reaction: &Reaction) -> Value {
    let text = serde_json::to_string(reaction).unwrap_or_default();
    json!({ "reaction": text })
}

impl FakeMattermost {
    /// `user_id` reacts to a post with `emoji_name`, as through the web app (joining
    /// the post's channel first, as `post_as` does).
    pub fn react_as(&self, user_id: &str, post_id: &str, emoji_name: &str) -> Reaction {
        {
            let mut st = self.inner.lock();
            let channel = st
                .post_index(post_id)
                .map(|i| st.posts[i].channel_id.clone());
            if let Some(channel) = channel {
                st.ensure_member(&channel, user_id);
            }
        }
        self.inner
            .react(user_id, post_id, emoji_name)
            .unwrap_or_else(|e| panic!("fake Mattermost: react_as failed: {e:?}"))
    }

    /// `user_id` takes a reaction back.
    pub fn unreact_as(&self, user_id: &str, post_id: &str, emoji_name: &str) {
        self.inner
            .unreact(user_id, post_id, emoji_name)
            .unwrap_or_else(|e| panic!("fake Mattermost: unreact_as failed: {e:?}"));
    }

    /// The reactions a post has now: (user id, emoji name), oldest first.
    pub fn reactions(&self, post_id: &str) -> Vec<(String, String)> {
        reactions_of(&self.inner.lock(), post_id)
    }

    /// Waits (up to `timeout`) until the post's reactions satisfy `done`.
    pub async fn wait_for_reactions(
        &self,
        post_id: &str,
        timeout: std::time::Duration,
        done: impl Fn(&[(String, String)]) -> bool,
    ) -> Vec<(String, String)> {
        let what = format!("the reactions of post {post_id}");
        self.inner
            .wait(&what, timeout, |st| {
                let now = reactions_of(st, post_id);
                done(&now).then_some(now)
            })
            .await
    }
}

fn reactions_of(st: &ServerState, post_id: &str) -> Vec<(String, String)> {
    st.reactions
        .iter()
        .filter(|r| r.post_id == post_id)
        .map(|r| (r.user_id.clone(), r.emoji_name.clone()))
        .collect()
}
