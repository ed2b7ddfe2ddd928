//! Sharded private-messages rooms (issue #11; the design is the repository's
//! `docs/sharded-rooms.md`): the gatekeeper may spread the players over K LiveKit rooms so that
//! LiveKit can place them on different nodes (a LiveKit room must fit on one node). Everything
//! here is a pure function that the gatekeeper, the client SDK and the benches must compute
//! alike, so it lives in the core crate:
//!
//! - **room names**: room 0 is the configured room itself (`PRIVATE_MESSAGES_ROOM_ID`, the one
//!   room the reference client knows); room k > 0 is `"{room}-{k}"`;
//! - **home room**: the room a player is reachable in, from its lower-case address:
//!   `floor(mix(fnv1a64(address)) · K / 2⁶⁴)`, where `mix` is SplitMix64's finaliser: the mixed
//!   hash's high bits scaled to K ("fast range") rather than `% K`. FNV-1a alone leaves its high
//!   bits poorly mixed for addresses that differ in their last digits (as a bench's numbered
//!   wallets do), hence the finaliser; and the gatekeeper's node preference
//!   (`LIVEKIT_NODE_URLS`) takes the plain hash modulo the node count, so the home room does not
//!   decide the signalling node. Scaling also means that doubling K splits each room in two
//!   (home `h` under K becomes `2h` or `2h + 1` under 2K), so a re-shard moves players only
//!   between a room and its two halves.
//!
//! K = 1 gives every player room 0: exactly the single room of ADR-208.

use std::fmt;

/// Most rooms the private messages may be spread over (`PRIVATE_MESSAGES_ROOM_SHARDS`).
pub const MAX_ROOM_SHARDS: u32 = 64;

/// A room count outside `1..=MAX_ROOM_SHARDS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the number of private-messages rooms must be between 1 and {MAX_ROOM_SHARDS}, not {0}")]
pub struct InvalidShardCount(pub u64);

/// A room index outside `0..K`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid room: expected a number from 0 to {max}")]
pub struct InvalidRoomIndex {
    /// The highest valid index (K − 1).
    pub max: u32,
}

/// FNV-1a, 64 bit: a small hash that is the same in every process, version and language (std's
/// hasher makes no such promise; a crate for eight lines is not worth it). The gatekeeper's node
/// preference and the home room both use it.
pub fn stable_hash(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The home room (`0..shards`) of `address`, compared case-insensitively; `shards` 0 is taken
/// as 1. See the module docs for the formula.
pub fn home_room(address: &str, shards: u32) -> u32 {
    let h = mix(stable_hash(address.bytes().map(|b| b.to_ascii_lowercase())));
    let k = u128::from(shards.max(1));
    // (h · K) >> 64 < K ≤ u32::MAX: the cast cannot truncate.
    ((u128::from(h) * k) >> 64) as u32
}

/// SplitMix64's finaliser (Steele, Lea and Flood 2014): every input bit reaches every output
/// bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The name of room `index` of the rooms based on `base`: `base` itself for 0, else
/// `"{base}-{index}"`.
pub fn room_name(base: &str, index: u32) -> String {
    if index == 0 {
        base.to_owned()
    } else {
        format!("{base}-{index}")
    }
}

/// K private-messages rooms based on one room name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomShards {
    base: String,
    count: u32,
}

impl RoomShards {
    /// `count` rooms based on `base` (checked: `1..=MAX_ROOM_SHARDS`).
    pub fn new(base: &str, count: u64) -> Result<RoomShards, InvalidShardCount> {
        match u32::try_from(count) {
            Ok(c) if (1..=MAX_ROOM_SHARDS).contains(&c) => Ok(RoomShards {
                base: base.to_owned(),
                count: c,
            }),
            _ => Err(InvalidShardCount(count)),
        }
    }

    /// K.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Room 0's name, the configured room.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The name of room `index` (see [`room_name`]); the index is not checked.
    pub fn name(&self, index: u32) -> String {
        room_name(&self.base, index)
    }

    /// Every room's name, room 0 first.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.count).map(|i| self.name(i))
    }

    /// `address`'s home room.
    pub fn home(&self, address: &str) -> u32 {
        home_room(address, self.count)
    }

    /// `index` if it names one of these rooms.
    pub fn check(&self, index: u32) -> Result<u32, InvalidRoomIndex> {
        if index < self.count {
            Ok(index)
        } else {
            Err(self.invalid())
        }
    }

    /// A room index as written in a request: 1 to 3 decimal digits, nothing else.
    pub fn parse(&self, text: &str) -> Result<u32, InvalidRoomIndex> {
        if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid());
        }
        text.parse::<u32>()
            .map_err(|_| self.invalid())
            .and_then(|i| self.check(i))
    }

    fn invalid(&self) -> InvalidRoomIndex {
        InvalidRoomIndex {
            max: self.count - 1,
        }
    }
}

impl fmt::Display for RoomShards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} × {}", self.count, self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_64() {
        // Known FNV-1a 64 values.
        assert_eq!(stable_hash(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(*b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn names_keep_room_0_and_number_the_others() {
        assert_eq!(room_name("private-messages", 0), "private-messages");
        assert_eq!(room_name("private-messages", 3), "private-messages-3");
        let s = RoomShards::new("pm", 3).expect("valid");
        assert_eq!(s.names().collect::<Vec<_>>(), ["pm", "pm-1", "pm-2"]);
        assert_eq!(s.to_string(), "3 × pm");
    }

    #[test]
    fn counts_and_indexes_are_checked() {
        for bad in [0, 65, u64::from(u32::MAX) + 1] {
            assert_eq!(RoomShards::new("r", bad), Err(InvalidShardCount(bad)));
        }
        let s = RoomShards::new("r", 4).expect("valid");
        assert_eq!(s.parse("0"), Ok(0));
        assert_eq!(s.parse("3"), Ok(3));
        assert_eq!(s.parse("003"), Ok(3));
        for bad in [
            "",
            "4",
            "-1",
            "+1",
            " 1",
            "1 ",
            "x",
            "0x1",
            "99999999999",
            "1.0",
        ] {
            assert_eq!(s.parse(bad), Err(InvalidRoomIndex { max: 3 }), "{bad:?}");
        }
        assert_eq!(
            InvalidRoomIndex { max: 3 }.to_string(),
            "Invalid room: expected a number from 0 to 3"
        );
    }

    /// Fixed vectors: the gatekeeper, every client version and the benches must agree on them,
    /// so they may never change.
    #[test]
    fn home_rooms_are_fixed() {
        let got: Vec<[u32; 4]> = VECTOR_ADDRESSES
            .iter()
            .map(|x| {
                [
                    home_room(x, 1),
                    home_room(x, 2),
                    home_room(x, 4),
                    home_room(x, 64),
                ]
            })
            .collect();
        assert_eq!(got, VECTORS);
        // Case does not matter; 0 rooms is taken as 1.
        let a = VECTOR_ADDRESSES[0];
        assert_eq!(home_room(&a.to_ascii_uppercase(), 64), home_room(a, 64));
        assert_eq!(home_room(a, 0), 0);
    }

    const VECTOR_ADDRESSES: [&str; 4] = [
        "0x23c86705dd3a3855d939322c53379d42a4e365ee",
        "0x0000000000000000000000000000000000000001",
        "0xffffffffffffffffffffffffffffffffffffffff",
        "0x8e0f2a7e9b1f1e5a0f0c2f6e1d4b3a2c5d6e7f80",
    ];
    /// Computed independently (a Python transcription of the formula) when first written.
    const VECTORS: [[u32; 4]; 4] = [[0, 1, 2, 47], [0, 0, 1, 28], [0, 1, 3, 62], [0, 0, 0, 2]];

    #[test]
    fn every_player_is_in_room_0_with_one_room_and_players_spread_otherwise() {
        let ids: Vec<String> = (0..4_000u32).map(|i| format!("0x{i:040x}")).collect();
        assert!(ids.iter().all(|a| home_room(a, 1) == 0));
        for k in [2u32, 4, 7, 64] {
            let mut per_room = vec![0usize; k as usize];
            for a in &ids {
                per_room[home_room(a, k) as usize] += 1;
            }
            let fair = ids.len() / k as usize;
            for (room, n) in per_room.iter().enumerate() {
                assert!(
                    *n > fair / 2 && *n < fair * 2,
                    "K={k}: room {room} has {n} of {} (fair {fair})",
                    ids.len()
                );
            }
        }
    }

    #[test]
    fn doubling_the_rooms_splits_each_in_two() {
        for i in 0..2_000u32 {
            let a = format!("0x{i:040x}");
            for k in [1u32, 2, 4, 8, 16, 32] {
                let h = home_room(&a, k);
                assert!(
                    [2 * h, 2 * h + 1].contains(&home_room(&a, 2 * k)),
                    "{a}: K={k} → {h}"
                );
            }
        }
    }

    #[test]
    fn the_home_room_does_not_follow_the_node_preference() {
        // The gatekeeper prefers node `hash % n`; with K = n = 2 the home room must not be the
        // same function, or every room's players would signal through one node.
        let ids: Vec<String> = (0..2_000u32).map(|i| format!("0x{i:040x}")).collect();
        let same = ids
            .iter()
            .filter(|a| u64::from(home_room(a, 2)) == stable_hash(a.bytes()) % 2)
            .count();
        assert!((700..1_300).contains(&same), "{same} of 2000 agree");
    }
}
