//! What may be sent, checked before anything is sent.
//!
//! In order: the recipient must be an address (checked first, before the text is looked at),
//! the text must not be empty or blank, and it must be at most the length limit.
//!
//! **Length** is counted as the reference client counts it: its input box (TextMeshPro's
//! `characterLimit`, and the counter shown under it) measures the C# string's `Length`, which is
//! the number of **UTF-16 code units**, not of characters: "a" counts 1, "é" 1, "€" 1, "👋" 2
//! (a surrogate pair), a flag (two regional indicators) 4. The default limit is that input box's
//! 155, so that what our users send fits the reference UI. It can be raised up to
//! [`MAX_CHARS_LIMIT`], the most that always fits one packet: a UTF-16 code unit takes at most
//! 3 bytes of UTF-8 (BMP characters take 1-3 bytes for one unit, others 4 bytes for two), and a
//! packet carries at most [`packet::MAX_TEXT_BYTES_WITH_RECEIPT`] bytes of text with its receipt
//! request, less [`crate::e2ee::MAX_OVERHEAD`] when it is encrypted end to end.

use std::time::SystemTime;

use pchat_core::normalize_address;

use crate::packet::{self, PacketError};
use crate::reaction::{Reaction, ReactionError};

/// The reference client's input limit (UTF-16 code units).
pub const DEFAULT_MAX_CHARS: usize = 155;
/// The highest length limit that can be configured: any text within it fits one packet, asking
/// for a receipt and encrypted end to end ((15,340 - 64) bytes / 3 = 5,092 UTF-16 code units;
/// 5,114 before encryption, which needs up to 64 bytes more).
pub const MAX_CHARS_LIMIT: usize =
    (packet::MAX_TEXT_BYTES_WITH_RECEIPT - crate::e2ee::MAX_OVERHEAD) / 3;

/// Why something cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("invalid recipient address: expected 0x followed by 40 hex digits")]
    InvalidRecipient,
    #[error("empty message")]
    Empty,
    #[error("message too long: {len} characters, the limit is {limit}")]
    TooLong { len: usize, limit: usize },
    #[error("a length limit of {requested} is over the maximum of {max} that fits one packet")]
    LimitTooHigh { requested: usize, max: usize },
    #[error("a length limit of 0 lets nothing through")]
    LimitZero,
    #[error(transparent)]
    Reaction(#[from] ReactionError),
    #[error("cannot encode the packet: {0}")]
    Packet(PacketError),
}

/// A packet ready for the room: send `payload` reliably to the identity `to` with topic `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The recipient's address, lower case: the destination identity and the topic.
    pub to: String,
    pub payload: Vec<u8>,
}

impl Outgoing {
    /// The LiveKit topic (the recipient's address, as the reference client sets it).
    pub fn topic(&self) -> &str {
        &self.to
    }
}

/// The sending rules, with their length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRules {
    max_chars: usize,
}

impl Default for SendRules {
    fn default() -> Self {
        SendRules {
            max_chars: DEFAULT_MAX_CHARS,
        }
    }
}

/// The length of `text` as the reference client counts it (UTF-16 code units).
pub fn text_len(text: &str) -> usize {
    text.encode_utf16().count()
}

impl SendRules {
    /// Rules with a length limit of `max_chars` UTF-16 code units (1..=[`MAX_CHARS_LIMIT`]).
    pub fn new(max_chars: usize) -> Result<Self, SendError> {
        if max_chars == 0 {
            return Err(SendError::LimitZero);
        }
        if max_chars > MAX_CHARS_LIMIT {
            return Err(SendError::LimitTooHigh {
                requested: max_chars,
                max: MAX_CHARS_LIMIT,
            });
        }
        Ok(SendRules { max_chars })
    }

    /// The length limit (UTF-16 code units).
    pub fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// Checks a message to `to`; returns the recipient's address in lower case.
    pub fn check(&self, to: &str, text: &str) -> Result<String, SendError> {
        let to = recipient(to)?;
        if text.trim().is_empty() {
            return Err(SendError::Empty);
        }
        let len = text_len(text);
        if len > self.max_chars {
            return Err(SendError::TooLong {
                len,
                limit: self.max_chars,
            });
        }
        Ok(to)
    }

    /// The packet for a message to `to` sent at `now`, after [`SendRules::check`].
    pub fn message(&self, to: &str, text: &str, now: SystemTime) -> Result<Outgoing, SendError> {
        let to = self.check(to, text)?;
        let payload = packet::encode(text, now).map_err(SendError::Packet)?;
        Ok(Outgoing { to, payload })
    }

    /// The packet for a message to `to` sent at `now` asking for a delivery receipt (see
    /// [`crate::delivery`]); the `bool` is `false` when the text is too long to carry the
    /// request ([`packet::encode_message`]).
    pub fn message_asking_receipt(
        &self,
        to: &str,
        text: &str,
        now: SystemTime,
    ) -> Result<(Outgoing, bool), SendError> {
        let to = self.check(to, text)?;
        let (payload, asked) =
            packet::encode_message(text, now, true).map_err(SendError::Packet)?;
        Ok((Outgoing { to, payload }, asked))
    }

    /// The packet for a reaction sent to `to` (the other side of the conversation): the
    /// recipient is checked first, then the reaction's bounds.
    pub fn reaction(&self, to: &str, reaction: &Reaction) -> Result<Outgoing, SendError> {
        let to = recipient(to)?;
        reaction.validate()?;
        let payload = packet::encode_reaction(reaction).map_err(SendError::Packet)?;
        Ok(Outgoing { to, payload })
    }
}

fn recipient(to: &str) -> Result<String, SendError> {
    normalize_address(to.trim()).map_err(|_| SendError::InvalidRecipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "0x2222222222222222222222222222222222222222";

    #[test]
    fn length_is_counted_in_utf16_units() {
        assert_eq!(text_len("a"), 1);
        assert_eq!(text_len("é"), 1);
        assert_eq!(text_len("€"), 1);
        assert_eq!(text_len("👋"), 2);
        assert_eq!(text_len("🇦🇷"), 4);
        assert_eq!(text_len(""), 0);
    }

    #[test]
    fn the_default_limit_is_155() {
        let rules = SendRules::default();
        assert_eq!(rules.max_chars(), 155);
        assert_eq!(rules.check(BOB, &"x".repeat(155)), Ok(BOB.into()));
        assert_eq!(
            rules.check(BOB, &"x".repeat(156)),
            Err(SendError::TooLong {
                len: 156,
                limit: 155
            })
        );
        // 77 waving hands are 154 units; one more is 156.
        assert!(rules.check(BOB, &"👋".repeat(77)).is_ok());
        assert_eq!(
            rules.check(BOB, &"👋".repeat(78)),
            Err(SendError::TooLong {
                len: 156,
                limit: 155
            })
        );
    }

    #[test]
    fn the_recipient_is_checked_before_anything_else() {
        let rules = SendRules::default();
        for bad in [
            "",
            "bob",
            "0x1234",
            "0xzz22222222222222222222222222222222222222",
        ] {
            assert_eq!(
                rules.check(bad, ""),
                Err(SendError::InvalidRecipient),
                "{bad}"
            );
            assert_eq!(
                rules.check(bad, &"x".repeat(10_000)),
                Err(SendError::InvalidRecipient)
            );
            assert_eq!(
                rules.reaction(bad, &Reaction::add(5000, "", "")),
                Err(SendError::InvalidRecipient)
            );
        }
        assert_eq!(rules.check(BOB, ""), Err(SendError::Empty));
        assert_eq!(rules.check(BOB, " \n\t "), Err(SendError::Empty));
        let upper = "0X2222222222222222222222222222222222222222";
        assert_eq!(rules.check(upper, "hi"), Ok(BOB.into()));
    }

    #[test]
    fn the_limit_is_configurable_up_to_what_fits_a_packet() {
        assert_eq!(MAX_CHARS_LIMIT, 5_092);
        assert_eq!(SendRules::new(0), Err(SendError::LimitZero));
        assert_eq!(
            SendRules::new(MAX_CHARS_LIMIT + 1),
            Err(SendError::LimitTooHigh {
                requested: MAX_CHARS_LIMIT + 1,
                max: MAX_CHARS_LIMIT
            })
        );
        let rules = SendRules::new(MAX_CHARS_LIMIT).expect("the maximum");
        // The worst case: every unit is a 3-byte character.
        let widest = "€".repeat(MAX_CHARS_LIMIT);
        let out = rules
            .message(BOB, &widest, SystemTime::now())
            .expect("fits");
        assert!(
            out.payload.len() <= packet::MAX_PACKET_PAYLOAD,
            "{}",
            out.payload.len()
        );
        assert_eq!(out.topic(), BOB);
        assert_eq!(
            packet::decode(&out.payload).expect("reads back").text,
            widest
        );
        // Astral characters: 4 bytes per 2 units.
        let astral = "👋".repeat(MAX_CHARS_LIMIT / 2);
        assert!(rules.message(BOB, &astral, SystemTime::now()).is_ok());
        assert!(matches!(
            rules.message(BOB, &format!("{widest}x"), SystemTime::now()),
            Err(SendError::TooLong { .. })
        ));
    }

    #[test]
    fn the_packet_limit_boundary() {
        // The largest text fills the payload limit exactly; one byte more does not fit and is
        // refused by the encoder (and by the receiver's decoder).
        let now = SystemTime::now();
        let max = "x".repeat(packet::MAX_TEXT_BYTES);
        let payload = packet::encode(&max, now).expect("fits");
        assert_eq!(payload.len(), packet::MAX_PACKET_PAYLOAD);
        let over = "x".repeat(packet::MAX_TEXT_BYTES + 1);
        assert_eq!(
            packet::encode(&over, now),
            Err(PacketError::TooLong(packet::MAX_TEXT_BYTES + 1))
        );
        // The framing is what CHAT_FRAMING_BYTES says from 128 bytes of text up, less below.
        for len in [128, 1_000, packet::MAX_TEXT_BYTES] {
            let p = packet::encode(&"y".repeat(len), now).expect("encodes");
            assert_eq!(p.len(), len + packet::CHAT_FRAMING_BYTES, "{len}");
        }
        for len in 1..128 {
            let p = packet::encode(&"y".repeat(len), now).expect("encodes");
            assert!(p.len() < len + packet::CHAT_FRAMING_BYTES, "{len}");
        }
    }

    #[test]
    fn reactions_go_to_the_recipient() {
        let rules = SendRules::default();
        let r = Reaction::remove(7, crate::reaction::message_id(BOB, 45_658.5), "");
        let out = rules.reaction(BOB, &r).expect("valid");
        assert_eq!(out.to, BOB);
        assert_eq!(packet::decode_reaction(&out.payload), Ok(r));
        assert_eq!(
            rules.reaction(BOB, &Reaction::add(1, "", "")),
            Err(SendError::Reaction(ReactionError::EmptyMessageId))
        );
    }
}
