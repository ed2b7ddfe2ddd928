//! The roster: the other participants in the room, built from the JoinResponse and kept current
//! by `ParticipantUpdate`s. Pure logic; every change becomes a [`RosterEvent`].

use std::collections::HashMap;

use livekit_protocol::ParticipantInfo;
use livekit_protocol::participant_info::State;

/// A participant's presence state (LiveKit's `ParticipantInfo.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceState {
    Joining,
    Joined,
    Active,
    Disconnected,
}

impl PresenceState {
    fn from_proto(state: i32) -> Self {
        match State::try_from(state) {
            Ok(State::Joining) => PresenceState::Joining,
            Ok(State::Joined) => PresenceState::Joined,
            Ok(State::Active) => PresenceState::Active,
            Ok(State::Disconnected) | Err(_) => PresenceState::Disconnected,
        }
    }
}

/// Another participant in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParticipant {
    pub identity: String,
    pub sid: String,
    pub metadata: String,
    pub state: PresenceState,
    pub version: u32,
}

impl RemoteParticipant {
    fn from_info(info: &ParticipantInfo) -> Self {
        RemoteParticipant {
            identity: info.identity.clone(),
            sid: info.sid.clone(),
            metadata: info.metadata.clone(),
            state: PresenceState::from_proto(info.state),
            version: info.version,
        }
    }
}

/// A change in the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterEvent {
    Joined(RemoteParticipant),
    Left(RemoteParticipant),
    MetadataChanged {
        participant: RemoteParticipant,
        previous: String,
    },
}

/// The other participants, by identity.
#[derive(Debug, Default, Clone)]
pub struct Roster {
    me: String,
    by_identity: HashMap<String, RemoteParticipant>,
}

impl Roster {
    /// An empty roster for the local participant `me` (whose own updates are ignored).
    pub fn new(me: &str) -> Self {
        Roster {
            me: me.to_owned(),
            by_identity: HashMap::new(),
        }
    }

    pub fn get(&self, identity: &str) -> Option<&RemoteParticipant> {
        self.by_identity.get(identity)
    }

    pub fn participants(&self) -> impl Iterator<Item = &RemoteParticipant> {
        self.by_identity.values()
    }

    pub fn len(&self) -> usize {
        self.by_identity.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty()
    }

    /// Applies one `ParticipantInfo`. Updates older than what we hold are ignored (versions only
    /// compare within one participant session, i.e. the same sid).
    pub fn apply(&mut self, info: &ParticipantInfo) -> Option<RosterEvent> {
        if info.identity.is_empty() || info.identity == self.me {
            return None;
        }
        let incoming = RemoteParticipant::from_info(info);
        match self.by_identity.get(&info.identity) {
            None => {
                if incoming.state == PresenceState::Disconnected {
                    return None;
                }
                self.by_identity
                    .insert(incoming.identity.clone(), incoming.clone());
                Some(RosterEvent::Joined(incoming))
            }
            Some(current) => {
                let same_session = current.sid == incoming.sid;
                if same_session && incoming.version <= current.version {
                    return None;
                }
                if incoming.state == PresenceState::Disconnected {
                    if !same_session {
                        // A stale session leaving after its replacement joined.
                        return None;
                    }
                    let gone = self.by_identity.remove(&info.identity)?;
                    return Some(RosterEvent::Left(RemoteParticipant {
                        state: PresenceState::Disconnected,
                        ..gone
                    }));
                }
                let previous = current.metadata.clone();
                self.by_identity
                    .insert(incoming.identity.clone(), incoming.clone());
                (previous != incoming.metadata).then_some(RosterEvent::MetadataChanged {
                    participant: incoming,
                    previous,
                })
            }
        }
    }

    /// Replaces the roster with a fresh list (after a (re)connect) and reports what changed
    /// relative to what we knew: joins, leaves and metadata changes.
    pub fn rebuild(&mut self, me: &str, infos: &[ParticipantInfo]) -> Vec<RosterEvent> {
        let mut fresh = Roster::new(me);
        for info in infos {
            fresh.apply(info);
        }
        let mut events = Vec::new();
        for (identity, old) in &self.by_identity {
            match fresh.by_identity.get(identity) {
                None => events.push(RosterEvent::Left(RemoteParticipant {
                    state: PresenceState::Disconnected,
                    ..old.clone()
                })),
                Some(new) if new.metadata != old.metadata => {
                    events.push(RosterEvent::MetadataChanged {
                        participant: new.clone(),
                        previous: old.metadata.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        for (identity, new) in &fresh.by_identity {
            if !self.by_identity.contains_key(identity) {
                events.push(RosterEvent::Joined(new.clone()));
            }
        }
        *self = fresh;
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(
        identity: &str,
        sid: &str,
        version: u32,
        state: State,
        metadata: &str,
    ) -> ParticipantInfo {
        ParticipantInfo {
            identity: identity.into(),
            sid: sid.into(),
            version,
            state: state as i32,
            metadata: metadata.into(),
            ..Default::default()
        }
    }

    #[test]
    fn joins_metadata_changes_and_leaves() {
        let mut r = Roster::new("me");
        assert!(
            r.apply(&info("me", "PA_me", 1, State::Active, ""))
                .is_none()
        );
        assert!(matches!(
            r.apply(&info("a", "PA_a", 1, State::Joined, "m1")),
            Some(RosterEvent::Joined(_))
        ));
        assert!(
            r.apply(&info("a", "PA_a", 2, State::Active, "m1"))
                .is_none(),
            "state only"
        );
        // An older version is ignored.
        assert!(
            r.apply(&info("a", "PA_a", 1, State::Active, "old"))
                .is_none()
        );
        match r.apply(&info("a", "PA_a", 3, State::Active, "m2")) {
            Some(RosterEvent::MetadataChanged {
                participant,
                previous,
            }) => {
                assert_eq!(
                    (participant.metadata.as_str(), previous.as_str()),
                    ("m2", "m1")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.apply(&info("a", "PA_a", 4, State::Disconnected, "m2")),
            Some(RosterEvent::Left(_))
        ));
        assert!(r.is_empty());
        // A disconnect for someone unknown is ignored.
        assert!(
            r.apply(&info("b", "PA_b", 9, State::Disconnected, ""))
                .is_none()
        );
    }

    #[test]
    fn a_replacing_session_is_not_removed_by_the_old_one_leaving() {
        let mut r = Roster::new("me");
        r.apply(&info("a", "PA_1", 5, State::Active, "x"));
        // Same identity reconnects with a new sid and a lower version.
        assert!(r.apply(&info("a", "PA_2", 1, State::Active, "x")).is_none());
        assert_eq!(r.get("a").map(|p| p.sid.as_str()), Some("PA_2"));
        assert!(
            r.apply(&info("a", "PA_1", 6, State::Disconnected, "x"))
                .is_none()
        );
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn rebuild_reports_the_difference() {
        let mut r = Roster::new("me");
        r.apply(&info("a", "PA_a", 1, State::Active, "m"));
        r.apply(&info("b", "PA_b", 1, State::Active, "m"));
        let mut events = r.rebuild(
            "me",
            &[
                info("b", "PA_b2", 1, State::Active, "n"),
                info("c", "PA_c", 1, State::Active, ""),
            ],
        );
        events.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, RosterEvent::Left(p) if p.identity == "a"))
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, RosterEvent::Joined(p) if p.identity == "c"))
        );
        assert!(events.iter().any(|e| matches!(e, RosterEvent::MetadataChanged { participant, .. } if participant.identity == "b")));
    }
}
