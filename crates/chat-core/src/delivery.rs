//! End-to-end delivery confirmation: which sent messages are still waiting for a receipt, when
//! to send one again and when to give up ([`Deliveries`], the sender's side), and which
//! messages were already shown ([`SeenMessages`], the receiver's side).
//!
//! ## Why
//!
//! Handing a packet to LiveKit's reliable data channel does not mean it arrives: the channel
//! is reliable only as long as the sender's, the server's and the receiver's connections live.
//! If the LiveKit node dies with the packet in flight, it is gone and nobody is told. So our
//! senders ask for a receipt (`Chat.receipt_requested`, see [`crate::packet`]) and our
//! receivers send one back once the message passed their filter and was shown (never for a
//! dropped one). Every message the sender was told is sent (`Ok`) ends in exactly one outcome:
//! [`Outcome::Delivered`] when the receipt arrives, or [`Outcome::NotDelivered`] when none came
//! within the deadline, with the reason ([`Unconfirmed`]). A message is never lost without its
//! sender being told; a `NotDelivered` one may still have arrived (the receipt may be the part
//! that was lost).
//!
//! ## Resending, and why it does not show a message twice
//!
//! While a message waits, it is sent again (the same payload, so the same timestamp and the
//! same message id) when the room reconnected or after [`DeliveryConfig::resend_interval`]
//! without a receipt, at most [`DeliveryConfig::max_resends`] times, only while the room is
//! connected (the SDK also waits until the peer is back in the room: a resend counts only once
//! it left, see [`Deliveries::resent`]). Our receivers remember the ids of the messages they showed ([`SeenMessages`]):
//! a repeat is not shown again, only confirmed again. The reference client has no such memory
//! and would show a repeat twice, so a message is resent only to a peer **known to speak
//! receipts** (it sent us a receipt, or a message asking for one); to any other peer it is
//! sent once, and without a receipt by the deadline the outcome is
//! [`Unconfirmed::PeerSendsNoReceipts`] (the peer may be a reference client, which never
//! confirms).
//!
//! ## Bounds
//!
//! - Messages waiting for a receipt: at most [`DeliveryConfig::max_pending`] (default
//!   [`DEFAULT_MAX_PENDING`] = 4,096); one more gives the oldest up as
//!   [`Unconfirmed::TooManyPending`]. Each holds its payload (at most 15 KiB).
//! - Each waits at most [`DeliveryConfig::deadline`] (default 10 s), is resent at most
//!   [`DeliveryConfig::max_resends`] times (default 3) every
//!   [`DeliveryConfig::resend_interval`] (default 2 s).
//! - Peers known to speak receipts: at most [`MAX_RECEIPT_PEERS`] (10,000), the oldest
//!   forgotten first (a forgotten peer is only no longer resent to).
//! - Messages a receiver remembers having shown: at most [`SEEN_CAPACITY`] (8,192) for at most
//!   [`SEEN_WINDOW`] (5 minutes, far longer than a sender keeps resending), as 64-bit keyed
//!   hashes, the oldest forgotten first.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// Default [`DeliveryConfig::max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 4_096;
/// Peers remembered as speaking receipts.
pub const MAX_RECEIPT_PEERS: usize = 10_000;
/// Message ids a receiver remembers having shown.
pub const SEEN_CAPACITY: usize = 8_192;
/// How long a receiver remembers a message it showed.
pub const SEEN_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How long to wait for receipts, and how often to resend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// How long after sending a message is given up without a receipt (default 10 s).
    pub deadline: Duration,
    /// How long without a receipt before the message is sent again (default 2 s).
    pub resend_interval: Duration,
    /// How many times a message may be sent again (default 3).
    pub max_resends: u32,
    /// Messages waiting for a receipt at once (default [`DEFAULT_MAX_PENDING`]).
    pub max_pending: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            deadline: Duration::from_secs(10),
            resend_interval: Duration::from_secs(2),
            max_resends: 3,
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

/// Why a sent message is reported not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unconfirmed {
    #[error("no receipt within {} s (sent again {resends} times)", .waited.as_secs())]
    NoReceipt { waited: Duration, resends: u32 },
    #[error(
        "delivery could not be confirmed within {} s: the recipient has not shown that it \
         sends receipts (it may be a reference client, which never does)",
        .waited.as_secs()
    )]
    PeerSendsNoReceipts { waited: Duration },
    #[error("more than {max} messages were waiting for a receipt; this, the oldest, was given up")]
    TooManyPending { max: usize },
    #[error("the message is too long to carry a receipt request, so it cannot be confirmed")]
    TooLongToConfirm,
}

/// How a sent message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The recipient's client confirmed that it showed the message.
    Delivered { id: String, to: String },
    /// No confirmation came (the message may still have arrived).
    NotDelivered {
        id: String,
        to: String,
        reason: Unconfirmed,
    },
}

/// A message to send again: the same payload to the same peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resend {
    pub id: String,
    pub to: String,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Pending {
    to: String,
    payload: Vec<u8>,
    sent_at: Instant,
    last_sent: Instant,
    resends: u32,
    /// The room reconnected since it was last sent: send it again at once.
    resend_now: bool,
}

/// The sender's side: messages waiting for a receipt (see the module docs).
#[derive(Debug)]
pub struct Deliveries {
    config: DeliveryConfig,
    /// Waiting messages by id.
    pending: HashMap<String, Pending>,
    /// Ids in the order sent, so in the order of their deadlines (holds ids already confirmed
    /// until they reach the front or a compaction; at most twice `max_pending` long).
    order: VecDeque<String>,
    /// Outcomes decided outside [`Deliveries::poll`] (messages given up when over the bound).
    ready: VecDeque<Outcome>,
    peers: ReceiptPeers,
}

impl Deliveries {
    pub fn new(config: DeliveryConfig) -> Self {
        Deliveries {
            config: DeliveryConfig {
                max_pending: config.max_pending.max(1),
                ..config
            },
            pending: HashMap::new(),
            order: VecDeque::new(),
            ready: VecDeque::new(),
            peers: ReceiptPeers::default(),
        }
    }

    pub fn config(&self) -> DeliveryConfig {
        self.config
    }

    /// Messages waiting for a receipt now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Starts waiting for the receipt of `id`, just sent to `to` with `payload`. Over the
    /// bound, the oldest waiting message is given up (its outcome comes from the next
    /// [`Deliveries::poll`]). The same id twice replaces the first.
    pub fn track(&mut self, id: &str, to: &str, payload: Vec<u8>, now: Instant) {
        if !self.pending.contains_key(id) {
            while self.pending.len() >= self.config.max_pending {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                if let Some(p) = self.pending.remove(&oldest) {
                    self.ready.push_back(Outcome::NotDelivered {
                        id: oldest,
                        to: p.to,
                        reason: Unconfirmed::TooManyPending {
                            max: self.config.max_pending,
                        },
                    });
                }
            }
            self.order.push_back(id.to_owned());
        }
        self.pending.insert(
            id.to_owned(),
            Pending {
                to: to.to_owned(),
                payload,
                sent_at: now,
                last_sent: now,
                resends: 0,
                resend_now: false,
            },
        );
        if self.order.len() > 2 * self.config.max_pending {
            let pending = &self.pending;
            self.order.retain(|id| pending.contains_key(id));
        }
    }

    /// `id`, just sent to `to`, could not ask for a receipt (too long): its outcome,
    /// [`Unconfirmed::TooLongToConfirm`], comes from the next [`Deliveries::poll`].
    pub fn unconfirmable(&mut self, id: &str, to: &str) {
        self.ready.push_back(Outcome::NotDelivered {
            id: id.to_owned(),
            to: to.to_owned(),
            reason: Unconfirmed::TooLongToConfirm,
        });
    }

    /// Stops waiting for `id` without an outcome (its send failed, and the sender was told).
    pub fn forget(&mut self, id: &str) {
        self.pending.remove(id);
    }

    /// A receipt for `id` arrived from `from`: the message's outcome if it was waiting and was
    /// sent to `from` (a receipt from anyone else, or a late one, changes nothing). Either way
    /// `from` is now known to speak receipts.
    pub fn confirm(&mut self, from: &str, id: &str) -> Option<Outcome> {
        self.peers.insert(from);
        if self.pending.get(id)?.to != from {
            return None;
        }
        let p = self.pending.remove(id)?;
        Some(Outcome::Delivered {
            id: id.to_owned(),
            to: p.to,
        })
    }

    /// `peer` sent us a message asking for a receipt: it speaks receipts.
    pub fn peer_speaks_receipts(&mut self, peer: &str) {
        self.peers.insert(peer);
    }

    /// Whether `peer` is known to speak receipts.
    pub fn speaks_receipts(&self, peer: &str) -> bool {
        self.peers.contains(peer)
    }

    /// The room reconnected: what was sent before may be lost, so every waiting message (to a
    /// peer that speaks receipts) is sent again at the next poll.
    pub fn reconnected(&mut self) {
        for p in self.pending.values_mut() {
            p.resend_now = true;
        }
    }

    /// The outcomes decided by `now` (given up at the deadline, or over the bound), and what
    /// is due to be sent again if `connected`. A resend counts once the caller sent it
    /// ([`Deliveries::resent`]): it may hold one back, e.g. while the peer is not in the room,
    /// and it is offered again at the next poll.
    pub fn poll(&mut self, now: Instant, connected: bool) -> (Vec<Outcome>, Vec<Resend>) {
        let mut outcomes: Vec<Outcome> = self.ready.drain(..).collect();
        let deadline = self.config.deadline;
        while let Some(id) = self.order.front() {
            let Some(p) = self.pending.get(id) else {
                self.order.pop_front();
                continue;
            };
            let waited = now.saturating_duration_since(p.sent_at);
            if waited < deadline {
                break;
            }
            let reason = if self.peers.contains(&p.to) {
                Unconfirmed::NoReceipt {
                    waited,
                    resends: p.resends,
                }
            } else {
                Unconfirmed::PeerSendsNoReceipts { waited }
            };
            let Some(id) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.pending.remove(&id) {
                outcomes.push(Outcome::NotDelivered {
                    id,
                    to: p.to,
                    reason,
                });
            }
        }
        let mut resends = Vec::new();
        if connected {
            for (id, p) in &self.pending {
                let due = p.resend_now
                    || now.saturating_duration_since(p.last_sent) >= self.config.resend_interval;
                if due && p.resends < self.config.max_resends && self.peers.contains(&p.to) {
                    resends.push(Resend {
                        id: id.clone(),
                        to: p.to.clone(),
                        payload: p.payload.clone(),
                    });
                }
            }
        }
        (outcomes, resends)
    }
}

impl Deliveries {
    /// `id` was sent again at `now` (one of the resends [`Deliveries::poll`] offered).
    pub fn resent(&mut self, id: &str, now: Instant) {
        if let Some(p) = self.pending.get_mut(id) {
            p.resends += 1;
            p.last_sent = now;
            p.resend_now = false;
        }
    }
}

/// Peers known to speak receipts, at most [`MAX_RECEIPT_PEERS`], the oldest forgotten first.
#[derive(Debug, Default)]
struct ReceiptPeers {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl ReceiptPeers {
    fn insert(&mut self, peer: &str) {
        if self.set.contains(peer) {
            return;
        }
        while self.set.len() >= MAX_RECEIPT_PEERS {
            match self.order.pop_front() {
                Some(old) => self.set.remove(&old),
                None => break,
            };
        }
        self.set.insert(peer.to_owned());
        self.order.push_back(peer.to_owned());
    }

    fn contains(&self, peer: &str) -> bool {
        self.set.contains(peer)
    }
}

/// The receiver's side: the messages (asking for a receipt) already shown, so that a resend is
/// confirmed again but not shown twice. At most `capacity` ids, each for `window`, kept as
/// 64-bit keyed hashes (SipHash with a per-process random key, so a peer cannot aim
/// collisions), the oldest forgotten first.
#[derive(Debug)]
pub struct SeenMessages {
    hasher: RandomState,
    seen: HashSet<u64>,
    order: VecDeque<(u64, Instant)>,
    capacity: usize,
    window: Duration,
}

impl Default for SeenMessages {
    fn default() -> Self {
        SeenMessages::new(SEEN_CAPACITY, SEEN_WINDOW)
    }
}

impl SeenMessages {
    /// A memory of at most `capacity` ids (at least 1), each kept for `window`.
    pub fn new(capacity: usize, window: Duration) -> Self {
        SeenMessages {
            hasher: RandomState::new(),
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            window,
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether the message `id` (which names its sender) was shown within the window.
    pub fn contains(&mut self, id: &str, now: Instant) -> bool {
        self.expire(now);
        self.seen.contains(&self.hasher.hash_one(id))
    }

    /// Remembers that the message `id` was shown.
    pub fn insert(&mut self, id: &str, now: Instant) {
        self.expire(now);
        let key = self.hasher.hash_one(id);
        if !self.seen.insert(key) {
            return;
        }
        while self.order.len() >= self.capacity {
            if let Some((old, _)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back((key, now));
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(key, at)) = self.order.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "0x2222222222222222222222222222222222222222";
    const CAROL: &str = "0x3333333333333333333333333333333333333333";

    /// Polls and sends every resend offered.
    fn poll_all(d: &mut Deliveries, now: Instant, connected: bool) -> (Vec<Outcome>, Vec<Resend>) {
        let (outcomes, resends) = d.poll(now, connected);
        for r in &resends {
            d.resent(&r.id, now);
        }
        (outcomes, resends)
    }

    fn config() -> DeliveryConfig {
        DeliveryConfig {
            deadline: Duration::from_secs(10),
            resend_interval: Duration::from_secs(2),
            max_resends: 2,
            max_pending: 3,
        }
    }

    #[test]
    fn a_receipt_from_the_recipient_delivers_once() {
        let t = Instant::now();
        let mut d = Deliveries::new(config());
        d.track("m1", BOB, b"p".to_vec(), t);
        // From someone else: nothing.
        assert_eq!(d.confirm(CAROL, "m1"), None);
        assert_eq!(
            d.confirm(BOB, "m1"),
            Some(Outcome::Delivered {
                id: "m1".into(),
                to: BOB.into()
            })
        );
        assert_eq!(d.confirm(BOB, "m1"), None, "only once");
        let (outcomes, resends) = poll_all(&mut d, t + Duration::from_secs(60), true);
        assert!(outcomes.is_empty() && resends.is_empty());
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn resent_only_to_peers_that_speak_receipts_then_given_up() {
        let t = Instant::now();
        let mut d = Deliveries::new(config());
        d.track("to-bob", BOB, b"b".to_vec(), t);
        d.track("to-carol", CAROL, b"c".to_vec(), t);
        d.peer_speaks_receipts(BOB);
        assert!(d.speaks_receipts(BOB) && !d.speaks_receipts(CAROL));
        // Not due yet; then due, but not while disconnected.
        assert_eq!(poll_all(&mut d, t + Duration::from_secs(1), true).1, vec![]);
        assert_eq!(
            poll_all(&mut d, t + Duration::from_secs(2), false).1,
            vec![]
        );
        // Offered until sent.
        assert_eq!(d.poll(t + Duration::from_secs(2), true).1.len(), 1);
        let (_, resends) = poll_all(&mut d, t + Duration::from_secs(2), true);
        assert_eq!(
            resends,
            vec![Resend {
                id: "to-bob".into(),
                to: BOB.into(),
                payload: b"b".to_vec()
            }]
        );
        // A reconnection makes it due at once; the resends are bounded.
        d.reconnected();
        assert_eq!(
            poll_all(&mut d, t + Duration::from_millis(2_100), true)
                .1
                .len(),
            1
        );
        d.reconnected();
        assert_eq!(
            poll_all(&mut d, t + Duration::from_millis(2_200), true).1,
            vec![]
        );
        assert_eq!(poll_all(&mut d, t + Duration::from_secs(8), true).1, vec![]);
        // At the deadline, each gets its one outcome, with the reason.
        let (outcomes, _) = poll_all(&mut d, t + Duration::from_secs(10), true);
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().any(|o| matches!(o,
            Outcome::NotDelivered { id, reason: Unconfirmed::NoReceipt { resends: 2, .. }, .. } if id == "to-bob")));
        assert!(outcomes.iter().any(|o| matches!(o,
            Outcome::NotDelivered { id, reason: Unconfirmed::PeerSendsNoReceipts { .. }, .. } if id == "to-carol")));
        assert_eq!(d.pending(), 0);
        assert_eq!(d.confirm(BOB, "to-bob"), None, "too late");
    }

    #[test]
    fn over_the_bound_the_oldest_is_given_up() {
        let t = Instant::now();
        let mut d = Deliveries::new(config());
        for i in 0..5 {
            d.track(&format!("m{i}"), BOB, vec![], t + Duration::from_millis(i));
        }
        assert_eq!(d.pending(), 3);
        let (outcomes, _) = poll_all(&mut d, t + Duration::from_millis(10), true);
        let given_up: Vec<&str> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::NotDelivered {
                    id,
                    reason: Unconfirmed::TooManyPending { max: 3 },
                    ..
                } => id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(given_up, ["m0", "m1"]);
        assert!(d.confirm(BOB, "m4").is_some());
        // Thousands confirmed at once keep the order queue bounded too.
        for i in 0..10_000 {
            let id = format!("x{i}");
            d.track(&id, BOB, vec![], t);
            d.confirm(BOB, &id);
        }
        assert!(d.order.len() <= 2 * 3 + 1, "{}", d.order.len());
    }

    #[test]
    fn a_failed_send_is_forgotten_without_an_outcome() {
        let t = Instant::now();
        let mut d = Deliveries::new(config());
        d.track("m1", BOB, vec![], t);
        d.forget("m1");
        let (outcomes, _) = poll_all(&mut d, t + Duration::from_secs(60), true);
        assert!(outcomes.is_empty());
    }

    #[test]
    fn seen_messages_are_remembered_within_the_window_and_the_bound() {
        let t = Instant::now();
        let mut s = SeenMessages::new(2, Duration::from_secs(60));
        assert!(!s.contains("a", t));
        s.insert("a", t);
        s.insert("a", t);
        assert!(s.contains("a", t + Duration::from_secs(59)));
        assert!(!s.contains("b", t));
        s.insert("b", t);
        s.insert("c", t);
        assert_eq!(s.len(), 2);
        assert!(!s.contains("a", t), "the oldest went first");
        assert!(s.contains("b", t) && s.contains("c", t));
        assert!(!s.contains("c", t + Duration::from_secs(60)), "expired");
        assert!(s.is_empty());
    }

    #[test]
    fn reasons_read_in_whole_seconds() {
        let late = Unconfirmed::NoReceipt {
            waited: Duration::from_millis(10_065),
            resends: 3,
        };
        assert_eq!(
            late.to_string(),
            "no receipt within 10 s (sent again 3 times)"
        );
        let silent = Unconfirmed::PeerSendsNoReceipts {
            waited: Duration::from_millis(10_250),
        };
        assert!(
            silent
                .to_string()
                .starts_with("delivery could not be confirmed within 10 s:")
        );
    }
}
