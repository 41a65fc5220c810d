//! The SQLite store against its contract: migrations, ordering, dedup, retention.

