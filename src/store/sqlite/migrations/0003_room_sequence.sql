-- Order per destination room comes from a per-room sequence assigned in the accept
-- transaction, no longer from the outbox's AUTOINCREMENT ids (which a PostgreSQL or
-- multi-writer store would not give in commit order per room). `last_seq` is the
-- last number handed out in that room; numbers are never reused there.
CREATE TABLE room_sequence (
    network  TEXT    NOT NULL,
    room     TEXT    NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (network, room)
) WITHOUT ROWID;

ALTER TABLE outbox ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
-- Rows pending from before keep their order: their ids increase within each room.
UPDATE outbox SET seq = id;
INSERT INTO room_sequence (network, room, last_seq)
    SELECT network, room, MAX(seq) FROM outbox GROUP BY network, room;
DROP INDEX outbox_by_room;
CREATE UNIQUE INDEX outbox_by_room_seq ON outbox (network, room, seq);

-- A duplicate is found by the native-id map's primary key at insert time; the
-- message row written just before is then deleted, and deleting a message makes
-- SQLite look for rows that refer to it. These keep that look-up short (partial:
-- only edits, replies and thread messages pay for them).
CREATE INDEX bridged_message_by_target ON bridged_message (target_id) WHERE target_id IS NOT NULL;
CREATE INDEX bridged_message_by_reply ON bridged_message (reply_to_id) WHERE reply_to_id IS NOT NULL;
CREATE INDEX bridged_message_by_thread ON bridged_message (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX dead_letter_by_bridged ON dead_letter (bridged_id);
