//! LiveKit data packets: arbitrary bytes through `packet::decode` (both reliabilities), the
//! de-duplicator over what decodes, and a re-encode of user packets with
//! `encode_user_packet` that must decode to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livekit_participant::Reliability;
use livekit_participant::packet::{Decoded, Deduplicator, decode, encode_user_packet};

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("livekit_data_packet"),
    |data: &[u8]| {
    let mut dedup = Deduplicator::new(4);
    for reliability in [Reliability::Reliable, Reliability::Lossy] {
        let Ok(decoded) = decode(data, reliability) else {
            continue;
        };
        let Decoded::User {
            packet,
            sequence,
            nonce,
        } = decoded
        else {
            continue;
        };
        assert_eq!(packet.reliability, reliability);
        let first = dedup.admit(&packet.sender, &nonce);
        let second = dedup.admit(&packet.sender, &nonce);
        // A packet without a nonce cannot be told apart: always delivered.
        if nonce.is_empty() {
            assert!(first && second);
        } else {
            assert!(!second, "the same (sender, nonce) was admitted twice in a row");
        }
        if let Ok(fixed) = <[u8; 16]>::try_from(nonce.as_slice()) {
            let bytes = encode_user_packet(
                &packet.payload,
                &[],
                packet.topic.as_deref(),
                reliability,
                sequence,
                fixed,
            );
            match decode(&bytes, reliability) {
                Ok(Decoded::User {
                    packet: p2,
                    sequence: s2,
                    nonce: n2,
                }) => {
                    assert_eq!(p2.payload, packet.payload);
                    assert_eq!(p2.topic, packet.topic);
                    assert_eq!(s2, sequence);
                    assert_eq!(n2, nonce);
                }
                other => panic!("a re-encoded user packet decoded as {other:?}"),
            }
        }
    }
});
