//! Relaying a run's messages to the core: live gateway events (created, edited,
//! deleted) and the catch-up that fills the gap after a restart or a new session,
//! each moving the channel's cursor (the last message id relayed, saved as adapter
//! state every few seconds) so that nothing is relayed twice.

use super::*;

impl Live {
    fn cursor(&self, channel: u64) -> Option<u64> {
        lock(&self.cursors).latest.get(&channel).copied()
    }

    /// Moves the channel's cursor to `id` if it is later.
    fn advance(&self, channel: u64, id: u64) {
        let mut cursors = lock(&self.cursors);
        let later = cursors
            .latest
            .get(&channel)
            .is_none_or(|current| id > *current);
        if later {
            cursors.latest.insert(channel, id);
            cursors.unsaved.insert(channel);
        }
    }

    /// Saves the cursors moved since the last save. A cursor saved late only makes a
    /// catch-up fetch again what the core recognises as duplicates.
    pub async fn save_cursors(&self, ctx: &AdapterContext) -> Result<(), AdapterError> {
        let moved: Vec<(u64, u64)> = {
            let mut cursors = lock(&self.cursors);
            let unsaved = std::mem::take(&mut cursors.unsaved);
            unsaved
                .into_iter()
                .filter_map(|channel| cursors.latest.get(&channel).map(|id| (channel, *id)))
                .collect()
        };
        for (channel, id) in moved {
            ctx.state
                .save(&cursor_key(channel), &id.to_string())
                .await
                .map_err(state_error)?;
        }
        Ok(())
    }

    /// Relays a new message (gateway or catch-up), once: a message at or before its
    /// channel's cursor was relayed already (a resumed session replays, catch-up and
    /// the gateway overlap).
    pub async fn relay_created(
        &self,
        ctx: &AdapterContext,
        message: &Message,
    ) -> Result<(), SubmitError> {
        if message.guild_id.is_some_and(|guild| guild != self.guild) {
            return Ok(());
        }
        let channel = message.channel_id.get();
        let Some((room, thread)) = self.place_of(channel).await else {
            return Ok(());
        };
        if self
            .cursor(channel)
            .is_some_and(|cursor| message.id.get() <= cursor)
        {
            return Ok(());
        }
        let key = RoomKey {
            network: ctx.network.clone(),
            room,
        };
        if let Some(event) = self
            .translator
            .translate(key, message, thread, Change::Created)
            .await
        {
            ctx.inbound.submit_unacknowledged(event).await?;
        }
        self.advance(channel, message.id.get());
        Ok(())
    }

    pub async fn relay_edited(
        &self,
        ctx: &AdapterContext,
        message: &Message,
    ) -> Result<(), SubmitError> {
        if message.guild_id.is_some_and(|guild| guild != self.guild) {
            return Ok(());
        }
        let Some((room, thread)) = self.place_of(message.channel_id.get()).await else {
            return Ok(());
        };
        if self.own_message(message.id.get()) {
            return Ok(());
        }
        let key = RoomKey {
            network: ctx.network.clone(),
            room,
        };
        if let Some(event) = self
            .translator
            .translate(key, message, thread, Change::Edited)
            .await
        {
            ctx.inbound.submit_unacknowledged(event).await?;
        }
        Ok(())
    }

    pub async fn relay_deleted(
        &self,
        ctx: &AdapterContext,
        channel: u64,
        message: u64,
    ) -> Result<(), SubmitError> {
        if self.own_message(message) {
            return Ok(());
        }
        let Some((room, thread)) = self.place_of(channel).await else {
            return Ok(());
        };
        let key = RoomKey {
            network: ctx.network.clone(),
            room,
        };
        let event = self.translator.deleted(key, message, thread);
        ctx.inbound.submit_unacknowledged(event).await.map(drop)
    }

    /// Relays what the routed channels (and their known threads) received after their
    /// cursors, at most `max_age` back, oldest first per room.
    pub async fn catch_up(
        &self,
        ctx: &AdapterContext,
        max_age: Duration,
    ) -> Result<(), AdapterError> {
        let floor = snowflake_at(now_ms().saturating_sub(max_age.as_millis() as i64));
        let channels: Vec<u64> = lock(&self.rooms).by_channel.keys().copied().collect();
        for channel in channels {
            let Some(start) = self.cursor(channel) else {
                continue;
            };
            let mut messages = self.history_after(channel, start.max(floor)).await?;
            let threads: Vec<u64> = lock(&self.threads)
                .iter()
                .filter(|(_, parent)| **parent == channel)
                .map(|(thread, _)| *thread)
                .collect();
            for thread in threads {
                // A thread without a cursor of its own starts where its channel did.
                let saved = ctx
                    .state
                    .load(&cursor_key(thread))
                    .await
                    .map_err(state_error)?
                    .and_then(|value| value.parse::<u64>().ok());
                let from = self.cursor(thread).or(saved).unwrap_or(start);
                lock(&self.cursors).latest.entry(thread).or_insert(from);
                messages.extend(self.history_after(thread, from.max(floor)).await?);
            }
            messages.sort_by_key(|message| message.id);
            messages.dedup_by_key(|message| message.id);
            if !messages.is_empty() {
                let oldest = messages.first().map(|m| snowflake_ms(m.id.get()));
                tracing::info!(network = %ctx.network, channel, count = messages.len(), oldest_ms = oldest, "Discord: catching up");
            }
            for message in &messages {
                self.relay_created(ctx, message)
                    .await
                    .map_err(submit_error)?;
            }
        }
        self.save_cursors(ctx).await
    }

    /// Every message of `channel` after the id `after`, oldest first (the API pages
    /// them newest first, `PAGE` at a time).
    async fn history_after(&self, channel: u64, after: u64) -> Result<Vec<Message>, AdapterError> {
        let Some(id) = Id::<ChannelMarker>::new_checked(channel) else {
            return Ok(Vec::new());
        };
        let mut all = Vec::new();
        let mut after = after;
        while let Some(from) = Id::new_checked(after.max(1)) {
            let page: Vec<Message> = match read(
                self.http.channel_messages(id).after(from).limit(PAGE),
            )
            .await
            {
                Ok(page) => page,
                Err(failure) if failure.is_permanent() => {
                    // A thread deleted or archived away, a channel made unreadable:
                    // nothing to catch up there, and no reason to fail the others.
                    tracing::warn!(network = %self.network, channel, error = %failure.explain(), "Discord: cannot read the channel's history; not caught up");
                    break;
                }
                Err(failure) => {
                    return Err(failure.into_adapter_error("GET /channels/{id}/messages"));
                }
            };
            let full = page.len() >= usize::from(PAGE);
            let newest = page.iter().map(|message| message.id.get()).max();
            all.extend(page.into_iter().filter(|message| message.id.get() > after));
            match newest {
                Some(newest) if full && newest > after => after = newest,
                _ => break,
            }
        }
        all.sort_by_key(|message| message.id);
        Ok(all)
    }
}
