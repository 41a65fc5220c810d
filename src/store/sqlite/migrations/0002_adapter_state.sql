-- Small values an adapter keeps across restarts (catch-up cursors, sync tokens).
CREATE TABLE adapter_state (
    network TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (network, key)
) WITHOUT ROWID;
