//! The roster: the other participants in the room, built from the JoinResponse and kept current
//! by `ParticipantUpdate`s. Pure logic; every change becomes a [`RosterEvent`].
//!
//! Bounded ([`RosterLimits`]): at most `max_participants` entries (default
//! [`MAX_PARTICIPANTS`]); identities over [`MAX_IDENTITY_BYTES`] or sids over [`MAX_SID_BYTES`]
//! are not listed; metadata over `max_metadata_bytes` (default [`MAX_METADATA_BYTES`]) is kept
//! as an empty string, and attributes over `max_metadata_bytes` in all (keys and values) are kept
//! as none. Each refusal is counted ([`Roster::take_counts`]). So the roster holds at most
//! `max_participants × (identity + sid + 2 × metadata limit + ~200 bytes)`: about 120 MiB
//! with the defaults in the worst case, about 16 MiB for 50,000 Decentraland wallets (42-byte
//! identities, ~45-byte privacy metadata, a 72-byte `chat_key` attribute).

use std::collections::{BTreeMap, HashMap};

use livekit_protocol::ParticipantInfo;
use livekit_protocol::participant_info::State;

/// Default most participants listed; newcomers past it are not listed (counted).
pub const MAX_PARTICIPANTS: usize = 50_000;
/// Default longest metadata kept; longer metadata is kept as `""` (counted). LiveKit allows up
/// to 512 KiB; the gatekeeper's is `{"private_messages_privacy":"…"}`.
pub const MAX_METADATA_BYTES: usize = 1024;
/// Longest identity listed (a wallet address is 42 bytes).
pub const MAX_IDENTITY_BYTES: usize = 256;
/// Longest participant sid listed (LiveKit's are ~15 bytes).
pub const MAX_SID_BYTES: usize = 64;

/// The roster's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterLimits {
    pub max_participants: usize,
    pub max_metadata_bytes: usize,
}

impl Default for RosterLimits {
    fn default() -> Self {
        RosterLimits {
            max_participants: MAX_PARTICIPANTS,
            max_metadata_bytes: MAX_METADATA_BYTES,
        }
    }
}

/// What the roster refused since the last [`Roster::take_counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RosterCounts {
    /// Participants not listed: the roster was full, or the identity or sid was too long.
    pub not_listed: u64,
    /// Metadata over the limit, kept as `""`, or attributes over it, kept as none.
    pub metadata_cut: u64,
}

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
    /// The participant's attributes (LiveKit `ParticipantInfo.attributes`), set by its token
    /// or by the server's RoomService; e.g. the end-to-end encryption key `chat_key`.
    pub attributes: BTreeMap<String, String>,
    pub state: PresenceState,
    pub version: u32,
}

impl RemoteParticipant {
    fn from_info(info: &ParticipantInfo, max_metadata: usize) -> Self {
        let attribute_bytes: usize = info.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        RemoteParticipant {
            identity: info.identity.clone(),
            sid: info.sid.clone(),
            metadata: if info.metadata.len() > max_metadata {
                String::new()
            } else {
                info.metadata.clone()
            },
            attributes: if attribute_bytes > max_metadata {
                BTreeMap::new()
            } else {
                info.attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            },
            state: PresenceState::from_proto(info.state),
            version: info.version,
        }
    }

    /// One attribute's value.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Bytes this entry owns on the heap (for queue accounting).
    pub fn heap_bytes(&self) -> usize {
        self.identity.len()
            + self.sid.len()
            + self.metadata.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
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
    /// The attributes changed and the metadata did not (when both change, the event is
    /// [`RosterEvent::MetadataChanged`], whose participant carries the new attributes). A new
    /// session of the same identity (a reconnection) with other attributes is one too.
    AttributesChanged(RemoteParticipant),
}

/// The other participants, by identity.
#[derive(Debug, Default, Clone)]
pub struct Roster {
    me: String,
    by_identity: HashMap<String, RemoteParticipant>,
    limits: RosterLimits,
    counts: RosterCounts,
}

impl Roster {
    /// An empty roster for the local participant `me` (whose own updates are ignored).
    pub fn new(me: &str) -> Self {
        Roster::with_limits(me, RosterLimits::default())
    }

    /// An empty roster with other bounds.
    pub fn with_limits(me: &str, limits: RosterLimits) -> Self {
        Roster {
            me: me.to_owned(),
            by_identity: HashMap::new(),
            limits,
            counts: RosterCounts::default(),
        }
    }

    /// What was refused since the last call (and resets the counts).
    pub fn take_counts(&mut self) -> RosterCounts {
        std::mem::take(&mut self.counts)
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
        if info.identity.len() > MAX_IDENTITY_BYTES || info.sid.len() > MAX_SID_BYTES {
            self.counts.not_listed += 1;
            return None;
        }
        let incoming = RemoteParticipant::from_info(info, self.limits.max_metadata_bytes);
        let cut = incoming.metadata.len() != info.metadata.len()
            || incoming.attributes.len() != info.attributes.len();
        match self.by_identity.get(&info.identity) {
            None => {
                if incoming.state == PresenceState::Disconnected {
                    return None;
                }
                if self.by_identity.len() >= self.limits.max_participants {
                    self.counts.not_listed += 1;
                    return None;
                }
                if cut {
                    self.counts.metadata_cut += 1;
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
                if cut {
                    self.counts.metadata_cut += 1;
                }
                let previous = current.metadata.clone();
                let attributes_changed = current.attributes != incoming.attributes;
                self.by_identity
                    .insert(incoming.identity.clone(), incoming.clone());
                if previous != incoming.metadata {
                    Some(RosterEvent::MetadataChanged {
                        participant: incoming,
                        previous,
                    })
                } else if attributes_changed {
                    Some(RosterEvent::AttributesChanged(incoming))
                } else {
                    None
                }
            }
        }
    }

    /// Replaces the roster with a fresh list (after a (re)connect) and reports what changed
    /// relative to what we knew: joins, leaves and metadata changes.
    pub fn rebuild(&mut self, me: &str, infos: &[ParticipantInfo]) -> Vec<RosterEvent> {
        let mut fresh = Roster::with_limits(me, self.limits);
        fresh.counts = self.counts;
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
                Some(new) if new.attributes != old.attributes => {
                    events.push(RosterEvent::AttributesChanged(new.clone()))
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
    fn attributes_are_kept_bounded_and_their_changes_reported() {
        let with = |sid: &str, version: u32, key: &str| ParticipantInfo {
            attributes: [("chat_key".to_owned(), key.to_owned())].into(),
            ..info("0xa", sid, version, State::Active, "{}")
        };
        let mut r = Roster::new("me");
        let Some(RosterEvent::Joined(p)) = r.apply(&with("PA_1", 1, "k1")) else {
            panic!("joined")
        };
        assert_eq!(p.attribute("chat_key"), Some("k1"));
        // Same metadata, new attributes: an attributes change.
        let Some(RosterEvent::AttributesChanged(p)) = r.apply(&with("PA_1", 2, "k2")) else {
            panic!("attributes changed")
        };
        assert_eq!(p.attribute("chat_key"), Some("k2"));
        assert_eq!(r.apply(&with("PA_1", 3, "k2")), None);
        // A reconnection (new sid) with a new key is one too.
        let Some(RosterEvent::AttributesChanged(p)) = r.apply(&with("PA_2", 1, "k3")) else {
            panic!("new session, new key")
        };
        assert_eq!(
            (p.sid.as_str(), p.attribute("chat_key")),
            ("PA_2", Some("k3"))
        );
        // Over the bound: kept as none, counted.
        let big = "x".repeat(MAX_METADATA_BYTES);
        let Some(RosterEvent::AttributesChanged(p)) = r.apply(&with("PA_2", 2, &big)) else {
            panic!("cut")
        };
        assert!(p.attributes.is_empty());
        assert_eq!(r.take_counts().metadata_cut, 1);
        // A rebuild reports attribute changes too.
        let events = r.rebuild("me", &[with("PA_2", 3, "k4")]);
        assert!(
            matches!(&events[..], [RosterEvent::AttributesChanged(p)] if p.attribute("chat_key") == Some("k4")),
            "{events:?}"
        );
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
    fn the_roster_is_bounded() {
        let limits = RosterLimits {
            max_participants: 3,
            max_metadata_bytes: 10,
        };
        let mut r = Roster::with_limits("me", limits);
        for i in 0..10 {
            r.apply(&info(
                &format!("p{i}"),
                &format!("PA_{i}"),
                1,
                State::Active,
                "m",
            ));
        }
        assert_eq!(r.len(), 3);
        let long = "x".repeat(MAX_IDENTITY_BYTES + 1);
        assert!(
            r.apply(&info(&long, "PA_l", 1, State::Active, ""))
                .is_none()
        );
        let long_sid = "S".repeat(MAX_SID_BYTES + 1);
        r.apply(&info("p0", &long_sid, 1, State::Active, ""));
        assert_eq!(r.get("p0").map(|p| p.sid.as_str()), Some("PA_0"));
        // Oversized metadata is kept as "".
        match r.apply(&info("p0", "PA_0", 2, State::Active, &"y".repeat(11))) {
            Some(RosterEvent::MetadataChanged {
                participant,
                previous,
            }) => assert_eq!(
                (participant.metadata.as_str(), previous.as_str()),
                ("", "m")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.take_counts(),
            RosterCounts {
                not_listed: 9,
                metadata_cut: 1
            }
        );
        assert_eq!(r.take_counts(), RosterCounts::default());
        // A rebuild keeps the bounds.
        let infos: Vec<_> = (0..10)
            .map(|i| info(&format!("q{i}"), "PA_q", 1, State::Active, &"z".repeat(20)))
            .collect();
        r.rebuild("me", &infos);
        assert_eq!(r.len(), 3);
        assert!(r.participants().all(|p| p.metadata.is_empty()));
        assert_eq!(
            r.take_counts(),
            RosterCounts {
                not_listed: 7,
                metadata_cut: 3
            }
        );
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
