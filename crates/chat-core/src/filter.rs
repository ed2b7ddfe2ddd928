//! Which received packets are shown (ADR-208 "Message Filtering", docs/wire.md §6 "Receiving").
//!
//! In order: a packet with an empty topic, or a topic other than my address, is not a private
//! message to me; my own packets are not shown (they are added locally when sent); packets from
//! someone I blocked or who blocked me are dropped; with my setting at ONLY_FRIENDS, packets
//! from non-friends are dropped (the reference explorer skips this check; ADR-208 requires it);
//! then the payload must be a version-100 chat packet; last, the per-sender rate limit.
//! Messages from blocked users are always dropped: `blocked_users_messages_visibility` is a
//! display choice left to the UI, and showing them by default is a known complaint about the
//! reference client.
//!
//! [`Filter::check_packet`] also accepts reactions ([`crate::reaction`]), through the same
//! rules (topic, sender, blocks, privacy), then: a repeat of a reaction already seen is dropped
//! ([`ReactionDedup`], bounded), and reactions have their own per-sender rate limit (so that
//! toggling an emoji does not use up the sender's message budget).
//!
//! Our own extension, delivery receipts ([`crate::delivery`]): a message asking for a receipt
//! that was already shown ([`SeenMessages`], bounded) is dropped as
//! [`Rejected::DuplicateMessage`] before the rate limit (so a resend does not use up the
//! sender's budget), and is remembered only once it passed every rule; the caller confirms it
//! again. A receipt needs only the topic and sender rules ([`Accepted::Receipt`]): it changes
//! something only when it confirms a message we sent to that sender and still wait for, so the
//! blocks and privacy rules (meant for what is shown) do not apply to it.
//!
//! **The rate limit is on by default**: [`Filter::new`] limits each sender to
//! [`RateLimit::default`] (a burst of 3 messages, then one per second) and
//! [`RateLimit::REACTIONS`] for reactions (a burst of 8, then 4 per second, the reference
//! client's values). [`Filter::unlimited`] turns both off (tests, trusted setups). At most
//! [`MAX_TRACKED_SENDERS`] senders are tracked per kind.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use pchat_core::{Privacy, normalize_address};

use crate::delivery::SeenMessages;
use crate::packet::{self, ChatMessage, PacketError, Payload};
use crate::reaction::{Reaction, ReactionDedup};

/// What the receiver knows of its social state (kept current by the SDK).
#[derive(Debug, Clone, Default)]
pub struct SocialView {
    /// My address, lower case.
    pub me: String,
    /// My private-messages setting.
    pub privacy: Privacy,
    /// My friends (accepted friendships), lower case.
    pub friends: HashSet<String>,
    /// Users I blocked.
    pub blocked: HashSet<String>,
    /// Users who blocked me.
    pub blocked_by: HashSet<String>,
}

/// A data packet as LiveKit delivered it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The sender's participant identity.
    pub sender: &'a str,
    /// The packet's topic.
    pub topic: &'a str,
    pub payload: &'a [u8],
}

/// Why a packet is not shown.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("no topic: not a private message")]
    EmptyTopic,
    #[error("addressed to someone else")]
    NotForMe,
    #[error("the sender's identity is not an address")]
    BadSender,
    #[error("my own message")]
    OwnMessage,
    #[error("from a user I blocked")]
    BlockedByMe,
    #[error("from a user who blocked me")]
    BlocksMe,
    #[error("from a non-friend while I accept messages only from friends")]
    NotAFriend,
    #[error("the sender is over the rate limit")]
    RateLimited,
    #[error("a repeat of a reaction already received")]
    DuplicateReaction,
    /// A message asking for a receipt that was already shown (its sender resent it): confirm
    /// it again, do not show it again.
    #[error("a repeat of a message already shown")]
    DuplicateMessage { id: String },
    #[error(transparent)]
    Packet(#[from] PacketError),
}

/// At most `burst` messages at once per sender, refilled at one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// The default for reactions: bursts of 8, then 4 per second (the reference client's
    /// receive limit for chat reactions).
    pub const REACTIONS: RateLimit = RateLimit {
        interval: Duration::from_millis(250),
        burst: 8,
    };
}

impl Default for RateLimit {
    /// One message per second sustained, as the reference client's limit, with a burst of 3 so
    /// that a person sending two or three lines at once loses none of them. A flood of 40,000
    /// lines in 20 s from one sender shows at most 23.
    fn default() -> Self {
        RateLimit {
            interval: Duration::from_secs(1),
            burst: 3,
        }
    }
}

/// Senders remembered by each rate limit before idle ones are forgotten.
pub const MAX_TRACKED_SENDERS: usize = 10_000;

/// A message or a reaction that passed the filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    Message(ChatMessage),
    /// A message whose sender asks for a receipt once it is shown (id: [`crate::message_id`]).
    MessageWithReceipt {
        message: ChatMessage,
        id: String,
    },
    Reaction(Reaction),
    /// A receipt from the sender for the message `message_id` (see the module docs).
    Receipt {
        message_id: String,
    },
}

/// The receive filter (it keeps the rate limits' and the reaction memory's state).
#[derive(Debug)]
pub struct Filter {
    messages: Option<Buckets>,
    reactions: Option<Buckets>,
    seen_reactions: ReactionDedup,
    seen_messages: SeenMessages,
}

impl Default for Filter {
    /// The same as [`Filter::new`]: rate limited.
    fn default() -> Self {
        Filter::new()
    }
}

impl Filter {
    /// A filter with the default per-sender rate limits ([`RateLimit::default`] for messages,
    /// [`RateLimit::REACTIONS`] for reactions).
    pub fn new() -> Self {
        Filter::with_rate_limit(RateLimit::default())
    }

    /// A filter without rate limits (reactions are still de-duplicated).
    pub fn unlimited() -> Self {
        Filter {
            messages: None,
            reactions: None,
            seen_reactions: ReactionDedup::default(),
            seen_messages: SeenMessages::default(),
        }
    }

    /// A filter that limits each sender's messages to `limit` (and reactions to
    /// [`RateLimit::REACTIONS`]).
    pub fn with_rate_limit(limit: RateLimit) -> Self {
        Filter {
            messages: Some(Buckets::new(limit)),
            reactions: Some(Buckets::new(RateLimit::REACTIONS)),
            seen_reactions: ReactionDedup::default(),
            seen_messages: SeenMessages::default(),
        }
    }

    /// The same filter with `limit` for reactions (`None`: no limit).
    pub fn with_reaction_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.reactions = limit.map(Buckets::new);
        self
    }

    /// The message rate limit in force, if any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.messages.as_ref().map(|b| b.limit)
    }

    /// The reaction rate limit in force, if any.
    pub fn reaction_rate_limit(&self) -> Option<RateLimit> {
        self.reactions.as_ref().map(|b| b.limit)
    }

    /// The message in `packet` if it is to be shown, or why not. A reaction is refused here
    /// (`Rejected::Packet(PacketError::NotChat)`); use [`Filter::check_packet`] to accept both.
    pub fn check(
        &mut self,
        view: &SocialView,
        packet: Incoming<'_>,
        now: Instant,
    ) -> Result<ChatMessage, Rejected> {
        let sender = admit(view, packet)?;
        let message = packet::decode(packet.payload)?;
        if let Some(b) = &mut self.messages {
            b.take(sender, now)?;
        }
        Ok(message)
    }

    /// The message or reaction in `packet` if it is to be shown, or why not: the same rules as
    /// [`Filter::check`], then for a reaction the repeat check and the reaction rate limit.
    pub fn check_packet(
        &mut self,
        view: &SocialView,
        packet: Incoming<'_>,
        now: Instant,
    ) -> Result<Accepted, Rejected> {
        let payload = packet::decode_payload(packet.payload);
        if let Ok(Payload::Receipt(message_id)) = payload {
            admit_address(view, packet)?;
            return Ok(Accepted::Receipt { message_id });
        }
        let sender = admit(view, packet)?;
        match payload? {
            Payload::Message(message) => {
                if let Some(b) = &mut self.messages {
                    b.take(sender, now)?;
                }
                Ok(Accepted::Message(message))
            }
            Payload::MessageWithReceipt(message) => {
                let id = crate::message_id(&sender, message.timestamp);
                // Repeats first, so that a resend does not use up the sender's budget.
                if self.seen_messages.contains(&id, now) {
                    return Err(Rejected::DuplicateMessage { id });
                }
                if let Some(b) = &mut self.messages {
                    b.take(sender, now)?;
                }
                self.seen_messages.insert(&id, now);
                Ok(Accepted::MessageWithReceipt { message, id })
            }
            Payload::Receipt(_) => Err(Rejected::Packet(PacketError::Unsupported)),
            Payload::Reaction(reaction) => {
                // Repeats first, so that duplicates do not use up the sender's budget.
                if !self.seen_reactions.check(&sender, &reaction, now) {
                    return Err(Rejected::DuplicateReaction);
                }
                if let Some(b) = &mut self.reactions {
                    b.take(sender, now)?;
                }
                Ok(Accepted::Reaction(reaction))
            }
        }
    }
}

/// The rules before the payload is read: the sender's address (normalised) if the packet may
/// be shown. Public so that an encrypted packet is judged by them before it costs a decryption.
pub fn admit(view: &SocialView, packet: Incoming<'_>) -> Result<String, Rejected> {
    let sender = admit_address(view, packet)?;
    if view.blocked.contains(&sender) {
        return Err(Rejected::BlockedByMe);
    }
    if view.blocked_by.contains(&sender) {
        return Err(Rejected::BlocksMe);
    }
    if view.privacy == Privacy::OnlyFriends && !view.friends.contains(&sender) {
        return Err(Rejected::NotAFriend);
    }
    Ok(sender)
}

/// The topic and sender rules: the sender's address (normalised) if the packet is addressed
/// to me by someone else.
fn admit_address(view: &SocialView, packet: Incoming<'_>) -> Result<String, Rejected> {
    if packet.topic.is_empty() {
        return Err(Rejected::EmptyTopic);
    }
    if !packet.topic.eq_ignore_ascii_case(&view.me) {
        return Err(Rejected::NotForMe);
    }
    let sender = normalize_address(packet.sender).map_err(|_| Rejected::BadSender)?;
    if sender == view.me {
        return Err(Rejected::OwnMessage);
    }
    Ok(sender)
}

/// One rate limit's per-sender token buckets.
#[derive(Debug)]
struct Buckets {
    limit: RateLimit,
    /// Per sender: tokens left and when they were counted.
    map: HashMap<String, (f64, Instant)>,
}

impl Buckets {
    fn new(limit: RateLimit) -> Self {
        Buckets {
            limit,
            map: HashMap::new(),
        }
    }

    fn take(&mut self, sender: String, now: Instant) -> Result<(), Rejected> {
        let limit = self.limit;
        let burst = f64::from(limit.burst.max(1));
        let per_second = 1.0 / limit.interval.as_secs_f64().max(1e-6);
        if self.map.len() >= MAX_TRACKED_SENDERS && !self.map.contains_key(&sender) {
            // Forget senders whose bucket has refilled: they are as good as new.
            self.map.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second < burst
            });
            // Still full (every tracked sender is busy): forget the one with the most tokens,
            // so the map never holds more than MAX_TRACKED_SENDERS. At worst that sender gets
            // a fresh burst; memory stays bounded.
            if self.map.len() >= MAX_TRACKED_SENDERS {
                let fullest = self
                    .map
                    .iter()
                    .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
                    .map(|(k, _)| k.clone());
                if let Some(k) = fullest {
                    self.map.remove(&k);
                }
            }
        }
        let (tokens, at) = self.map.entry(sender).or_insert((burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Rejected::RateLimited)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    const ME: &str = "0x1111111111111111111111111111111111111111";
    const FRIEND: &str = "0x2222222222222222222222222222222222222222";
    const STRANGER: &str = "0x3333333333333333333333333333333333333333";
    const BLOCKED: &str = "0x4444444444444444444444444444444444444444";
    const BLOCKER: &str = "0x5555555555555555555555555555555555555555";

    fn view(privacy: Privacy) -> SocialView {
        SocialView {
            me: ME.into(),
            privacy,
            friends: [FRIEND.to_owned()].into(),
            blocked: [BLOCKED.to_owned()].into(),
            blocked_by: [BLOCKER.to_owned()].into(),
        }
    }

    fn hello() -> Vec<u8> {
        packet::encode("hello", SystemTime::now()).expect("encode")
    }

    fn check(
        f: &mut Filter,
        v: &SocialView,
        sender: &str,
        topic: &str,
        payload: &[u8],
    ) -> Result<String, Rejected> {
        f.check(
            v,
            Incoming {
                sender,
                topic,
                payload,
            },
            Instant::now(),
        )
        .map(|m| m.text)
    }

    #[test]
    fn every_rule_in_order() {
        let p = hello();
        let all = view(Privacy::All);
        let only = view(Privacy::OnlyFriends);
        let mut f = Filter::unlimited();
        let upper_me = ME.to_uppercase().replace("0X", "0x");
        let upper_friend = FRIEND.to_uppercase().replace("0X", "0x");
        let table: Vec<(&SocialView, &str, &str, Result<String, Rejected>)> = vec![
            (&all, FRIEND, "", Err(Rejected::EmptyTopic)),
            (&all, FRIEND, STRANGER, Err(Rejected::NotForMe)),
            (&all, "not-an-address", ME, Err(Rejected::BadSender)),
            (&all, ME, ME, Err(Rejected::OwnMessage)),
            (&all, BLOCKED, ME, Err(Rejected::BlockedByMe)),
            (&all, BLOCKER, ME, Err(Rejected::BlocksMe)),
            (&only, BLOCKED, ME, Err(Rejected::BlockedByMe)),
            (&only, STRANGER, ME, Err(Rejected::NotAFriend)),
            (&only, FRIEND, ME, Ok("hello".into())),
            (&all, STRANGER, ME, Ok("hello".into())),
            (&all, &upper_friend, &upper_me, Ok("hello".into())),
        ];
        for (i, (v, sender, topic, want)) in table.into_iter().enumerate() {
            assert_eq!(check(&mut f, v, sender, topic, &p), want, "row {i}");
        }
    }

    #[test]
    fn packets_must_be_version_100_chats() {
        let mut f = Filter::new();
        let v = view(Privacy::All);
        assert!(matches!(
            check(&mut f, &v, FRIEND, ME, b"\xff\xff"),
            Err(Rejected::Packet(PacketError::Undecodable(_)))
        ));
        assert_eq!(
            check(&mut f, &v, FRIEND, ME, &[0x58, 11]),
            Err(Rejected::Packet(PacketError::WrongVersion(11)))
        );
    }

    #[test]
    fn the_rate_limit_is_per_sender_and_refills() {
        let mut f = Filter::with_rate_limit(RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
        });
        let v = view(Privacy::All);
        let p = hello();
        let t0 = Instant::now();
        let mut at = |sender: &str, t: Instant| {
            f.check(
                &v,
                Incoming {
                    sender,
                    topic: ME,
                    payload: &p,
                },
                t,
            )
            .map(|_| ())
        };
        assert_eq!(at(FRIEND, t0), Ok(()));
        assert_eq!(at(FRIEND, t0), Ok(()));
        assert_eq!(at(FRIEND, t0), Err(Rejected::RateLimited));
        assert_eq!(
            at(STRANGER, t0),
            Ok(()),
            "another sender has its own bucket"
        );
        assert_eq!(
            at(FRIEND, t0 + Duration::from_millis(500)),
            Err(Rejected::RateLimited)
        );
        assert_eq!(at(FRIEND, t0 + Duration::from_millis(1100)), Ok(()));
    }

    #[test]
    fn the_rate_limit_forgets_idle_senders() {
        let mut f = Filter::with_rate_limit(RateLimit::default());
        let v = view(Privacy::All);
        let p = hello();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_SENDERS + 10 {
            let sender = format!("0x{i:040x}");
            let t = t0 + Duration::from_millis(i as u64);
            let r = f.check(
                &v,
                Incoming {
                    sender: &sender,
                    topic: ME,
                    payload: &p,
                },
                t,
            );
            assert!(r.is_ok());
        }
        let tracked = f.messages.as_ref().map_or(0, |b| b.map.len());
        assert!(tracked <= MAX_TRACKED_SENDERS, "{tracked}");
    }

    #[test]
    fn the_rate_limit_tracks_at_most_max_tracked_senders() {
        let mut filter = Filter::with_rate_limit(RateLimit {
            interval: Duration::from_secs(1),
            burst: 1,
        });
        let v = view(Privacy::All);
        let now = Instant::now();
        let payload = crate::packet::encode("hi", SystemTime::now()).expect("encodes");
        for i in 0..(MAX_TRACKED_SENDERS + 500) {
            let sender = format!("0x{i:040x}");
            let packet = Incoming {
                sender: &sender,
                topic: ME,
                payload: &payload,
            };
            // Every sender sends once at the same instant: none has refilled, none is idle.
            assert!(filter.check(&v, packet, now).is_ok());
            assert!(filter.messages.as_ref().map_or(0, |b| b.map.len()) <= MAX_TRACKED_SENDERS);
        }
    }

    fn reaction(emoji: u16, removal: bool) -> Vec<u8> {
        let id = crate::reaction::message_id(ME, 45_658.5);
        let r = if removal {
            Reaction::remove(emoji, id, FRIEND)
        } else {
            Reaction::add(emoji, id, FRIEND)
        };
        packet::encode_reaction(&r).expect("encode")
    }

    fn check_any(
        f: &mut Filter,
        v: &SocialView,
        sender: &str,
        payload: &[u8],
        now: Instant,
    ) -> Result<Accepted, Rejected> {
        f.check_packet(
            v,
            Incoming {
                sender,
                topic: ME,
                payload,
            },
            now,
        )
    }

    #[test]
    fn the_rate_limit_is_on_by_default() {
        for f in [Filter::new(), Filter::default()] {
            assert_eq!(f.rate_limit(), Some(RateLimit::default()));
            assert_eq!(f.reaction_rate_limit(), Some(RateLimit::REACTIONS));
        }
        assert_eq!(Filter::unlimited().rate_limit(), None);
        // A flood from one sender: the burst, then one a second.
        let mut f = Filter::new();
        let v = view(Privacy::All);
        let p = hello();
        let t0 = Instant::now();
        let shown = (0..2_000u64)
            .filter(|i| {
                let t = t0 + Duration::from_millis(i * 10); // 100 a second for 20 s
                check_any(&mut f, &v, FRIEND, &p, t).is_ok()
            })
            .count();
        assert!((20..=23).contains(&shown), "{shown}");
    }

    #[test]
    fn reactions_go_through_the_same_rules() {
        let all = view(Privacy::All);
        let only = view(Privacy::OnlyFriends);
        let mut f = Filter::unlimited();
        let t = Instant::now();
        let p = reaction(3, false);
        let table: Vec<(&SocialView, &str, &str, Option<Rejected>)> = vec![
            (&all, FRIEND, "", Some(Rejected::EmptyTopic)),
            (&all, FRIEND, STRANGER, Some(Rejected::NotForMe)),
            (&all, "not-an-address", ME, Some(Rejected::BadSender)),
            (&all, ME, ME, Some(Rejected::OwnMessage)),
            (&all, BLOCKED, ME, Some(Rejected::BlockedByMe)),
            (&all, BLOCKER, ME, Some(Rejected::BlocksMe)),
            (&only, STRANGER, ME, Some(Rejected::NotAFriend)),
            (&only, FRIEND, ME, None),
        ];
        for (i, (v, sender, topic, want)) in table.into_iter().enumerate() {
            let got = f.check_packet(
                v,
                Incoming {
                    sender,
                    topic,
                    payload: &p,
                },
                t,
            );
            match want {
                Some(d) => assert_eq!(got, Err(d), "row {i}"),
                None => assert!(matches!(got, Ok(Accepted::Reaction(_))), "row {i}: {got:?}"),
            }
        }
        // Messages come out of check_packet as messages.
        assert!(matches!(
            check_any(&mut f, &all, STRANGER, &hello(), t),
            Ok(Accepted::Message(m)) if m.text == "hello"
        ));
        // check() keeps refusing anything but a message, and remembers no reaction.
        assert_eq!(
            check(&mut f, &all, STRANGER, ME, &reaction(9, false)),
            Err(Rejected::Packet(PacketError::NotChat))
        );
        assert!(check_any(&mut f, &all, STRANGER, &reaction(9, false), t).is_ok());
        // A bad reaction is a packet error.
        let bad = packet::Packet {
            message: Some(packet::PacketMessage::ChatReaction(packet::ChatReaction {
                emoji_index: 5000,
                message_id: "m".into(),
                address: String::new(),
            })),
            protocol_version: packet::PROTOCOL_VERSION,
        };
        use prost::Message as _;
        assert_eq!(
            check_any(&mut f, &all, STRANGER, &bad.encode_to_vec(), t),
            Err(Rejected::Packet(PacketError::BadReaction(
                crate::reaction::ReactionError::EmojiOutOfRange(5000)
            )))
        );
    }

    #[test]
    fn reactions_are_deduplicated_and_limited_apart_from_messages() {
        let v = view(Privacy::All);
        let mut f = Filter::new();
        let t = Instant::now();
        let (add, remove) = (reaction(1, false), reaction(1, true));
        assert!(check_any(&mut f, &v, FRIEND, &add, t).is_ok());
        assert_eq!(
            check_any(&mut f, &v, FRIEND, &add, t),
            Err(Rejected::DuplicateReaction)
        );
        assert!(check_any(&mut f, &v, FRIEND, &remove, t).is_ok());
        assert!(check_any(&mut f, &v, FRIEND, &add, t).is_ok(), "toggle");
        assert!(
            check_any(&mut f, &v, STRANGER, &add, t).is_ok(),
            "someone else's"
        );
        // Duplicates used no budget: 3 of the 8 tokens are gone; 5 more distinct pass.
        for emoji in 10..15 {
            assert!(check_any(&mut f, &v, FRIEND, &reaction(emoji, false), t).is_ok());
        }
        assert_eq!(
            check_any(&mut f, &v, FRIEND, &reaction(20, false), t),
            Err(Rejected::RateLimited)
        );
        // The message budget is untouched.
        for _ in 0..3 {
            assert!(check_any(&mut f, &v, FRIEND, &hello(), t).is_ok());
        }
        assert_eq!(
            check_any(&mut f, &v, FRIEND, &hello(), t),
            Err(Rejected::RateLimited)
        );
        // 250 ms later one more reaction fits.
        assert!(
            check_any(
                &mut f,
                &v,
                FRIEND,
                &reaction(21, false),
                t + Duration::from_millis(250)
            )
            .is_ok()
        );
    }

    #[test]
    fn a_resent_message_is_shown_once_and_a_dropped_one_is_not_remembered() {
        let v = view(Privacy::All);
        let mut f = Filter::with_rate_limit(RateLimit {
            interval: Duration::from_secs(1),
            burst: 1,
        });
        let t = Instant::now();
        let sent = SystemTime::now();
        let asking = |text: &str| packet::encode_message(text, sent, true).expect("encode").0;
        let first = asking("one");
        let id = crate::message_id(FRIEND, crate::ole::to_ole(sent));
        assert!(matches!(
            check_any(&mut f, &v, FRIEND, &first, t),
            Ok(Accepted::MessageWithReceipt { ref message, id: ref got }) if message.text == "one" && *got == id
        ));
        // The resend: a duplicate (with its id, to confirm again), before the rate limit.
        for _ in 0..3 {
            assert_eq!(
                check_any(&mut f, &v, FRIEND, &first, t),
                Err(Rejected::DuplicateMessage { id: id.clone() })
            );
        }
        // Over the limit: dropped, and not remembered, so its resend a second later is shown.
        let later = packet::encode_message("two", sent + Duration::from_millis(5), true)
            .expect("encode")
            .0;
        assert_eq!(
            check_any(&mut f, &v, FRIEND, &later, t),
            Err(Rejected::RateLimited)
        );
        assert!(matches!(
            check_any(&mut f, &v, FRIEND, &later, t + Duration::from_secs(1)),
            Ok(Accepted::MessageWithReceipt { .. })
        ));
        // A message from someone I blocked is dropped as before (and so never confirmed).
        let blocked = asking("hi");
        assert_eq!(
            check_any(&mut f, &v, BLOCKED, &blocked, t),
            Err(Rejected::BlockedByMe)
        );
    }

    #[test]
    fn a_receipt_needs_only_the_topic_and_sender_rules() {
        let only = view(Privacy::OnlyFriends);
        let mut f = Filter::new();
        let t = Instant::now();
        let receipt = packet::encode_receipt("0x1111111111111111111111111111111111111111:46000")
            .expect("receipt");
        for sender in [FRIEND, STRANGER, BLOCKED, BLOCKER] {
            assert!(
                matches!(check_any(&mut f, &only, sender, &receipt, t), Ok(Accepted::Receipt { ref message_id }) if message_id.ends_with(":46000")),
                "{sender}"
            );
        }
        let elsewhere = f.check_packet(
            &only,
            Incoming {
                sender: FRIEND,
                topic: STRANGER,
                payload: &receipt,
            },
            t,
        );
        assert_eq!(elsewhere, Err(Rejected::NotForMe));
        assert_eq!(
            check_any(&mut f, &only, ME, &receipt, t),
            Err(Rejected::OwnMessage)
        );
        // Read as a message only (`check`), a receipt is not a chat.
        assert_eq!(
            check(&mut f, &only, FRIEND, ME, &receipt),
            Err(Rejected::Packet(PacketError::NotChat))
        );
    }
}
