//! Connection settings and numbered migrations (`migrations/NNNN_name.sql`).

use rusqlite::{Connection, OptionalExtension};

pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_adapter_state.sql")),
    (3, include_str!("migrations/0003_room_sequence.sql")),
    (4, include_str!("migrations/0004_dead_letter_indexes.sql")),
];

/// WAL pages past which the checkpointer copies the WAL back into the database
/// (SQLite's own default is 1,000). A checkpoint writes each page back once however
/// often it changed since the last one, and most commits change the same pages again
/// (the outbox, its index, the newest messages) or a leaf of the native-id index that
/// an earlier commit changed too; fewer, larger checkpoints write back fewer pages per
/// message (docs/benchmarks.md). The WAL is normally reused from its start after each.
pub const CHECKPOINT_PAGES: i64 = 4_000;

/// The writer's connection: WAL, and no syncs of its own.
///
/// The writer hands a commit to delivery as soon as it is written (in the kernel, safe
/// from a crash of this process) and `sync` makes it durable with one `fdatasync` of
/// the WAL before anyone is told it is accepted (docs/durability.md). So SQLite must
/// not sync on commit (that would put the disk back between a message and its
/// delivery), nor checkpoint on this connection: a checkpoint without syncs could
/// let the WAL be reused before the database file holds its pages. Checkpoints run
/// on the checkpointer's connection (`configure_checkpointer`), which syncs them.
pub fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    configure_common(conn)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(())
}

/// The checkpointer's connection: it syncs the WAL before copying it back and the
/// database file after (`synchronous = FULL`, from `configure_common`), so the WAL is
/// reused only once its pages are on disk.
pub fn configure_checkpointer(conn: &Connection) -> rusqlite::Result<()> {
    configure_common(conn)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(())
}

/// Settings both connections share; commits made by a connection configured only
/// this far (migrations, `begin_run`) are synced by SQLite itself.
pub fn configure_common(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

/// Outbox ids a run may hand out before its range would reach the next run's.
const OUTBOX_IDS_PER_RUN: i64 = 1 << 32;

/// Starts a run: moves the outbox's id counter to the start of a range no earlier
/// run used, in a synced commit, before anything is accepted.
///
/// Outbox ids name deliveries outside the store (the delivery key, and with it the
/// Matrix transaction id, of an event without a native id is built from one). A commit written but not yet synced is lost with a power cut, and
/// AUTOINCREMENT would then hand its ids out again for other messages, which a
/// destination could take for retries of the lost ones and drop. Each run's ids start
/// past every id an earlier run could have handed out, synced or not.
pub fn begin_run(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let current: i64 = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let next_range = (current / OUTBOX_IDS_PER_RUN + 1) * OUTBOX_IDS_PER_RUN;
    tx.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'", [])?;
    tx.execute(
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?1)",
        [next_range],
    )?;
    tx.commit()
}

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (version, sql) in MIGRATIONS {
        if *version > current {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_leaves_syncing_and_checkpoints_to_its_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("db.sqlite3")).unwrap();
        let pragma = |name: &str| -> i64 {
            conn.pragma_query_value(None, name, |row| row.get(0))
                .unwrap()
        };
        assert_eq!(pragma("synchronous"), 0, "OFF: `sync` fsyncs the WAL");
        assert_eq!(pragma("wal_autocheckpoint"), 0, "the checkpointer does it");
    }

    #[test]
    fn every_run_hands_out_outbox_ids_no_earlier_run_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("db.sqlite3")).unwrap();
        configure_common(&conn).unwrap();
        migrate(&mut conn).unwrap();
        let insert = |conn: &Connection| -> i64 {
            conn.execute(
                "INSERT INTO bridged_message (origin_network, origin_room, sender_name, event, created_ms) \
                 VALUES ('a', 'r', 's', '{}', 0)",
                [],
            )
            .unwrap();
            let bridged = conn.last_insert_rowid();
            conn.execute(
                "INSERT INTO outbox (bridged_id, route, network, room, seq, created_ms) VALUES (?1, 'r', 'b', 'r', ?1, 0)",
                [bridged],
            )
            .unwrap();
            conn.last_insert_rowid()
        };
        begin_run(&mut conn).unwrap();
        let first = insert(&conn);
        assert_eq!(first, OUTBOX_IDS_PER_RUN + 1);
        // A run whose last rows were lost (never synced) must not reuse their ids.
        insert(&conn);
        conn.execute("DELETE FROM outbox WHERE id > ?1", [first])
            .unwrap();
        begin_run(&mut conn).unwrap();
        assert_eq!(insert(&conn), 2 * OUTBOX_IDS_PER_RUN + 1);
    }
}
