//! Reactions to private messages, as the reference client (unity-explorer) sends them.
//!
//! Facts from the reference client and `@dcl/protocol` (our own code, written from them):
//!
//! - A reaction is `rfc4.Packet { chat_reaction = 15: ChatReaction { emoji_index = 1 (int32),
//!   message_id = 2 (string), address = 3 (string) }, protocol_version = 100 }`, sent reliably
//!   with the LiveKit topic and the destination identity both set to the recipient's address (the
//!   other side of the conversation), as a private message is.
//! - `emoji_index` is the emoji's index in the reference client's emoji atlas (a tile of its
//!   sprite sheet; the client accepts `0 <= index < 4096` and narrows that to its atlas size).
//!   A *removal* is not a string: it is the same field holding the bitwise complement of the
//!   index, `~index` = `-(index + 1)`, always negative (so removing emoji 0 is `-1`, emoji 42 is
//!   `-43`). Non-negative values add a reaction.
//! - `message_id` names the message reacted to: `"{sender address}:{timestamp}"`, where the
//!   address is the message sender's lower-case address (their LiveKit identity) and the
//!   timestamp is the message's `Chat.timestamp` (an OLE date) written by .NET's
//!   `double.ToString(CultureInfo.InvariantCulture)`. The reference runs on Unity's Mono class
//!   library, whose default double format is "G" with **15 significant digits** (not the shortest
//!   round-trip form of .NET Core 3+), trailing zeros dropped, '.' as the separator:
//!   `45987.4027792052` for the double 45987.402779205244. [`message_id`] writes exactly that;
//!   [`matches_message`] also accepts the shortest round-trip form, in case a client on a newer
//!   runtime writes that.
//! - `address` is the reacting user's own address, as they claim it. Attribution comes from the
//!   LiveKit identity of the packet's sender, never from this field.
//! - The receiver drops an empty `message_id` or one over 96 characters, and de-duplicates per
//!   sender on `"{message_id}:{raw emoji_index}"`, forgetting the opposite key (add vs remove)
//!   when one passes, so that add → remove → add works.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use pchat_core::normalize_address;

use crate::packet::ChatReaction;

/// Emoji indices accepted: `0..EMOJI_INDEX_LIMIT` (the reference client's absolute bound).
pub const EMOJI_INDEX_LIMIT: u16 = 4096;
/// Longest `message_id` accepted, in bytes (the reference's bound is 96 characters; a real id is
/// ASCII: 42 for the address, 1 for ':' and at most 21 for the number).
pub const MAX_MESSAGE_ID_BYTES: usize = 96;

/// Why a reaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReactionError {
    #[error("emoji index {0} is outside 0..{EMOJI_INDEX_LIMIT}")]
    EmojiOutOfRange(i64),
    #[error("empty message id")]
    EmptyMessageId,
    #[error("message id of {0} bytes is over the {MAX_MESSAGE_ID_BYTES}-byte limit")]
    MessageIdTooLong(usize),
    #[error("the reacting address is not an address")]
    BadAddress,
}

/// A reaction: add or remove one emoji on one message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reaction {
    /// The emoji's index in the reference client's emoji atlas.
    pub emoji_index: u16,
    /// `true`: the sender takes this reaction back.
    pub removal: bool,
    /// The message reacted to (see [`message_id`]).
    pub message_id: String,
    /// The reacting user's address as they claim it (lower case; empty if they sent none).
    /// Informational: the sender is the packet's LiveKit identity.
    pub address: String,
}

impl Reaction {
    /// Adding `emoji_index` to the message `message_id`, by `address`.
    pub fn add(
        emoji_index: u16,
        message_id: impl Into<String>,
        address: impl Into<String>,
    ) -> Self {
        Reaction {
            emoji_index,
            removal: false,
            message_id: message_id.into(),
            address: address.into(),
        }
    }

    /// Taking `emoji_index` back from the message `message_id`, by `address`.
    pub fn remove(
        emoji_index: u16,
        message_id: impl Into<String>,
        address: impl Into<String>,
    ) -> Self {
        Reaction {
            removal: true,
            ..Reaction::add(emoji_index, message_id, address)
        }
    }

    /// The `emoji_index` field as sent: the index, or `!index` for a removal.
    pub fn wire_emoji_index(&self) -> i32 {
        wire_emoji_index(self.emoji_index, self.removal)
    }

    /// Checks the bounds a receiver applies.
    pub fn validate(&self) -> Result<(), ReactionError> {
        if self.emoji_index >= EMOJI_INDEX_LIMIT {
            return Err(ReactionError::EmojiOutOfRange(i64::from(self.emoji_index)));
        }
        check_message_id(&self.message_id)?;
        if !self.address.is_empty() && normalize_address(&self.address).is_err() {
            return Err(ReactionError::BadAddress);
        }
        Ok(())
    }

    pub(crate) fn to_wire(&self) -> ChatReaction {
        ChatReaction {
            emoji_index: self.wire_emoji_index(),
            message_id: self.message_id.clone(),
            address: self.address.clone(),
        }
    }

    pub(crate) fn from_wire(r: ChatReaction) -> Result<Reaction, ReactionError> {
        let (index, removal) = split_wire_emoji_index(r.emoji_index);
        let emoji_index = u16::try_from(index)
            .ok()
            .filter(|i| *i < EMOJI_INDEX_LIMIT)
            .ok_or(ReactionError::EmojiOutOfRange(index))?;
        check_message_id(&r.message_id)?;
        let address = if r.address.is_empty() {
            String::new()
        } else {
            normalize_address(&r.address).map_err(|_| ReactionError::BadAddress)?
        };
        Ok(Reaction {
            emoji_index,
            removal,
            message_id: r.message_id,
            address,
        })
    }
}

fn check_message_id(id: &str) -> Result<(), ReactionError> {
    if id.is_empty() {
        return Err(ReactionError::EmptyMessageId);
    }
    if id.len() > MAX_MESSAGE_ID_BYTES {
        return Err(ReactionError::MessageIdTooLong(id.len()));
    }
    Ok(())
}

/// The wire value of an emoji index: itself to add, its bitwise complement to remove.
pub fn wire_emoji_index(index: u16, removal: bool) -> i32 {
    let i = i32::from(index);
    if removal { !i } else { i }
}

/// The emoji index and whether it is a removal, from the wire value (widened so that `!i32::MIN`
/// cannot overflow; range checks are the caller's).
pub fn split_wire_emoji_index(wire: i32) -> (i64, bool) {
    if wire < 0 {
        (i64::from(!wire), true)
    } else {
        (i64::from(wire), false)
    }
}

/// The id the reference client gives a message: `"{sender}:{timestamp}"` with the sender's
/// address in lower case and the timestamp as [`format_timestamp`] writes it.
pub fn message_id(sender: &str, timestamp: f64) -> String {
    format!(
        "{}:{}",
        sender.to_ascii_lowercase(),
        format_timestamp(timestamp)
    )
}

/// Whether `id` names the message `sender` sent with `timestamp`: the reference form
/// ([`message_id`]), or the same with the shortest round-trip number (what .NET Core 3+ would
/// write); the address is compared case-insensitively.
pub fn matches_message(id: &str, sender: &str, timestamp: f64) -> bool {
    let Some((who, number)) = id.rsplit_once(':') else {
        return false;
    };
    who.eq_ignore_ascii_case(sender)
        && (number == format_timestamp(timestamp)
            || (timestamp.is_finite() && number == shortest_round_trip(timestamp)))
}

fn shortest_round_trip(x: f64) -> String {
    // Rust's `Display` for f64 writes the shortest digits that read back to the same double, in
    // positional notation, which is what .NET Core writes for numbers in the OLE date range.
    format!("{x}")
}

/// A double as Unity's Mono writes it with `ToString(CultureInfo.InvariantCulture)`: format
/// "G", 15 significant digits, trailing zeros removed; positional notation unless the decimal
/// exponent is 15 or more or below -5 (then `d.ddddE+XX`, at least two exponent digits);
/// `NaN`, `Infinity`, `-Infinity`; negative zero is `0`.
///
/// Mono first takes 17 significant digits of the double, then rounds those to 15, half up. We do
/// the same from the correctly rounded 17 digits (Rust's formatter); Mono's own 17-digit step is
/// a fast approximation that can differ in the 17th digit, which changes the 15-digit result
/// only when digits 16-17 sit right at 50 (rare; [`matches_message`] is the tolerant check).
/// Hand-written: no crate reproduces Mono's legacy float formatting.
pub fn format_timestamp(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // 17 significant digits: "d.dddddddddddddddde<exp>".
    let sci = format!("{:.16e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let mut exp: i32 = exp.parse().unwrap_or(0);
    let digits17: u64 = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0, |acc, b| acc * 10 + u64::from(b - b'0'));
    // Round to 15 digits, half up, as Mono does on its 17.
    let mut digits15 = (digits17 + 50) / 100;
    if digits15 >= 1_000_000_000_000_000 {
        digits15 /= 10;
        exp += 1;
    }
    let digits = digits15.to_string();
    let digits = digits.trim_end_matches('0');
    // Number of digits before the decimal point.
    let point = exp + 1;
    let mut out = String::with_capacity(24);
    if x < 0.0 {
        out.push('-');
    }
    if point > 15 || point <= -4 {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('E');
        out.push(if exp >= 0 { '+' } else { '-' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    } else if point <= 0 {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let point = point as usize; // 1..=15
        if digits.len() <= point {
            out.push_str(digits);
            for _ in digits.len()..point {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

/// How many reaction keys [`ReactionDedup`] remembers at most (the reference keeps 2,048).
pub const DEDUP_CAPACITY: usize = 2048;
/// How long a reaction key is remembered (the reference clears its set every 5 minutes).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A bounded memory of recent reactions, to drop repeats.
///
/// A key is (sender, message id, wire emoji index), kept as a 64-bit keyed hash (SipHash with
/// a per-process random key, so a peer cannot aim collisions): at most [`DEDUP_CAPACITY`] keys,
/// each for at most [`DEDUP_WINDOW`]; the oldest go first when full. That is under 100 KiB
/// whatever peers send. When a reaction passes, its opposite (the removal of an add, the add of
/// a removal) is forgotten, so add → remove → add all pass while a repeated add does not.
#[derive(Debug)]
pub struct ReactionDedup {
    hasher: RandomState,
    /// Key → when it was recorded.
    seen: HashMap<u64, Instant>,
    /// Keys in the order recorded (may hold stale entries for keys forgotten or re-recorded;
    /// never longer than the capacity).
    order: VecDeque<(u64, Instant)>,
    capacity: usize,
    window: Duration,
}

impl Default for ReactionDedup {
    fn default() -> Self {
        ReactionDedup::new(DEDUP_CAPACITY, DEDUP_WINDOW)
    }
}

impl ReactionDedup {
    /// A memory of at most `capacity` keys (at least 1), each kept for `window`.
    pub fn new(capacity: usize, window: Duration) -> Self {
        let capacity = capacity.max(1);
        ReactionDedup {
            hasher: RandomState::new(),
            seen: HashMap::with_capacity(capacity.min(256)),
            order: VecDeque::with_capacity(capacity.min(256)),
            capacity,
            window,
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn key(&self, sender: &str, message_id: &str, wire: i32) -> u64 {
        self.hasher
            .hash_one((sender.to_ascii_lowercase(), message_id, wire))
    }

    /// `true` if this reaction from `sender` is new (and remembers it), `false` for a repeat.
    pub fn check(&mut self, sender: &str, reaction: &Reaction, now: Instant) -> bool {
        self.expire(now);
        let wire = reaction.wire_emoji_index();
        let key = self.key(sender, &reaction.message_id, wire);
        if self.seen.contains_key(&key) {
            return false;
        }
        let opposite = self.key(sender, &reaction.message_id, !wire);
        self.seen.remove(&opposite);
        while self.order.len() >= self.capacity {
            self.pop_oldest();
        }
        self.seen.insert(key, now);
        self.order.push_back((key, now));
        true
    }

    fn pop_oldest(&mut self) {
        if let Some((k, at)) = self.order.pop_front() {
            // Only if this entry is the current record of the key (not a stale one).
            if self.seen.get(&k) == Some(&at) {
                self.seen.remove(&k);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(_, at)) = self.order.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            self.pop_oldest();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "0x1111111111111111111111111111111111111111";

    #[test]
    fn removal_is_the_bitwise_complement() {
        assert_eq!(wire_emoji_index(42, false), 42);
        assert_eq!(wire_emoji_index(42, true), -43);
        assert_eq!(wire_emoji_index(0, false), 0);
        assert_eq!(wire_emoji_index(0, true), -1);
        assert_eq!(split_wire_emoji_index(-43), (42, true));
        assert_eq!(split_wire_emoji_index(-1), (0, true));
        assert_eq!(split_wire_emoji_index(0), (0, false));
        assert_eq!(
            split_wire_emoji_index(i32::MIN),
            (i64::from(i32::MAX), true)
        );
    }

    #[test]
    fn timestamps_are_written_as_unity_writes_them() {
        let table: &[(f64, &str)] = &[
            (45_658.5, "45658.5"),
            (45_658.0, "45658"),
            (25_569.0, "25569"),
            // 2025-11-26T09:40:00.123Z as .NET's ToOADate gives it (ms / 86,400,000).
            (45_987.402_779_201_39, "45987.4027792014"),
            // 17 digits 45987402779205244 -> 15: 459874027792052(44) -> ...052.
            (45_987.402_779_205_244, "45987.4027792052"),
            // Digits 16-17 are 50 or more: rounds up, carrying.
            (45_999.999_999_999_99, "46000"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.333333333333333"),
            (123_456_789_012_345_680.0, "1.23456789012346E+17"),
            (1e15, "1E+15"),
            (999_999_999_999_999.0, "999999999999999"),
            (0.000_1, "0.0001"),
            (0.000_012_5, "1.25E-05"),
            (-45_658.25, "-45658.25"),
            (-0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (x, want) in table {
            assert_eq!(format_timestamp(*x), *want, "{x:?}");
        }
    }

    #[test]
    fn message_ids_are_lower_case_address_colon_timestamp() {
        let upper = "0xABCDEF0000000000000000000000000000000001";
        assert_eq!(
            message_id(upper, 45_658.5),
            "0xabcdef0000000000000000000000000000000001:45658.5"
        );
        let ts = 45_987.402_779_205_244;
        let id = message_id(ALICE, ts);
        assert!(matches_message(&id, ALICE, ts));
        assert!(matches_message(
            &id,
            &ALICE.to_uppercase().replace("0X", "0x"),
            ts
        ));
        assert!(
            matches_message(&format!("{ALICE}:{ts}"), ALICE, ts),
            "round-trip form"
        );
        assert!(!matches_message(&id, ALICE, ts + 1e-6));
        assert!(!matches_message(
            &id,
            "0x2222222222222222222222222222222222222222",
            ts
        ));
        assert!(!matches_message("no colon", ALICE, ts));
        assert!(id.len() <= MAX_MESSAGE_ID_BYTES);
    }

    #[test]
    fn received_reactions_are_bounded() {
        let ok = ChatReaction {
            emoji_index: -43,
            message_id: message_id(ALICE, 45_658.5),
            address: ALICE.to_uppercase().replace("0X", "0x"),
        };
        let r = Reaction::from_wire(ok.clone()).expect("valid");
        assert_eq!((r.emoji_index, r.removal), (42, true));
        assert_eq!(r.address, ALICE, "normalised");
        let bad = |f: fn(&mut ChatReaction)| {
            let mut r = ok.clone();
            f(&mut r);
            Reaction::from_wire(r)
        };
        assert_eq!(
            bad(|r| r.emoji_index = 4096),
            Err(ReactionError::EmojiOutOfRange(4096))
        );
        assert_eq!(
            bad(|r| r.emoji_index = !4096),
            Err(ReactionError::EmojiOutOfRange(4096))
        );
        assert_eq!(
            bad(|r| r.emoji_index = i32::MIN),
            Err(ReactionError::EmojiOutOfRange(i64::from(i32::MAX)))
        );
        assert!(bad(|r| r.emoji_index = 4095).is_ok());
        assert_eq!(
            bad(|r| r.message_id.clear()),
            Err(ReactionError::EmptyMessageId)
        );
        assert_eq!(
            bad(|r| r.message_id = "x".repeat(97)),
            Err(ReactionError::MessageIdTooLong(97))
        );
        assert!(bad(|r| r.message_id = "x".repeat(96)).is_ok());
        assert_eq!(
            bad(|r| r.address = "mallory".into()),
            Err(ReactionError::BadAddress)
        );
        assert!(bad(|r| r.address.clear()).is_ok());
        assert_eq!(
            Reaction::add(4096, "id", "").validate(),
            Err(ReactionError::EmojiOutOfRange(4096))
        );
    }

    #[test]
    fn repeats_are_dropped_and_toggles_pass() {
        let mut d = ReactionDedup::default();
        let t = Instant::now();
        let add = Reaction::add(7, "m1", "");
        let remove = Reaction::remove(7, "m1", "");
        assert!(d.check(ALICE, &add, t));
        assert!(!d.check(ALICE, &add, t), "the same add again");
        assert!(
            !d.check(&ALICE.to_uppercase().replace("0X", "0x"), &add, t),
            "the sender's case does not matter"
        );
        assert!(d.check("0x2222222222222222222222222222222222222222", &add, t));
        assert!(d.check(ALICE, &Reaction::add(8, "m1", ""), t));
        assert!(d.check(ALICE, &Reaction::add(7, "m2", ""), t));
        assert!(d.check(ALICE, &remove, t), "removal after add");
        assert!(!d.check(ALICE, &remove, t), "the same removal again");
        assert!(d.check(ALICE, &add, t), "add again after the removal");
        // Forgotten after the window.
        assert!(d.check(ALICE, &add, t + DEDUP_WINDOW));
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut d = ReactionDedup::new(100, DEDUP_WINDOW);
        let t = Instant::now();
        for i in 0..10_000u32 {
            let r = Reaction::add(1, format!("m{i}"), "");
            assert!(d.check(ALICE, &r, t));
            assert!(d.len() <= 100);
            assert!(d.order.len() <= 100);
            // Toggling leaves stale entries in the order queue: still bounded.
            assert!(d.check(ALICE, &Reaction::remove(1, format!("m{i}"), ""), t));
            assert!(d.order.len() <= 100);
        }
        // The oldest were forgotten, the newest are remembered.
        assert!(d.check(ALICE, &Reaction::remove(1, "m0", ""), t));
        assert!(!d.check(ALICE, &Reaction::remove(1, "m9999", ""), t));
    }
}
