//! Routing: which rooms form one conversation, and the path of an event from an
//! adapter to every other room of its routes.
//!
//! The table is immutable and shared behind an `ArcSwap`, so a reload can swap in a
//! new one while events flow; each event sees one consistent table.

mod backlog;
pub mod delivery;
mod ingest;
pub mod policy;
pub mod render;

use crate::config::{Direction, IgnoreRules, RouteConfig};
use arc_swap::ArcSwap;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use switchboard_sdk::{EventKind, Inbound, NetworkId, RoomId, RoomKey};

pub use crate::store::Destination;
pub use ingest::Ingest;

#[derive(Debug, Clone)]
pub struct Member {
    pub room: RoomKey,
    pub direction: Direction,
    pub nick_template: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: Arc<str>,
    pub members: Vec<Member>,
    pub nick_template: String,
    pub relay_membership: bool,
    pub ignore: IgnoreRules,
    pub max_age: Option<Duration>,
}

impl Route {
    pub fn member(&self, room: &RoomKey) -> Option<&Member> {
        self.members.iter().find(|member| &member.room == room)
    }

    fn ignores(&self, event: &Inbound) -> bool {
        let sender = &event.sender;
        if self
            .ignore
            .nicks
            .iter()
            .any(|re| re.is_match(&sender.display_name) || re.is_match(&sender.id))
        {
            return true;
        }
        if !self.ignore.text.is_empty() {
            let text = event.content.to_plain();
            return self.ignore.text.iter().any(|re| re.is_match(&text));
        }
        false
    }
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: Vec<Route>,
    by_room: HashMap<RoomKey, Vec<usize>>,
}

/// The live routing table; `load()` gives a consistent snapshot.
pub type SharedRoutes = Arc<ArcSwap<RoutingTable>>;

impl RoutingTable {
    /// Builds the table; `canonical` turns a configured room name into the form its
    /// network's adapter uses in events.
    pub fn build(routes: &[RouteConfig], canonical: impl Fn(&NetworkId, &str) -> RoomId) -> Self {
        let mut table = RoutingTable::default();
        for config in routes {
            let members = config
                .rooms
                .iter()
                .map(|room| {
                    let network = NetworkId::new(room.network.clone());
                    let room_id = canonical(&network, &room.room);
                    Member {
                        room: RoomKey {
                            network,
                            room: room_id,
                        },
                        direction: room.direction,
                        nick_template: room.nick_template.clone(),
                    }
                })
                .collect::<Vec<_>>();
            let index = table.routes.len();
            for member in &members {
                table
                    .by_room
                    .entry(member.room.clone())
                    .or_default()
                    .push(index);
            }
            table.routes.push(Route {
                name: Arc::from(config.name.as_str()),
                members,
                nick_template: config.nick_template.clone(),
                relay_membership: config.relay_membership,
                ignore: config.ignore.clone(),
                max_age: config.max_age,
            });
        }
        table
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|route| &*route.name == name)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route a queued row for `room` is delivered under: the route it was queued
    /// for while that still links the room; otherwise (the route was renamed, or the
    /// room moved to another route by a reload) a route that still has the room,
    /// preferring one that also has the row's origin. `None` once no route has the
    /// room: its rows are dead-lettered as `route_removed`.
    pub fn route_for(
        &self,
        queued_for: &str,
        room: &RoomKey,
        origin: &RoomKey,
    ) -> Option<(&Route, &Member)> {
        if let Some(found) = self
            .route(queued_for)
            .and_then(|route| Some((route, route.member(room)?)))
        {
            return Some(found);
        }
        let candidates = self.by_room.get(room)?;
        let pick = candidates
            .iter()
            .find(|&&index| self.routes[index].member(origin).is_some())
            .or_else(|| candidates.first())?;
        let route = &self.routes[*pick];
        Some((route, route.member(room)?))
    }

    /// Whether any route has `room`.
    pub fn has_room(&self, room: &RoomKey) -> bool {
        self.by_room.contains_key(room)
    }

    /// Every room that appears in a route.
    pub fn rooms(&self) -> BTreeSet<RoomKey> {
        self.by_room.keys().cloned().collect()
    }

    /// The rooms of one network, for its adapter to join.
    pub fn rooms_of(&self, network: &NetworkId) -> Vec<RoomId> {
        let rooms: BTreeSet<RoomId> = self
            .by_room
            .keys()
            .filter(|key| &key.network == network)
            .map(|key| key.room.clone())
            .collect();
        rooms.into_iter().collect()
    }

    /// Every room this event must reach: each route containing its room (as a sender),
    /// minus the origin, rooms that do not receive, and routes whose rules skip it.
    /// A room reached by several routes gets the event once.
    pub fn destinations(&self, event: &Inbound) -> Vec<Destination> {
        let Some(route_indexes) = self.by_room.get(&event.room) else {
            return Vec::new();
        };
        let membership = event.kind.is_membership() || event.kind == EventKind::Topic;
        let mut out: Vec<Destination> = Vec::new();
        for &index in route_indexes {
            let route = &self.routes[index];
            let Some(origin) = route.member(&event.room) else {
                continue;
            };
            if !origin.direction.sends()
                || (membership && !route.relay_membership)
                || route.ignores(event)
            {
                continue;
            }
            for member in &route.members {
                if member.room == event.room
                    || !member.direction.receives()
                    || out.iter().any(|existing| existing.room == member.room)
                {
                    continue;
                }
                out.push(Destination {
                    route: route.name.clone(),
                    room: member.room.clone(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
