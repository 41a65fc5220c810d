//! Typed identifiers: networks, rooms, native message ids and room keys.
//!
//! Every id is its own type so a room can never be passed where a message id is
//! expected, and keys are structs rather than joined strings.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_id!(
    /// The operator's name for one configured network (a key of `networks:`).
    NetworkId
);
string_id!(
    /// A room as its adapter names it canonically (e.g. a lower-cased IRC channel).
    RoomId
);
string_id!(
    /// A message id as the native network knows it (or as the adapter minted it).
    NativeMsgId
);

/// One room on one network: the unit that routes and delivery queues are keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoomKey {
    pub network: NetworkId,
    pub room: RoomId,
}

impl RoomKey {
    pub fn new(network: impl Into<NetworkId>, room: impl Into<RoomId>) -> Self {
        Self {
            network: network.into(),
            room: room.into(),
        }
    }
}

impl fmt::Display for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.room)
    }
}
