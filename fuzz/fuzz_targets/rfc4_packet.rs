//! The private-message packet (`rfc4.Packet` with a `Chat`): `chat_core::packet::decode` of
//! arbitrary bytes, re-encoding what decodes, and the receive filter over the same packet with a
//! sender and topic taken from the input.
//!
//! Input: `[selector][payload…]`; the selector picks the sender, the topic, the privacy setting
//! and whether a rate limit applies.
#![no_main]

use std::time::{Duration, Instant};

use chat_core::packet::{self, MAX_TEXT_BYTES};
use chat_core::{Filter, Incoming, RateLimit, Rejected, SocialView};
use libfuzzer_sys::fuzz_target;
use pchat_core::Privacy;

const ME: &str = "0x1111111111111111111111111111111111111111";
const FRIEND: &str = "0x2222222222222222222222222222222222222222";
const STRANGER: &str = "0x3333333333333333333333333333333333333333";
const BLOCKED: &str = "0x4444444444444444444444444444444444444444";
const SENDERS: [&str; 6] = [
    FRIEND,
    STRANGER,
    BLOCKED,
    ME,
    "0X2222222222222222222222222222222222222222",
    "not an address",
];

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("rfc4_packet"),
    |data: &[u8]| {
    let [selector, payload @ ..] = data else {
        return;
    };
    let decoded = packet::decode(payload);
    if let Ok(m) = &decoded {
        assert!(!m.text.trim().is_empty() && m.text.len() <= MAX_TEXT_BYTES);
        if let Some(at) = m.sent_at {
            let again = packet::encode(&m.text, at).expect("a decoded text encodes");
            let back = packet::decode(&again).expect("an encoded packet decodes");
            assert_eq!(back.text, m.text);
            let diff = (back.timestamp - m.timestamp).abs();
            assert!(diff < 1e-6, "timestamp drifted by {diff} days");
        }
    }

    let view = SocialView {
        me: ME.into(),
        privacy: if selector & 1 == 1 {
            Privacy::OnlyFriends
        } else {
            Privacy::All
        },
        friends: [FRIEND.to_owned()].into(),
        blocked: [BLOCKED.to_owned()].into(),
        blocked_by: Default::default(),
    };
    let sender = SENDERS[usize::from(selector >> 1) % SENDERS.len()];
    let topic = match (selector >> 4) % 4 {
        0 => ME,
        1 => "0X1111111111111111111111111111111111111111",
        2 => "",
        _ => STRANGER,
    };
    let mut filter = if selector & 0x40 != 0 {
        Filter::with_rate_limit(RateLimit {
            interval: Duration::from_millis(u64::from(*selector)),
            burst: u32::from(selector >> 7),
        })
    } else {
        Filter::new()
    };
    let now = Instant::now();
    for _ in 0..2 {
        let verdict = filter.check(
            &view,
            Incoming {
                sender,
                topic,
                payload,
            },
            now,
        );
        match verdict {
            Ok(m) => {
                // Shown only when the packet itself is a valid chat message.
                let d = decoded.as_ref().expect("shown although it does not decode");
                assert_eq!(m.text, d.text);
                assert_eq!(m.timestamp.to_bits(), d.timestamp.to_bits());
            }
            Err(Rejected::Packet(e)) => assert_eq!(Err(&e), decoded.as_ref().map(|_| ())),
            Err(_) => {}
        }
    }
});
