//! The gateway: one shard (twilight), which identifies, heartbeats, resumes a dropped
//! session by itself (replaying what was missed) and identifies again when Discord
//! refuses the resume. After each READY (a new session: whatever was said while none
//! was open is missing) the adapter waits for the guild's GUILD_CREATE (its threads),
//! catches up over REST, then relays the events that arrived meanwhile; after RESUMED
//! nothing is missing. A close code no retry can fix (4004 bad token, 4014 intents
//! not allowed...) fails the run with a clear message.

use crate::session::{Live, submit_error};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use switchboard_sdk::{AdapterContext, AdapterError, ConnectionState};
use tokio_util::sync::CancellationToken;
use twilight_gateway::{
    CloseFrame, ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, ShardState,
    StreamExt as _,
};
use twilight_model::gateway::CloseCode;
use twilight_model::gateway::payload::incoming::GuildCreate;

/// How often moved catch-up cursors are written while events flow.
const CURSOR_SAVE_EVERY: Duration = Duration::from_secs(3);
/// How long after READY the guild's GUILD_CREATE is awaited before catching up
/// without it (it brings the active threads).
const GUILD_WAIT: Duration = Duration::from_secs(5);
/// How often the shard's state is looked at: twilight reconnects after a dropped
/// connection inside one poll, without an event, so a drop shows only there.
const STATE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// The events the adapter reads.
fn wanted() -> EventTypeFlags {
    EventTypeFlags::READY
        | EventTypeFlags::RESUMED
        | EventTypeFlags::GUILD_CREATE
        | EventTypeFlags::MESSAGE_CREATE
        | EventTypeFlags::MESSAGE_UPDATE
        | EventTypeFlags::MESSAGE_DELETE
        | EventTypeFlags::MESSAGE_DELETE_BULK
        | EventTypeFlags::THREAD_CREATE
        | EventTypeFlags::THREAD_UPDATE
        | EventTypeFlags::THREAD_DELETE
        | EventTypeFlags::THREAD_LIST_SYNC
        | EventTypeFlags::CHANNEL_CREATE
        | EventTypeFlags::CHANNEL_UPDATE
        | EventTypeFlags::ROLE_CREATE
        | EventTypeFlags::ROLE_UPDATE
        | EventTypeFlags::MEMBER_UPDATE
        | EventTypeFlags::GATEWAY_INVALIDATE_SESSION
        | EventTypeFlags::GATEWAY_RECONNECT
}

pub fn intents(content: bool) -> Intents {
    let base = Intents::GUILDS | Intents::GUILD_MESSAGES;
    if content {
        base | Intents::MESSAGE_CONTENT
    } else {
        base
    }
}

pub struct Gateway<'a> {
    pub live: Arc<Live>,
    pub ctx: &'a AdapterContext,
    pub identify_queue: twilight_gateway::queue::InMemoryQueue,
    pub token: String,
    pub url: Option<String>,
    pub max_age: Duration,
    /// Reported connected, and not reported reconnecting since.
    pub up: AtomicBool,
}

/// Why a close code ends the run, for the operator; `None` when twilight reconnects.
pub fn fatal_close(code: u16) -> Option<AdapterError> {
    let close = CloseCode::try_from(code).ok()?;
    if close.can_reconnect() {
        return None;
    }
    Some(match close {
        CloseCode::AuthenticationFailed => AdapterError::Auth(
            "the gateway refused the bot token (close code 4004 Authentication failed); reset the token in the Developer Portal and update the config".into(),
        ),
        CloseCode::DisallowedIntents => AdapterError::Config(
            "the gateway refused the intents asked for (close code 4014 Disallowed intents): enable the Message Content Intent in the Developer Portal (Bot, Privileged Gateway Intents)".into(),
        ),
        CloseCode::InvalidIntents => AdapterError::Config(
            "the gateway refused the intents asked for (close code 4013 Invalid intents)".into(),
        ),
        CloseCode::InvalidApiVersion => AdapterError::Protocol(
            "the gateway no longer serves API v10 (close code 4012 Invalid API version); update Switchboard".into(),
        ),
        CloseCode::ShardingRequired | CloseCode::InvalidShard => AdapterError::Config(format!(
            "the gateway wants the bot sharded (close code {code} {close}): the bot is in too many servers for one connection"
        )),
        other => AdapterError::Protocol(format!(
            "the gateway closed the connection for good (close code {code} {other})"
        )),
    })
}

impl Gateway<'_> {
    pub async fn run(&self, cancel: &CancellationToken) -> Result<(), AdapterError> {
        let mut config = ConfigBuilder::new(self.token.clone(), intents(self.live.content_intent))
            .queue(self.identify_queue.clone());
        if let Some(url) = &self.url {
            config = config.proxy_url(url.trim_end_matches('/').to_owned());
        }
        let mut shard = Shard::with_config(ShardId::ONE, config.build());
        let result = self.read(&mut shard, cancel).await;
        if cancel.is_cancelled() {
            shard.close(CloseFrame::NORMAL);
        }
        let saved = self.live.save_cursors(self.ctx).await;
        result.and(saved)
    }

    async fn read(
        &self,
        shard: &mut Shard,
        cancel: &CancellationToken,
    ) -> Result<(), AdapterError> {
        let ctx = self.ctx;
        let mut rooms = ctx.rooms.clone();
        let mut save = tokio::time::interval(CURSOR_SAVE_EVERY);
        let mut check = tokio::time::interval(STATE_CHECK_EVERY);
        // Events held back while a new session catches up.
        let mut held: Option<Vec<Event>> = None;
        let guild_wait = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(guild_wait);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                wanted = rooms.changed() => {
                    self.live.follow_rooms(ctx, &wanted).await?;
                }
                _ = save.tick() => self.live.save_cursors(ctx).await?,
                _ = check.tick() => {
                    if shard.state() != ShardState::Active && self.up.swap(false, Ordering::Relaxed) {
                        tracing::info!(network = %ctx.network, state = ?shard.state(), "Discord: the gateway connection dropped; reconnecting");
                        ctx.health.report(ConnectionState::Reconnecting {
                            last_error: "Discord: the gateway connection dropped; reconnecting".into(),
                        });
                    }
                }
                () = &mut guild_wait, if held.is_some() => {
                    tracing::debug!(network = %ctx.network, "Discord: no GUILD_CREATE after READY; catching up without it");
                    self.caught_up(held.take().unwrap_or_default()).await?;
                }
                // Cancel-safe (twilight's docs): a dropped future loses no event.
                item = shard.next_event(wanted()) => {
                    let event = match item {
                        None => {
                            // The shard ended after a fatal close (reported there).
                            return Err(AdapterError::Connection("the gateway connection ended".into()));
                        }
                        Some(Err(error)) => {
                            tracing::info!(network = %ctx.network, %error, "Discord: gateway error; twilight reconnects");
                            self.up.store(false, Ordering::Relaxed);
                            ctx.health.report(ConnectionState::Reconnecting {
                                last_error: format!("Discord gateway: {error}"),
                            });
                            continue;
                        }
                        Some(Ok(event)) => event,
                    };
                    match event {
                        Event::Ready(ready) => {
                            tracing::info!(network = %ctx.network, session = %ready.session_id, "Discord: gateway session ready; catching up");
                            held = Some(Vec::new());
                            guild_wait.as_mut().reset(tokio::time::Instant::now() + GUILD_WAIT);
                        }
                        Event::GuildCreate(guild) => {
                            self.learn_guild(&guild);
                            if guild.id() == self.live.guild && held.is_some() {
                                self.caught_up(held.take().unwrap_or_default()).await?;
                            }
                        }
                        Event::Resumed => {
                            tracing::info!(network = %ctx.network, "Discord: gateway session resumed");
                            if held.is_none() {
                                self.connected();
                            }
                        }
                        Event::GatewayClose(frame) => {
                            let code = frame.as_ref().map(|frame| frame.code);
                            let reason = frame
                                .as_ref()
                                .map(|frame| frame.reason.to_string())
                                .unwrap_or_default();
                            if shard.state() == ShardState::FatallyClosed
                                && let Some(error) = code.and_then(fatal_close)
                            {
                                ctx.health.report(ConnectionState::Failed {
                                    last_error: format!("Discord: {error}"),
                                });
                                tracing::error!(network = %ctx.network, %error, "Discord: the gateway connection cannot go on");
                                return Err(error);
                            }
                            let shown = match code {
                                Some(code) => format!("the gateway closed the connection (code {code} {reason}); resuming"),
                                None => "the gateway connection dropped; resuming".to_owned(),
                            };
                            tracing::info!(network = %ctx.network, "Discord: {shown}");
                            self.up.store(false, Ordering::Relaxed);
                            ctx.health.report(ConnectionState::Reconnecting {
                                last_error: format!("Discord: {shown}"),
                            });
                        }
                        Event::GatewayInvalidateSession(resumable) => {
                            tracing::info!(network = %ctx.network, resumable, "Discord: the gateway invalidated the session");
                        }
                        event => match &mut held {
                            Some(held) if is_message(&event) => held.push(event),
                            _ => self.handle(event).await?,
                        },
                    }
                }
            }
        }
    }

    /// Catch-up done for a new session: the held events follow, then the network
    /// (and each of its rooms) is reported connected.
    async fn caught_up(&self, held: Vec<Event>) -> Result<(), AdapterError> {
        self.live.catch_up(self.ctx, self.max_age).await?;
        for event in held {
            self.handle(event).await?;
        }
        self.live.save_cursors(self.ctx).await?;
        self.connected();
        Ok(())
    }

    /// Connected again: the rooms joined (a state other than Connected made the core
    /// forget them), then the network.
    fn connected(&self) {
        self.up.store(true, Ordering::Relaxed);
        for room in self.live.joined_rooms() {
            self.ctx.health.joined(&room);
        }
        self.ctx.health.report(ConnectionState::Connected);
    }

    fn learn_guild(&self, guild: &GuildCreate) {
        let GuildCreate::Available(guild) = guild else {
            return;
        };
        if guild.id != self.live.guild {
            return;
        }
        let translator = &self.live.translator;
        for channel in guild.channels.iter().chain(&guild.threads) {
            self.live.learn_channel(channel);
        }
        for role in &guild.roles {
            translator.know_role(role.id.get(), role.name.clone());
        }
        for member in &guild.members {
            translator.know_member(member);
        }
    }

    async fn handle(&self, event: Event) -> Result<(), AdapterError> {
        let live = &self.live;
        let ctx = self.ctx;
        match event {
            Event::MessageCreate(message) => live
                .relay_created(ctx, &message.message)
                .await
                .map_err(submit_error)?,
            Event::MessageUpdate(message) => live
                .relay_edited(ctx, &(*message).0)
                .await
                .map_err(submit_error)?,
            Event::MessageDelete(deleted)
                if deleted.guild_id.is_none_or(|guild| guild == live.guild) =>
            {
                live.relay_deleted(ctx, deleted.channel_id.get(), deleted.id.get())
                    .await
                    .map_err(submit_error)?;
            }
            Event::MessageDeleteBulk(deleted)
                if deleted.guild_id.is_none_or(|guild| guild == live.guild) =>
            {
                for id in deleted.ids {
                    live.relay_deleted(ctx, deleted.channel_id.get(), id.get())
                        .await
                        .map_err(submit_error)?;
                }
            }
            Event::ThreadCreate(thread) => live.learn_channel(&(*thread).0),
            Event::ThreadUpdate(thread) => live.learn_channel(&(*thread).0),
            Event::ThreadDelete(thread) => live.forget_thread(thread.id.get()),
            Event::ThreadListSync(sync) => {
                for thread in &sync.threads {
                    live.learn_channel(thread);
                }
            }
            Event::ChannelCreate(channel) => live.learn_channel(&(*channel).0),
            Event::ChannelUpdate(channel) => live.learn_channel(&(*channel).0),
            Event::RoleCreate(role) => live
                .translator
                .know_role(role.role.id.get(), role.role.name.clone()),
            Event::RoleUpdate(role) => live
                .translator
                .know_role(role.role.id.get(), role.role.name.clone()),
            Event::MemberUpdate(member) => live.translator.know_user(
                member.user.id.get(),
                crate::inbound::shown_name(member.nick.as_deref(), &member.user),
            ),
            _ => {}
        }
        Ok(())
    }
}

fn is_message(event: &Event) -> bool {
    matches!(
        event,
        Event::MessageCreate(_)
            | Event::MessageUpdate(_)
            | Event::MessageDelete(_)
            | Event::MessageDeleteBulk(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_close_codes_end_the_run_with_a_reason() {
        assert!(matches!(fatal_close(4004), Some(AdapterError::Auth(_))));
        let intents = fatal_close(4014).unwrap().to_string();
        assert!(intents.contains("Message Content"), "{intents}");
        assert!(matches!(fatal_close(4013), Some(AdapterError::Config(_))));
        assert!(fatal_close(4012).is_some());
        for resumable in [4000, 4001, 4002, 4003, 4005, 4007, 4008, 4009] {
            assert!(fatal_close(resumable).is_none(), "{resumable}");
        }
        assert!(fatal_close(1000).is_none());
    }

    #[test]
    fn message_content_is_asked_for_only_when_the_app_has_it() {
        assert!(intents(true).contains(Intents::MESSAGE_CONTENT));
        assert!(!intents(false).contains(Intents::MESSAGE_CONTENT));
        assert!(intents(false).contains(Intents::GUILDS | Intents::GUILD_MESSAGES));
    }
}
