//! End-to-end encryption (`chat_core::e2ee`): opening arbitrary bytes as an encrypted packet
//! from a sender whose published key is known, unknown or someone else's; what opens must be a
//! plaintext chat or reaction packet, and cannot be opened twice. A plaintext chat or reaction
//! in the input is also sealed and opened again, and must come back as the same packet.
//!
//! Input: `[selector][payload…]`; the selector picks the sender's key (the real one, none,
//! another) and the recipient named in the associated data.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use chat_core::e2ee::{E2ee, OpenError, SessionKey};
use chat_core::packet::{self, Payload};
use libfuzzer_sys::fuzz_target;
use private_chat_fuzz::e2ee_keys::{ALICE, ALICE_IKM, BOB, BOB_IKM, OTHER_IKM};

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("e2ee_open"),
    |data: &[u8]| {
    let [selector, payload @ ..] = data else {
        return;
    };
    let alice_key = SessionKey::derive(ALICE_IKM).public();
    let other_key = SessionKey::derive(OTHER_IKM).public();
    let mut bob = E2ee::new(SessionKey::derive(BOB_IKM));
    let sender_key = match selector % 3 {
        0 => Some(alice_key),
        1 => None,
        _ => Some(other_key),
    };
    let recipient = if selector & 0x10 == 0 { BOB } else { ALICE };
    match bob.open(ALICE, recipient, sender_key.as_ref(), payload) {
        Ok(plain) => {
            match packet::decode_payload(&plain) {
                Ok(Payload::Message(_) | Payload::MessageWithReceipt(_) | Payload::Reaction(_))
                | Err(_) => {}
                Ok(Payload::Receipt(_)) => panic!("a receipt came out of a sealed packet"),
            }
            assert!(!packet::is_encrypted(&plain), "a sealed packet inside a sealed packet");
            assert_eq!(
                bob.open(ALICE, recipient, sender_key.as_ref(), payload),
                Err(OpenError::Replayed)
            );
        }
        Err(OpenError::NoSenderKey) => assert!(sender_key.is_none()),
        Err(_) => {}
    }

    // A plaintext chat or reaction: sealed by Alice for Bob, it opens to the same packet (a
    // reaction's address is the sender's once opened).
    if matches!(
        packet::decode_payload(payload),
        Ok(Payload::Message(_) | Payload::MessageWithReceipt(_) | Payload::Reaction(_))
    ) {
        let mut alice = E2ee::new(SessionKey::derive(ALICE_IKM));
        let mut bob = E2ee::new(SessionKey::derive(BOB_IKM));
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_400);
        let Ok(sealed) = alice.seal(ALICE, BOB, &bob.public(), payload, now) else {
            return; // too long once sealed: refused, not truncated
        };
        assert!(sealed.len() <= packet::MAX_PACKET_PAYLOAD);
        let opened = bob
            .open(ALICE, BOB, Some(&alice_key), &sealed)
            .expect("what Alice sealed for Bob opens");
        let (before, after) = (packet::decode_payload(payload), packet::decode_payload(&opened));
        match (before, after) {
            (Ok(Payload::Reaction(mut b)), Ok(Payload::Reaction(a))) => {
                // The reacting address travels as the sender's identity: the sender's own, or
                // none, comes back as the sender's.
                if b.address.is_empty() || b.address.eq_ignore_ascii_case(ALICE) {
                    b.address = ALICE.to_owned();
                }
                assert_eq!(a, b);
            }
            (
                Ok(Payload::Message(b) | Payload::MessageWithReceipt(b)),
                Ok(Payload::Message(a) | Payload::MessageWithReceipt(a)),
            ) => {
                assert_eq!(a.text, b.text);
                // -0.0 travels as 0.0 (protobuf's default); NaN stays NaN.
                assert!(
                    a.timestamp == b.timestamp || (a.timestamp.is_nan() && b.timestamp.is_nan()),
                    "{} became {}",
                    b.timestamp,
                    a.timestamp
                );
            }
            (b, a) => panic!("{b:?} came back as {a:?}"),
        }
    }
});
