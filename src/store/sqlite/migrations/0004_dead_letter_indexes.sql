-- Dead letters are read by room (a requeue of a room's letters, in outbox id order)
-- and by age (the newest for the admin page; the oldest for retention). Without these
-- each is a scan of the whole table, which a destination broken for weeks can fill.
-- Dead letters are rare writes, so the indexes cost little.
CREATE INDEX dead_letter_by_room ON dead_letter (network, room, outbox_id);
CREATE INDEX dead_letter_by_age ON dead_letter (dead_ms, outbox_id);
