//! `NetworkConnector`: what the daemon knows about one protocol before any network of
//! it runs. The connector reads and checks a network's config section, says how the
//! protocol writes room names (the only place rooms are canonicalised) and which
//! names cannot be rooms, and builds the running network from the section.
//!
//! The daemon holds one connector per protocol in a single list and never names a
//! protocol's types: sections travel as `dyn NetworkSection` and only the connector
//! that read one looks inside it again.

use crate::adapter::Adapter;
use crate::error::{AdapterError, ConfigProblem};
use crate::ids::RoomId;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// A protocol's typed config section, read by its connector.
pub trait NetworkSection: Any + Debug + Send + Sync {
    /// Every problem with the values that reading the section could not catch (a nick
    /// with a space, a URL without a scheme), with paths relative to the section.
    fn validate(&self) -> Vec<ConfigProblem>;
}

impl dyn NetworkSection {
    /// The section as its protocol's own type; `None` for another protocol's section.
    pub fn downcast_ref<T: NetworkSection>(&self) -> Option<&T> {
        let any: &dyn Any = self;
        any.downcast_ref()
    }
}

/// Why a section could not be read as its protocol's type: serde's own message (the
/// daemon turns "unknown field" and "missing field" into its hints) and the path of
/// keys, relative to the section, where serde stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionError {
    pub path: Vec<String>,
    pub message: String,
}

/// Why a route's room cannot be a room of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomProblem {
    /// Follows the room as the daemon shows it, e.g. "is not a Matrix room alias or id".
    pub predicate: String,
    pub hint: String,
}

/// One protocol, as the daemon registers it.
pub trait NetworkConnector: Send + Sync + 'static {
    /// The key of the protocol's section under a network (`irc` in
    /// `libera: {irc: ...}`); equal to the `protocol()` of the adapters it builds.
    fn protocol(&self) -> &'static str;

    /// Reads one network's section, given as JSON. Reading stops at the first
    /// problem; the daemon removes the key at the error's path and reads again, so
    /// that one mistake does not hide the next.
    fn read_section(
        &self,
        section: serde_json::Value,
    ) -> Result<Arc<dyn NetworkSection>, SectionError>;

    /// The form of a room name written in the config that the protocol's events use,
    /// so that routes and inbound events agree on the key (IRC ignores case).
    fn canonical_room(&self, room: &str) -> RoomId {
        RoomId::new(room)
    }

    /// Why `room` cannot be a room of this protocol; `None` when it can.
    fn room_problem(&self, _room: &str) -> Option<RoomProblem> {
        None
    }

    /// The running network for a section this connector read.
    fn build(&self, section: &dyn NetworkSection) -> Result<Arc<dyn Adapter>, AdapterError>;
}

/// A protocol described with its own types. Every `Protocol` is a
/// [`NetworkConnector`]: reading the section with serde and handing it back typed to
/// `adapter` is written once here, not in each protocol's crate.
pub trait Protocol: Send + Sync + 'static {
    /// The section key and the adapters' protocol name.
    const NAME: &'static str;
    /// The protocol's config section.
    type Section: NetworkSection + DeserializeOwned;

    /// See [`NetworkConnector::canonical_room`].
    fn canonical(room: &str) -> RoomId {
        RoomId::new(room)
    }

    /// See [`NetworkConnector::room_problem`].
    fn check_room(_room: &str) -> Option<RoomProblem> {
        None
    }

    /// The running network for a section.
    fn adapter(section: &Self::Section) -> Result<Arc<dyn Adapter>, AdapterError>;
}

impl<P: Protocol> NetworkConnector for P {
    fn protocol(&self) -> &'static str {
        P::NAME
    }

    fn read_section(
        &self,
        section: serde_json::Value,
    ) -> Result<Arc<dyn NetworkSection>, SectionError> {
        read_section::<P::Section>(section)
    }

    fn canonical_room(&self, room: &str) -> RoomId {
        P::canonical(room)
    }

    fn room_problem(&self, room: &str) -> Option<RoomProblem> {
        P::check_room(room)
    }

    fn build(&self, section: &dyn NetworkSection) -> Result<Arc<dyn Adapter>, AdapterError> {
        P::adapter(section_as::<P::Section>(P::NAME, section)?)
    }
}

/// Reads a section as `T` with serde, keeping the path to the first problem.
fn read_section<T: NetworkSection + DeserializeOwned>(
    section: serde_json::Value,
) -> Result<Arc<dyn NetworkSection>, SectionError> {
    match serde_path_to_error::deserialize::<_, T>(section) {
        Ok(typed) => Ok(Arc::new(typed)),
        Err(error) => Err(SectionError {
            path: error
                .path()
                .iter()
                .map(|segment| segment.to_string())
                .collect(),
            message: error.inner().to_string(),
        }),
    }
}

/// `section` as `T`, for a connector's `build`; a configuration error when the daemon
/// handed it another protocol's section.
fn section_as<'a, T: NetworkSection>(
    protocol: &str,
    section: &'a dyn NetworkSection,
) -> Result<&'a T, AdapterError> {
    section.downcast_ref::<T>().ok_or_else(|| {
        AdapterError::Config(format!(
            "the {protocol} connector was given another protocol's section"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        name: String,
        #[serde(default)]
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        port: u16,
    }

    impl NetworkSection for Section {
        fn validate(&self) -> Vec<ConfigProblem> {
            if self.name.is_empty() {
                vec![ConfigProblem::value(&["name"], "is empty")]
            } else {
                Vec::new()
            }
        }
    }

    #[derive(Debug)]
    struct Other;

    impl NetworkSection for Other {
        fn validate(&self) -> Vec<ConfigProblem> {
            Vec::new()
        }
    }

    #[test]
    fn a_section_reads_validates_and_comes_back_as_its_type() {
        let section = read_section::<Section>(serde_json::json!({"name": ""})).unwrap();
        assert_eq!(section.validate().len(), 1);
        let typed = section.downcast_ref::<Section>().unwrap();
        assert_eq!((typed.name.as_str(), typed.inner.port), ("", 0));
        assert!(section.downcast_ref::<Other>().is_none());
        let error = section_as::<Other>("test", &*section).unwrap_err();
        assert!(error.to_string().contains("another protocol's section"));
    }

    #[test]
    fn reading_stops_at_the_first_problem_with_its_path() {
        let error = read_section::<Section>(serde_json::json!({"name": "x", "inner": {"prot": 1}}))
            .unwrap_err();
        assert_eq!(error.path, ["inner", "prot"]);
        assert!(
            error.message.starts_with("unknown field `prot`"),
            "{}",
            error.message
        );
        let error =
            read_section::<Section>(serde_json::json!({"inner": {"port": "x"}})).unwrap_err();
        assert_eq!(error.path, ["inner", "port"]);
    }
}
