-- One row per accepted inbound event (the "bridged message"), whatever its kind.
CREATE TABLE bridged_message (
    id               INTEGER PRIMARY KEY,
    origin_network   TEXT    NOT NULL,
    origin_room      TEXT    NOT NULL,
    origin_native_id TEXT,
    -- For edits/deletes: the bridged message they change; for replies: the one answered.
    target_id        INTEGER REFERENCES bridged_message(id),
    reply_to_id      INTEGER REFERENCES bridged_message(id),
    thread_id        INTEGER REFERENCES bridged_message(id),
    sender_name      TEXT    NOT NULL,
    event            TEXT    NOT NULL, -- the normalised Inbound event as JSON
    created_ms       INTEGER NOT NULL,
    deleted_ms       INTEGER
);

-- Which native message is which bridged message: the origin (part -1) and every copy
-- we made (parts 0..n, e.g. one per IRC line). Also the dedup/echo index.
CREATE TABLE native_copy (
    network    TEXT    NOT NULL,
    room       TEXT    NOT NULL,
    native_id  TEXT    NOT NULL,
    bridged_id INTEGER NOT NULL REFERENCES bridged_message(id),
    part       INTEGER NOT NULL,
    PRIMARY KEY (network, room, native_id)
) WITHOUT ROWID;
CREATE INDEX native_copy_by_bridged ON native_copy (bridged_id, network, room, part);

-- Deliveries still to make, one per destination room; delivered rows are deleted.
-- AUTOINCREMENT: ids never repeat, even when the table empties, because delivery
-- workers walk each room's rows with an increasing id cursor.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    bridged_id INTEGER NOT NULL REFERENCES bridged_message(id),
    route      TEXT    NOT NULL,
    network    TEXT    NOT NULL,
    room       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX outbox_by_room ON outbox (network, room, id);

-- Deliveries that will never be made, with the reason.
CREATE TABLE dead_letter (
    outbox_id  INTEGER PRIMARY KEY,
    bridged_id INTEGER NOT NULL REFERENCES bridged_message(id),
    route      TEXT    NOT NULL,
    network    TEXT    NOT NULL,
    room       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    dead_ms    INTEGER NOT NULL
);
