//! Connection settings and numbered migrations (`migrations/NNNN_name.sql`).

use rusqlite::Connection;

pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_adapter_state.sql")),
    (3, include_str!("migrations/0003_room_sequence.sql")),
];

/// WAL pages written before the writer copies them back into the database (SQLite's
/// default is 1,000). A checkpoint writes each page back once however often it changed
/// since the last one, and most commits change the same pages again (the outbox, its
/// index, the newest messages) or a leaf of the native-id index that an earlier commit
/// changed too. With 4,000 pages, fewer checkpoints write back fewer pages per message
/// (docs/benchmarks.md). The WAL file grows to ~16 MB and is normally reused from its
/// start after each checkpoint.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 4_000;

/// WAL with full fsync on commit: a committed event survives a crash or power loss.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
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
    #[test]
    fn the_store_writer_syncs_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("db.sqlite3")).unwrap();
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!(
            synchronous, 2,
            "FULL: a commit is on disk before the messages in it are acknowledged"
        );
    }
}
