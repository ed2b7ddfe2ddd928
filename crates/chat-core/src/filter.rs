//! Which received packets are shown (ADR-208 "Message Filtering", docs/wire.md §6 "Receiving").
//!
//! In order: a packet with an empty topic, or a topic other than my address, is not a private
//! message to me; my own packets are not shown (they are added locally when sent); packets from
//! someone I blocked or who blocked me are dropped; with my setting at ONLY_FRIENDS, packets
//! from non-friends are dropped (the reference explorer skips this check; ADR-208 requires it);
//! then the payload must be a version-100 chat packet; last, an optional per-sender rate limit.
//! Messages from blocked users are always dropped: `blocked_users_messages_visibility` is a
//! display choice left to the UI, and showing them by default is a known complaint about the
//! reference client.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use pchat_core::{Privacy, normalize_address};

use crate::packet::{self, ChatMessage, PacketError};

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
pub enum Drop {
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
    #[error(transparent)]
    Packet(#[from] PacketError),
}

/// At most `burst` messages at once per sender, refilled at one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

impl Default for RateLimit {
    /// One message per second, as the reference client's optional limit.
    fn default() -> Self {
        RateLimit {
            interval: Duration::from_secs(1),
            burst: 1,
        }
    }
}

/// Senders remembered by the rate limit before idle ones are forgotten.
const MAX_TRACKED_SENDERS: usize = 10_000;

/// The receive filter (it keeps the rate limit's state).
#[derive(Debug, Default)]
pub struct Filter {
    limit: Option<RateLimit>,
    /// Per sender: tokens left and when they were counted.
    buckets: HashMap<String, (f64, Instant)>,
}

impl Filter {
    /// A filter without a rate limit.
    pub fn new() -> Self {
        Filter::default()
    }

    /// A filter that also limits each sender.
    pub fn with_rate_limit(limit: RateLimit) -> Self {
        Filter {
            limit: Some(limit),
            buckets: HashMap::new(),
        }
    }

    /// The message in `packet` if it is to be shown, or why not.
    pub fn check(
        &mut self,
        view: &SocialView,
        packet: Incoming<'_>,
        now: Instant,
    ) -> Result<ChatMessage, Drop> {
        if packet.topic.is_empty() {
            return Err(Drop::EmptyTopic);
        }
        if !packet.topic.eq_ignore_ascii_case(&view.me) {
            return Err(Drop::NotForMe);
        }
        let sender = normalize_address(packet.sender).map_err(|_| Drop::BadSender)?;
        if sender == view.me {
            return Err(Drop::OwnMessage);
        }
        if view.blocked.contains(&sender) {
            return Err(Drop::BlockedByMe);
        }
        if view.blocked_by.contains(&sender) {
            return Err(Drop::BlocksMe);
        }
        if view.privacy == Privacy::OnlyFriends && !view.friends.contains(&sender) {
            return Err(Drop::NotAFriend);
        }
        let message = packet::decode(packet.payload)?;
        if let Some(limit) = self.limit {
            self.take_token(sender, limit, now)?;
        }
        Ok(message)
    }

    fn take_token(&mut self, sender: String, limit: RateLimit, now: Instant) -> Result<(), Drop> {
        let burst = f64::from(limit.burst.max(1));
        let per_second = 1.0 / limit.interval.as_secs_f64().max(1e-6);
        if self.buckets.len() >= MAX_TRACKED_SENDERS && !self.buckets.contains_key(&sender) {
            // Forget senders whose bucket has refilled: they are as good as new.
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second < burst
            });
            // Still full (every tracked sender is busy): forget the one with the most tokens,
            // so the map never holds more than MAX_TRACKED_SENDERS. At worst that sender gets
            // a fresh burst; memory stays bounded.
            if self.buckets.len() >= MAX_TRACKED_SENDERS {
                let fullest = self
                    .buckets
                    .iter()
                    .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
                    .map(|(k, _)| k.clone());
                if let Some(k) = fullest {
                    self.buckets.remove(&k);
                }
            }
        }
        let (tokens, at) = self.buckets.entry(sender).or_insert((burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Drop::RateLimited)
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
    ) -> Result<String, Drop> {
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
        let mut f = Filter::new();
        let upper_me = ME.to_uppercase().replace("0X", "0x");
        let upper_friend = FRIEND.to_uppercase().replace("0X", "0x");
        let table: Vec<(&SocialView, &str, &str, Result<String, Drop>)> = vec![
            (&all, FRIEND, "", Err(Drop::EmptyTopic)),
            (&all, FRIEND, STRANGER, Err(Drop::NotForMe)),
            (&all, "not-an-address", ME, Err(Drop::BadSender)),
            (&all, ME, ME, Err(Drop::OwnMessage)),
            (&all, BLOCKED, ME, Err(Drop::BlockedByMe)),
            (&all, BLOCKER, ME, Err(Drop::BlocksMe)),
            (&only, BLOCKED, ME, Err(Drop::BlockedByMe)),
            (&only, STRANGER, ME, Err(Drop::NotAFriend)),
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
            Err(Drop::Packet(PacketError::Undecodable(_)))
        ));
        assert_eq!(
            check(&mut f, &v, FRIEND, ME, &[0x58, 11]),
            Err(Drop::Packet(PacketError::WrongVersion(11)))
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
        assert_eq!(at(FRIEND, t0), Err(Drop::RateLimited));
        assert_eq!(
            at(STRANGER, t0),
            Ok(()),
            "another sender has its own bucket"
        );
        assert_eq!(
            at(FRIEND, t0 + Duration::from_millis(500)),
            Err(Drop::RateLimited)
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
        assert!(
            f.buckets.len() <= MAX_TRACKED_SENDERS,
            "{}",
            f.buckets.len()
        );
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
            assert!(filter.buckets.len() <= MAX_TRACKED_SENDERS);
        }
    }
}
