//! Data packets: building outgoing `DataPacket`s with sequence and nonce, decoding incoming
//! ones, size limits, and the de-duplication that keeps a packet from reaching the application
//! twice.

use std::collections::{HashSet, VecDeque};

use livekit_protocol::{DataPacket, UserPacket, data_packet};
use prost::Message;

pub use crate::channel::{MAX_LOSSY_PAYLOAD, MAX_RELIABLE_PAYLOAD, Reliability};
use crate::error::SendError;

/// Longest topic accepted.
pub const MAX_TOPIC_BYTES: usize = 256;
/// Most destination identities in one packet.
pub const MAX_DESTINATIONS: usize = 256;

/// A user packet that arrived, with the sender identity set by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingPacket {
    pub sender: String,
    pub topic: Option<String>,
    pub payload: Vec<u8>,
    pub reliability: Reliability,
}

/// Checks a send request against the limits before anything is sent.
pub fn check_limits(
    payload: &[u8],
    destinations: &[String],
    topic: Option<&str>,
    reliability: Reliability,
) -> Result<(), SendError> {
    let max = reliability.max_payload();
    if payload.len() > max {
        return Err(SendError::PayloadTooLarge {
            size: payload.len(),
            max,
            reliability,
        });
    }
    if topic.is_some_and(|t| t.len() > MAX_TOPIC_BYTES) {
        return Err(SendError::TopicTooLong {
            max: MAX_TOPIC_BYTES,
        });
    }
    if destinations.len() > MAX_DESTINATIONS {
        return Err(SendError::TooManyDestinations {
            max: MAX_DESTINATIONS,
        });
    }
    Ok(())
}

/// Builds the wire bytes of a user packet.
pub fn encode_user_packet(
    payload: &[u8],
    destinations: &[String],
    topic: Option<&str>,
    reliability: Reliability,
    sequence: u32,
    nonce: [u8; 16],
) -> Vec<u8> {
    let kind = match reliability {
        Reliability::Reliable => data_packet::Kind::Reliable,
        Reliability::Lossy => data_packet::Kind::Lossy,
    };
    #[allow(deprecated)]
    let packet = DataPacket {
        kind: kind as i32,
        destination_identities: destinations.to_vec(),
        sequence,
        value: Some(data_packet::Value::User(UserPacket {
            payload: payload.to_vec(),
            destination_identities: destinations.to_vec(),
            topic: topic.map(str::to_owned),
            nonce: nonce.to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    };
    packet.encode_to_vec()
}

/// What a received data-channel message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A user packet for the application.
    User {
        packet: IncomingPacket,
        sequence: u32,
        nonce: Vec<u8>,
    },
    /// A valid packet of another kind (chat, RPC, streams…), ignored by this participant.
    Other,
}

/// Decodes one data-channel message. An undecodable message is an error (count it and drop it).
pub fn decode(bytes: &[u8], reliability: Reliability) -> Result<Decoded, prost::DecodeError> {
    let packet = DataPacket::decode(bytes)?;
    match packet.value {
        Some(data_packet::Value::User(user)) => {
            #[allow(deprecated)]
            let sender = if packet.participant_identity.is_empty() {
                user.participant_identity
            } else {
                packet.participant_identity
            };
            Ok(Decoded::User {
                packet: IncomingPacket {
                    sender,
                    topic: user.topic,
                    payload: user.payload,
                    reliability,
                },
                sequence: packet.sequence,
                nonce: user.nonce,
            })
        }
        _ => Ok(Decoded::Other),
    }
}

/// Packets remembered by the de-duplicator (the newest ones; older ones are forgotten).
pub const DEDUP_CAPACITY: usize = 16_384;

/// Remembers recently seen (sender, nonce) pairs so that the same packet is delivered once,
/// also when a reconnect makes a packet arrive again. Packets without a nonce cannot be told
/// apart and are always delivered.
///
/// Bounded in bytes, whatever the senders send: a pair is remembered as a 16-byte digest (two
/// SipHash-1-3 values under random keys chosen per process, so a sender cannot aim for a
/// collision with another's packet), at most `capacity` of them, the oldest forgotten first: under
/// 100 bytes a packet with the table's slack, at most 1.5 MiB for [`DEDUP_CAPACITY`]. Nonces of any length are accepted and
/// de-duplicated alike (LiveKit's SDKs send 16 bytes; the server only forwards what it got), so
/// a 60,000-byte nonce costs the same 16 bytes as a normal one.
#[derive(Debug)]
pub struct Deduplicator {
    capacity: usize,
    keys: [std::collections::hash_map::RandomState; 2],
    seen: HashSet<[u8; 16]>,
    order: VecDeque<[u8; 16]>,
}

impl Deduplicator {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Deduplicator {
            capacity,
            keys: [
                std::collections::hash_map::RandomState::new(),
                std::collections::hash_map::RandomState::new(),
            ],
            seen: HashSet::with_capacity(capacity + 1),
            order: VecDeque::with_capacity(capacity + 1),
        }
    }

    fn digest(&self, sender: &str, nonce: &[u8]) -> [u8; 16] {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut out = [0u8; 16];
        for (half, key) in out.chunks_exact_mut(8).zip(&self.keys) {
            let mut h = key.build_hasher();
            sender.hash(&mut h);
            nonce.hash(&mut h);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        out
    }

    /// True when the packet is new and should be delivered.
    pub fn admit(&mut self, sender: &str, nonce: &[u8]) -> bool {
        if nonce.is_empty() {
            return true;
        }
        let key = self.digest(sender, nonce);
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Pairs remembered now (at most the capacity).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Bytes held, allocation included (keys are 16 bytes whatever the nonce).
    pub fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket besides the key.
        self.seen.capacity() * (16 + 1) + self.order.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let dest = vec!["0xabc".to_owned()];
        let bytes = encode_user_packet(
            b"hi",
            &dest,
            Some("0xabc"),
            Reliability::Reliable,
            7,
            [1; 16],
        );
        let mut p = DataPacket::decode(bytes.as_slice()).expect("decodes");
        p.participant_identity = "0xsender".into();
        match decode(&p.encode_to_vec(), Reliability::Reliable).expect("decodes") {
            Decoded::User {
                packet,
                sequence,
                nonce,
            } => {
                assert_eq!(packet.sender, "0xsender");
                assert_eq!(packet.topic.as_deref(), Some("0xabc"));
                assert_eq!(packet.payload, b"hi");
                assert_eq!(sequence, 7);
                assert_eq!(nonce, vec![1; 16]);
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(&[0xff, 0xff, 0xff], Reliability::Lossy).is_err());
        assert!(
            check_limits(
                &[0; MAX_RELIABLE_PAYLOAD],
                &dest,
                None,
                Reliability::Reliable
            )
            .is_ok()
        );
        assert!(matches!(
            check_limits(
                &[0; MAX_RELIABLE_PAYLOAD + 1],
                &dest,
                None,
                Reliability::Reliable
            ),
            Err(SendError::PayloadTooLarge { .. })
        ));
        assert!(
            check_limits(&[0; MAX_LOSSY_PAYLOAD + 1], &dest, None, Reliability::Lossy).is_err()
        );
    }

    #[test]
    fn duplicates_are_dropped_and_memory_is_bounded() {
        let mut d = Deduplicator::new(3);
        assert!(d.admit("a", &[1]));
        assert!(!d.admit("a", &[1]));
        assert!(d.admit("b", &[1]), "per sender");
        assert!(d.admit("a", &[2]));
        assert!(d.admit("a", &[3]));
        assert_eq!(d.seen.len(), 3);
        assert!(d.admit("a", &[1]), "forgotten after capacity");
        assert!(d.admit("a", &[]), "no nonce: cannot tell, deliver");
    }

    #[test]
    fn huge_nonces_cost_what_small_ones_do() {
        let mut d = Deduplicator::new(1_000);
        let before = d.heap_bytes();
        let mut nonce = vec![0u8; 60_000];
        for i in 0..5_000u32 {
            nonce[..4].copy_from_slice(&i.to_le_bytes());
            assert!(d.admit("flooder", &nonce));
        }
        assert_eq!(d.len(), 1_000);
        // The table may double once (hash-table tombstones), never more.
        assert!(
            d.heap_bytes() <= 2 * before,
            "{} > 2 × {before}",
            d.heap_bytes()
        );
        assert!(d.heap_bytes() < 100 * 1_000, "{}", d.heap_bytes());
        // The latest are still recognised; the same nonce from someone else is not a duplicate.
        assert!(!d.admit("flooder", &nonce));
        assert!(d.admit("someone-else", &nonce));
        // The default capacity stays under 1 MiB.
        let mut d = Deduplicator::new(DEDUP_CAPACITY);
        for i in 0..3 * DEDUP_CAPACITY as u32 {
            d.admit("a", &i.to_le_bytes());
        }
        assert!(d.heap_bytes() <= 1536 * 1024, "{}", d.heap_bytes());
    }
}
