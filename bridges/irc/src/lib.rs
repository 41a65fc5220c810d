//! The IRC adapter (being written).
