//! [`PrivateChat`]: one object for one wallet, owning the room connection (gatekeeper token →
//! [`livekit_participant`]) and the social connection ([`SocialSession`]), with one stream of
//! typed [`ChatEvent`]s.
//!
//! ## What the application sees
//!
//! - Nothing unfiltered, ever. Until the social view (my privacy setting, friends, blocks in both
//!   directions) has been read once, packets that arrive are **held** (at most
//!   [`PrivateChatConfig::held_packets`]; beyond that the oldest are dropped and reported as
//!   [`DropReason::HeldTooMany`]) and judged when the view arrives.
//! - While the social service is unreachable the view is not known to be current, so the
//!   filter **fails closed**: the last view is used with my setting taken as only-friends, so
//!   strangers are dropped ([`ChatEvent::FilterFailClosed`] says when this starts and ends).
//! - Every drop is an event with its reason, and counted per reason ([`PrivateChat::drops`]).
//! - The state of every address with an open conversation and of every friend is pushed
//!   ([`ChatEvent::RecipientState`]) whenever presence, participant metadata, friendship or
//!   blocks change it.
//!
//! ## Sending
//!
//! [`PrivateChat::send`] checks, in order: the recipient's address, the text (not empty, at most
//! [`PrivateChatConfig::max_chars`] characters), the recipient's state (it must be
//! [`RecipientState::Connected`]; otherwise nothing is sent and the error names the state), then
//! sends on the reliable data channel (the participant first waits until the room has announced
//! us, so the receiver knows who wrote). The answer says whether it left: `Err` = certainly not
//! sent, with why; `Ok` = on the data channel.
//!
//! ## Delivery: every message sent ends Delivered or NotDelivered
//!
//! On the data channel is not arrived: if the LiveKit node dies with the packet in flight, it is
//! gone. So every message asks for a receipt (our extension of the packet, ignored by the
//! reference client: [`chat_core::packet`]), and after `Ok` exactly one outcome event follows
//! for it: [`ChatEvent::Delivered`] when the recipient's client confirmed that it showed the
//! message, or [`ChatEvent::NotDelivered`] with the reason when no receipt came within
//! [`chat_core::DeliveryConfig::deadline`] (default 10 s; the message may still have arrived).
//! Meanwhile the message is sent again (same payload, same id) after a room reconnection or
//! every [`chat_core::DeliveryConfig::resend_interval`] (2 s), at most
//! [`chat_core::DeliveryConfig::max_resends`] (3) times, while the room is connected and the
//! peer is in it, but only to peers known to speak receipts, so that a reference client never
//! shows a message twice. Our receivers send a receipt only for a message they accepted and emitted (never for a
//! dropped one), remember what they showed, and confirm a repeat again without showing it
//! ([`DropReason`] `duplicate-message`). The timestamps of one `PrivateChat`'s messages are kept
//! 1 ms apart, so that no two of its messages share an id. The rules and bounds (4,096 messages
//! waiting, then the oldest is given up): [`chat_core::delivery`]; the settings:
//! [`PrivateChatConfig::delivery`].
//!
//! ## Bounds
//!
//! Events wait for the application in a channel of [`PrivateChatConfig::event_capacity`]; when
//! the application reads too slowly the internal task waits, so the room's own bounded queue
//! fills and then drops (reported as [`ChatEvent::Lagged`]). Held packets: see above. Watched
//! addresses: the friends plus at most [`MAX_OPEN_CONVERSATIONS`] open conversations. Rooms: the
//! home room plus at most [`RoomsConfig::max_extra`] (and room 0 when kept). Messages waiting
//! for a receipt: [`chat_core::DeliveryConfig::max_pending`]; checked every [`DELIVERY_TICK`].
//!
//! ## End-to-end encryption
//!
//! Each `PrivateChat` makes a fresh X25519 session key ([`chat_core::SessionKey`]) and sends its
//! public half in the signed metadata of every token request, so that the gatekeeper publishes
//! it as the participant attribute `chat_key` (docs/e2ee.md). A message or reaction to a peer
//! whose attributes carry a key is sealed for that key ([`chat_core::e2ee`]); to a peer without
//! one (a reference client) it goes in the reference's plaintext, unless encryption is
//! required for that conversation ([`PrivateChat::require_encryption`], or
//! [`PrivateChatConfig::require_encryption`] for all), in which case the send is refused
//! ([`NotSent::EncryptionRequired`]). Every message and reaction says how it travelled
//! ([`Protection`]: in [`Sent`], [`ChatEvent::Message`], [`ChatEvent::Reaction`]); a plaintext
//! one from a peer that has a key is [`Protection::PlaintextFromKeyedPeer`], to be flagged.
//! The key of every watched address is pushed as it appears, changes (the peer reconnected with
//! a new session) or goes ([`ChatEvent::PeerKey`]). Encrypted packets that cannot be opened are
//! dropped and counted per reason (`e2ee-…`, [`DropReason::E2ee`]); a resend of an encrypted
//! message is sealed again for the peer's current key, never sent in clear. Receipts travel in
//! clear (they carry only a message id).
//!
//! ## Sharded rooms
//!
//! When the gatekeeper spreads the players over several rooms, the client stays in its home
//! room and joins others lazily ([`crate::rooms`], [`PrivateChatConfig::rooms`]): opening a
//! conversation joins the peer's room, sending joins it when the peer is in none of mine.
//! Packets from every room pass the same filter into the same event stream; a peer's state comes
//! from the room it is found in. With one room nothing of this happens.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use chat_core::{
    Accepted, ChatMessage, Deliveries, DeliveryConfig, E2ee, Filter, Outcome, Protection,
    RateLimit, Reaction, RecipientState, SendRules, SessionKey, SocialView, Unconfirmed,
};
use livekit_participant::{
    ConnectError, ConnectionState, Event, Events, IncomingPacket, Options, Participant, Reliability,
};
use pchat_core::chat_key::ChatKey;
use pchat_core::{Privacy, normalize_address};
use tokio::sync::mpsc;

use crate::GatekeeperTokens;
use crate::rooms::{RoomEvent, Rooms, RoomsConfig};
use crate::social::{
    ConnectionState as SessionState, FullView, SessionConfig, SessionEvent, SocialError,
    SocialSession, SocialUpdate,
};

/// Most conversations watched at once (beyond the friends).
pub const MAX_OPEN_CONVERSATIONS: usize = 1_000;
/// How often messages waiting for a receipt are checked (resent, or given up at the deadline).
pub const DELIVERY_TICK: std::time::Duration = std::time::Duration::from_millis(250);
pub use chat_core::outgoing::{DEFAULT_MAX_CHARS, MAX_CHARS_LIMIT};

/// How to connect, and the client's limits.
#[derive(Debug, Clone)]
pub struct PrivateChatConfig {
    /// The gatekeeper's base URL (e.g. `http://127.0.0.1:3000`).
    pub gatekeeper_url: String,
    /// The social service's WebSocket URL (e.g. `ws://127.0.0.1:3001/`).
    pub social_url: String,
    /// Longest message, in UTF-16 code units as the reference client counts (default 155; at
    /// most [`MAX_CHARS_LIMIT`], what fits one packet).
    pub max_chars: usize,
    /// Per-sender receive limit for messages (default on: [`RateLimit::default`]); reactions have
    /// their own ([`RateLimit::REACTIONS`]). `None` turns both off.
    pub rate_limit: Option<RateLimit>,
    /// Packets held while the social view is loading (default 1,024).
    pub held_packets: usize,
    /// Events waiting for the application (default 1,024).
    pub event_capacity: usize,
    /// The room connection's options.
    pub room: Options,
    /// Delivery receipts: how long to wait, how often to resend, how many may wait (default
    /// [`DeliveryConfig::default`]: 10 s, every 2 s, 3 times, 4,096).
    pub delivery: DeliveryConfig,
    /// How the sharded rooms are used (only with more than one room; [`crate::rooms`]).
    pub rooms: RoomsConfig,
    /// End-to-end encryption (default on): publish a session key and seal messages and
    /// reactions for peers that published one. Off: no key, everything in plaintext.
    pub e2ee: bool,
    /// Refuse to send in plaintext to anyone (default off: only the conversations marked with
    /// [`PrivateChat::require_encryption`]).
    pub require_encryption: bool,
}

impl PrivateChatConfig {
    pub fn new(gatekeeper_url: &str, social_url: &str) -> Self {
        PrivateChatConfig {
            gatekeeper_url: gatekeeper_url.to_owned(),
            social_url: social_url.to_owned(),
            max_chars: DEFAULT_MAX_CHARS,
            rate_limit: Some(RateLimit::default()),
            held_packets: 1_024,
            event_capacity: 1_024,
            room: Options::default(),
            delivery: DeliveryConfig::default(),
            rooms: RoomsConfig::default(),
            e2ee: true,
            require_encryption: false,
        }
    }
}

/// Why a packet was not shown.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DropReason {
    #[error(transparent)]
    Filter(#[from] chat_core::Rejected),
    #[error("more packets arrived while the social view was loading than can be held")]
    HeldTooMany,
    #[error(transparent)]
    E2ee(#[from] chat_core::OpenError),
}

impl DropReason {
    /// A short, stable name for counting and display.
    pub fn name(&self) -> &'static str {
        use chat_core::Rejected as D;
        match self {
            DropReason::HeldTooMany => "held-too-many",
            DropReason::E2ee(e) => e.name(),
            DropReason::Filter(d) => match d {
                D::EmptyTopic => "no-topic",
                D::NotForMe => "not-for-me",
                D::BadSender => "bad-sender",
                D::OwnMessage => "own-message",
                D::BlockedByMe => "blocked-by-me",
                D::BlocksMe => "blocks-me",
                D::NotAFriend => "not-a-friend",
                D::RateLimited => "rate-limited",
                D::DuplicateReaction => "duplicate-reaction",
                D::DuplicateMessage { .. } => "duplicate-message",
                D::Packet(_) => "bad-packet",
            },
        }
    }
}

/// The state of the connection to the social service.
#[derive(Debug, Clone)]
pub enum SocialState {
    Connecting,
    Connected,
    /// Lost; trying again (`attempt` so far), with the last error.
    Reconnecting {
        attempt: u32,
        error: SocialError,
    },
}

impl PartialEq for SocialState {
    /// Errors compare by what they say.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SocialState::Connecting, SocialState::Connecting)
            | (SocialState::Connected, SocialState::Connected) => true,
            (
                SocialState::Reconnecting { attempt, error },
                SocialState::Reconnecting {
                    attempt: a,
                    error: e,
                },
            ) => attempt == a && error.to_string() == e.to_string(),
            _ => false,
        }
    }
}

/// Something that happened, for the application.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// A message to show. `id` is `"{from}:{OLE timestamp}"`, as the reference client forms it.
    Message {
        from: String,
        message: ChatMessage,
        id: String,
        /// Whether it was encrypted end to end (flag [`Protection::PlaintextFromKeyedPeer`]).
        protection: Protection,
    },
    /// The recipient's client confirmed that it showed my message `id` ([`Sent::id`]).
    Delivered {
        id: String,
        to: String,
    },
    /// No confirmation that my message `id` ([`Sent::id`]) was shown, and why (see the module
    /// docs). It may still have arrived: only the confirmation is missing.
    NotDelivered {
        id: String,
        to: String,
        reason: Unconfirmed,
    },
    /// A reaction to show: `from` added (or, with `reaction.removal`, took back) an emoji on the
    /// message `reaction.message_id`.
    Reaction {
        from: String,
        reaction: Reaction,
        protection: Protection,
    },
    /// The end-to-end encryption key a watched address publishes now (`None`: none, or
    /// encryption is off here, so messages to it would go in plaintext). Pushed when it
    /// appears, changes (a new session) or goes.
    PeerKey {
        address: String,
        key: Option<ChatKey>,
    },
    /// A packet that is not shown, and why; `count` is how many were dropped for that reason so
    /// far (for a summary; not to be shown one line each).
    Dropped {
        from: String,
        reason: DropReason,
        count: u64,
    },
    /// The state of a watched address (an open conversation or a friend) changed.
    RecipientState {
        address: String,
        state: RecipientState,
    },
    /// The social view was (re)loaded or changed: friends, requests, blocks, my setting.
    ViewChanged,
    /// Someone asked to be my friend.
    FriendshipRequested {
        from: String,
        message: Option<String>,
    },
    FriendshipAccepted {
        by: String,
    },
    FriendshipRejected {
        by: String,
    },
    FriendshipCancelled {
        by: String,
    },
    FriendshipDeleted {
        by: String,
    },
    /// Someone blocked or unblocked me.
    BlockedBy {
        address: String,
        blocked: bool,
    },
    FriendOnline {
        address: String,
    },
    FriendOffline {
        address: String,
    },
    RoomState(ConnectionState),
    SocialState(SocialState),
    /// `true`: the social view is unknown or not current, so strangers' messages are dropped
    /// (only-friends behaviour) until it is; `false`: back to my own setting.
    FilterFailClosed(bool),
    /// The room's event queue overflowed: `dropped` packets or room events were lost.
    Lagged {
        dropped: u64,
    },
}

/// Why [`PrivateChat::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectFailed {
    #[error("the wallet's address is not valid: {0:?}")]
    BadAddress(String),
    #[error("cannot join the chat room: {0}")]
    Room(#[from] ConnectError),
    #[error("bad configuration: {0}")]
    Config(chat_core::SendError),
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotSent {
    #[error("{0:?} is not a wallet address (0x and 40 hex digits)")]
    BadRecipient(String),
    #[error("the message is empty")]
    Empty,
    #[error("the message has {len} characters; the limit is {limit}")]
    TooLong { len: usize, limit: usize },
    #[error("cannot write to {to}: their state is {state:?}")]
    Recipient { to: String, state: RecipientState },
    #[error(
        "encryption is required for {to}, who has published no encryption key (a client without end-to-end encryption); nothing was sent"
    )]
    EncryptionRequired { to: String },
    #[error("cannot encrypt for {to}: {reason}")]
    Seal {
        to: String,
        reason: chat_core::SealError,
    },
    #[error(transparent)]
    Rules(chat_core::SendError),
    #[error("the room refused the message: {0}")]
    Room(#[from] livekit_participant::SendError),
}

/// A message on the data channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// `"{me}:{OLE timestamp}"`.
    pub id: String,
    pub to: String,
    pub at: SystemTime,
    pub timestamp: f64,
    /// Whether it left encrypted end to end ([`Protection::Encrypted`]) or in plaintext.
    pub protection: Protection,
}

/// What a conversation's encryption looks like now ([`PrivateChat::encryption`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encryption {
    /// The key the peer publishes now (`None`: messages to them go in plaintext).
    pub peer_key: Option<ChatKey>,
    /// My own session key (`None`: end-to-end encryption is off in this client).
    pub my_key: Option<ChatKey>,
    /// Whether a plaintext send to them is refused.
    pub required: bool,
}

impl Encryption {
    /// Whether a message sent now would be encrypted.
    pub fn active(&self) -> bool {
        self.peer_key.is_some() && self.my_key.is_some()
    }
}

/// Most conversations marked as requiring encryption.
pub const MAX_REQUIRED_CONVERSATIONS: usize = 10_000;

pub use chat_core::message_id;

/// State shared by the handle and the task.
struct State {
    /// The last view read (None before the first read).
    view: Option<FullView>,
    /// Whether the social view is current (connected and loaded).
    social_current: bool,
    /// Open conversations (lower-case addresses).
    open: HashSet<String>,
    /// The last state reported per watched address.
    reported: HashMap<String, RecipientState>,
    /// The last key reported per watched address.
    reported_keys: HashMap<String, Option<ChatKey>>,
    /// Conversations where a plaintext send is refused.
    required: HashSet<String>,
    drops: HashMap<&'static str, u64>,
}

impl State {
    /// The view the filter uses: my own, or failing closed.
    fn filter_view(&self, me: &str) -> Option<SocialView> {
        let view = self.view.as_ref()?;
        let mut v = view.social_view();
        v.me = me.to_owned();
        if !self.social_current {
            v.privacy = Privacy::OnlyFriends;
        }
        Some(v)
    }

    fn my_privacy(&self) -> Privacy {
        match &self.view {
            Some(v) if self.social_current => v.privacy,
            _ => Privacy::OnlyFriends,
        }
    }

    fn watched(&self) -> Vec<String> {
        let mut all: Vec<String> = self.open.iter().cloned().collect();
        if let Some(v) = &self.view {
            all.extend(
                v.friends
                    .iter()
                    .filter(|f| !self.open.contains(*f))
                    .cloned(),
            );
        }
        all
    }

    fn count_drop(&mut self, reason: &DropReason) -> u64 {
        let n = self.drops.entry(reason.name()).or_insert(0);
        *n += 1;
        *n
    }
}

struct Inner {
    me: String,
    /// The home room (the one room with K = 1); the same participant as `rooms.home()`.
    room: Arc<Participant>,
    rooms: Rooms,
    social: SocialSession,
    state: Mutex<State>,
    rules: SendRules,
    /// My messages waiting for a receipt.
    deliveries: Mutex<Deliveries>,
    /// When my last message was sent (the next one is at least 1 ms later: distinct ids).
    last_sent_at: Mutex<SystemTime>,
    /// End-to-end encryption state (`None`: off).
    e2ee: Option<Mutex<E2ee>>,
    /// My messages waiting for a receipt that left encrypted: resent only encrypted.
    sealed: Mutex<HashSet<String>>,
    require_all: bool,
}

/// A player's private chat: room + social service, one event stream.
pub struct PrivateChat {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PrivateChat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The application's end of the event stream.
pub struct ChatEvents(mpsc::Receiver<ChatEvent>);

impl ChatEvents {
    /// The next event; `None` once the chat is closed.
    pub async fn recv(&mut self) -> Option<ChatEvent> {
        self.0.recv().await
    }

    /// The next event within `limit`.
    pub async fn recv_timeout(&mut self, limit: std::time::Duration) -> Option<ChatEvent> {
        tokio::time::timeout(limit, self.0.recv())
            .await
            .ok()
            .flatten()
    }
}

fn deliveries(inner: &Inner) -> std::sync::MutexGuard<'_, Deliveries> {
    inner
        .deliveries
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `payload` reliably to `to` (topic and destination), through the room `to` is found
/// in, without holding up the caller: for receipts and resends, whose failure the delivery
/// rules already cover (a lost receipt means a resend or a NotDelivered).
fn send_detached(inner: Arc<Inner>, to: String, payload: Vec<u8>) {
    tokio::spawn(async move {
        if let Err(e) = send_to(&inner, &to, &payload).await {
            tracing::debug!(%to, error = %e, "a receipt or resend did not leave");
        }
    });
}

/// Sends `payload` reliably to `to` (the destination and the topic, as the reference client
/// sets them) through the room `to` is found in (home when none).
async fn send_to(
    inner: &Inner,
    to: &str,
    payload: &[u8],
) -> Result<(), livekit_participant::SendError> {
    let route = inner.rooms.find(to).await;
    inner.rooms.used(route.room);
    route
        .participant
        .send(payload, &[to.to_owned()], Some(to), Reliability::Reliable)
        .await
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock_set(set: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    set.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock_e2ee(e2ee: &Mutex<E2ee>) -> std::sync::MutexGuard<'_, E2ee> {
    e2ee.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The key a participant publishes (`chat_key` attribute), if it is one.
fn published_key(p: &livekit_participant::RemoteParticipant) -> Option<ChatKey> {
    ChatKey::parse(p.attribute(pchat_core::chat_key::ATTRIBUTE)?).ok()
}

/// The key `peer` publishes now, from the room they are found in (`None`: absent, or no key).
async fn peer_key(inner: &Inner, peer: &str) -> Option<ChatKey> {
    inner
        .rooms
        .find(peer)
        .await
        .peer
        .as_ref()
        .and_then(published_key)
}

/// The key `peer` publishes now if this client encrypts (`None`: absent, no key, or
/// encryption off here): what decides how a message to them travels.
async fn usable_peer_key(inner: &Inner, peer: &str) -> Option<ChatKey> {
    match inner.e2ee {
        Some(_) => peer_key(inner, peer).await,
        None => None,
    }
}

/// Seals the plaintext packet `payload` for `to`, whose key is `key`.
fn seal(
    inner: &Inner,
    to: &str,
    key: &ChatKey,
    payload: &[u8],
) -> Result<Vec<u8>, chat_core::SealError> {
    match &inner.e2ee {
        Some(e2ee) => lock_e2ee(e2ee).seal(&inner.me, to, key, payload, SystemTime::now()),
        None => Err(chat_core::SealError::BadRecipientKey),
    }
}

/// How `payload` leaves for `to`: sealed when both of us have a key, else in plaintext unless
/// encryption is required for `to`.
async fn protect(
    inner: &Inner,
    to: &str,
    payload: &[u8],
) -> Result<(Vec<u8>, Protection), NotSent> {
    match usable_peer_key(inner, to).await {
        Some(key) => seal(inner, to, &key, payload)
            .map(|sealed| (sealed, Protection::Encrypted))
            .map_err(|reason| NotSent::Seal {
                to: to.to_owned(),
                reason,
            }),
        None if inner.require_all || lock(&inner.state).required.contains(to) => {
            Err(NotSent::EncryptionRequired { to: to.to_owned() })
        }
        None => Ok((payload.to_vec(), Protection::Plaintext)),
    }
}

impl PrivateChat {
    /// Joins the room (a token from the gatekeeper) and connects to the social service. The
    /// room must be reachable now (its error is returned); the social service may not be: its
    /// connection is retried in the background and the filter fails closed meanwhile.
    pub async fn connect(
        identity: authchain::Identity,
        config: PrivateChatConfig,
    ) -> Result<(PrivateChat, ChatEvents), ConnectFailed> {
        let me = identity.address().to_lower_hex();
        let rules = SendRules::new(config.max_chars).map_err(ConnectFailed::Config)?;
        let (social, social_events) =
            SocialSession::start(identity.clone(), SessionConfig::new(&config.social_url));
        // A fresh key pair for this session: published through the token, never stored.
        let e2ee = config.e2ee.then(|| E2ee::new(SessionKey::generate()));
        let mut tokens = GatekeeperTokens::new(&config.gatekeeper_url, identity);
        if let Some(e2ee) = &e2ee {
            tokens = tokens.with_chat_key(e2ee.public());
        }
        let (rooms, room_events, other_rooms) = Rooms::connect(
            tokens,
            config.room.clone(),
            config.rooms.clone(),
            config.event_capacity,
        )
        .await?;
        let room = rooms.home().clone();
        let sweep_every = config.rooms.sweep_every;
        let (tx, rx) = mpsc::channel(config.event_capacity.max(1));
        let filter = match config.rate_limit {
            Some(limit) => Filter::with_rate_limit(limit),
            None => Filter::unlimited(),
        };
        let inner = Arc::new(Inner {
            me,
            room,
            rooms,
            social,
            state: Mutex::new(State {
                view: None,
                social_current: false,
                open: HashSet::new(),
                reported: HashMap::new(),
                reported_keys: HashMap::new(),
                required: HashSet::new(),
                drops: HashMap::new(),
            }),
            rules,
            deliveries: Mutex::new(Deliveries::new(config.delivery)),
            last_sent_at: Mutex::new(SystemTime::UNIX_EPOCH),
            e2ee: e2ee.map(Mutex::new),
            sealed: Mutex::new(HashSet::new()),
            require_all: config.require_encryption,
        });
        let worker = Worker {
            inner: Arc::downgrade(&inner),
            tx,
            filter,
            held: VecDeque::new(),
            held_max: config.held_packets.max(1),
            fail_closed_reported: None,
        };
        let task = tokio::spawn(worker.run(room_events, other_rooms, sweep_every, social_events));
        Ok((PrivateChat { inner, task }, ChatEvents(rx)))
    }

    /// My address (lower case).
    pub fn address(&self) -> &str {
        &self.inner.me
    }

    /// The room connection's state.
    pub fn room_state(&self) -> ConnectionState {
        self.inner.room.state()
    }

    /// The rooms (their count, my home, the ones I am in): see [`crate::rooms`].
    pub fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    /// The social connection's state.
    pub fn social_state(&self) -> SessionState {
        self.inner.social.status()
    }

    /// The last social view read (`None` before the first read).
    pub fn view(&self) -> Option<FullView> {
        lock(&self.inner.state).view.clone()
    }

    /// Packets dropped so far, per [`DropReason::name`].
    pub fn drops(&self) -> HashMap<&'static str, u64> {
        lock(&self.inner.state).drops.clone()
    }

    /// Opens a conversation with `peer`: its state is pushed from now on. Returns the state now;
    /// the peer's key now is [`PrivateChat::encryption`], its changes come as
    /// [`ChatEvent::PeerKey`].
    pub async fn open_conversation(&self, peer: &str) -> Result<RecipientState, NotSent> {
        let peer = normalize_address(peer).map_err(|_| NotSent::BadRecipient(peer.to_owned()))?;
        self.inner.rooms.reach(&peer, true).await;
        let state = recipient_state(&self.inner, &peer).await;
        let mut s = lock(&self.inner.state);
        if s.open.len() < MAX_OPEN_CONVERSATIONS || s.open.contains(&peer) {
            s.open.insert(peer.clone());
            s.reported.insert(peer, state);
        }
        Ok(state)
    }

    /// Stops pushing `peer`'s state (unless they are a friend).
    pub fn close_conversation(&self, peer: &str) {
        if let Ok(peer) = normalize_address(peer) {
            self.inner.rooms.closed(&peer);
            let mut s = lock(&self.inner.state);
            s.open.remove(&peer);
            if !s.view.as_ref().is_some_and(|v| v.friends.contains(&peer)) {
                s.reported.remove(&peer);
            }
        }
    }

    /// Whether `peer` can be written to now.
    pub async fn recipient_state(&self, peer: &str) -> Result<RecipientState, NotSent> {
        let peer = normalize_address(peer).map_err(|_| NotSent::BadRecipient(peer.to_owned()))?;
        Ok(recipient_state(&self.inner, &peer).await)
    }

    /// Sends `text` to `to` (see the module docs for the checks). `Ok` once it is on the data
    /// channel; then one [`ChatEvent::Delivered`] or [`ChatEvent::NotDelivered`] follows for it.
    pub async fn send(&self, to: &str, text: &str) -> Result<Sent, NotSent> {
        let checked = self
            .inner
            .rules
            .check(to, text)
            .map_err(|e| not_sent(e, to))?;
        self.inner.rooms.reach_to_send(&checked).await;
        let state = recipient_state(&self.inner, &checked).await;
        if state != RecipientState::Connected {
            return Err(NotSent::Recipient { to: checked, state });
        }
        let at = {
            let mut last = self
                .inner
                .last_sent_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // OLE timestamps have whole milliseconds: keep mine apart, so that ids are unique.
            *last = SystemTime::now().max(*last + std::time::Duration::from_millis(1));
            *last
        };
        let (out, asked) = self
            .inner
            .rules
            .message_asking_receipt(&checked, text, at)
            .map_err(|e| not_sent(e, to))?;
        let timestamp = chat_core::ole::to_ole(at);
        let id = message_id(&self.inner.me, timestamp);
        let (wire, protection) = protect(&self.inner, &out.to, &out.payload).await?;
        // Waiting before it leaves, so that a fast receipt finds it (kept in plaintext: a
        // resend is sealed again for the peer's key of that moment).
        if asked {
            deliveries(&self.inner).track(&id, &out.to, out.payload.clone(), Instant::now());
            if protection.is_encrypted() {
                lock_set(&self.inner.sealed).insert(id.clone());
            }
        }
        if let Err(e) = send_to(&self.inner, &out.to, &wire).await {
            deliveries(&self.inner).forget(&id);
            lock_set(&self.inner.sealed).remove(&id);
            return Err(e.into());
        }
        if !asked {
            deliveries(&self.inner).unconfirmable(&id, &out.to);
        }
        Ok(Sent {
            id,
            to: out.to,
            at,
            timestamp,
            protection,
        })
    }

    /// My messages waiting for a receipt now.
    pub fn pending_deliveries(&self) -> usize {
        deliveries(&self.inner).pending()
    }

    /// Reacts to the message `message_id` of the conversation with `to` with the emoji at
    /// `emoji_index` of the reference client's atlas (see [`chat_core::reaction::emoji_index`]),
    /// or takes that reaction back (`removal`). The same checks as [`PrivateChat::send`], and
    /// the same encryption. Returns how it left.
    pub async fn react(
        &self,
        to: &str,
        message_id: &str,
        emoji_index: u16,
        removal: bool,
    ) -> Result<Protection, NotSent> {
        let reaction = Reaction {
            emoji_index,
            removal,
            message_id: message_id.to_owned(),
            address: self.inner.me.clone(),
        };
        let out = self
            .inner
            .rules
            .reaction(to, &reaction)
            .map_err(|e| not_sent(e, to))?;
        self.inner.rooms.reach_to_send(&out.to).await;
        let state = recipient_state(&self.inner, &out.to).await;
        if state != RecipientState::Connected {
            return Err(NotSent::Recipient { to: out.to, state });
        }
        let (wire, protection) = protect(&self.inner, &out.to, &out.payload).await?;
        send_to(&self.inner, &out.to, &wire).await?;
        Ok(protection)
    }

    /// My session's public key (`None`: end-to-end encryption is off).
    pub fn my_key(&self) -> Option<ChatKey> {
        self.inner.e2ee.as_ref().map(|e| lock_e2ee(e).public())
    }

    /// What the conversation with `peer` looks like now: their key, mine, whether plaintext is
    /// refused.
    pub async fn encryption(&self, peer: &str) -> Result<Encryption, NotSent> {
        let peer = normalize_address(peer).map_err(|_| NotSent::BadRecipient(peer.to_owned()))?;
        Ok(Encryption {
            peer_key: peer_key(&self.inner, &peer).await,
            my_key: self.my_key(),
            required: self.inner.require_all || lock(&self.inner.state).required.contains(&peer),
        })
    }

    /// Requires encryption for the conversation with `peer` (`true`: a send that cannot be
    /// encrypted is refused with [`NotSent::EncryptionRequired`]) or lifts it. At most
    /// [`MAX_REQUIRED_CONVERSATIONS`] are marked; past it the mark is refused (returns `false`).
    /// With [`PrivateChatConfig::require_encryption`] every conversation is marked anyway.
    pub fn require_encryption(&self, peer: &str, required: bool) -> Result<bool, NotSent> {
        let peer = normalize_address(peer).map_err(|_| NotSent::BadRecipient(peer.to_owned()))?;
        let mut s = lock(&self.inner.state);
        if !required {
            s.required.remove(&peer);
            return Ok(true);
        }
        if s.required.len() >= MAX_REQUIRED_CONVERSATIONS && !s.required.contains(&peer) {
            return Ok(false);
        }
        s.required.insert(peer);
        Ok(true)
    }

    /// Encryption contexts held (mine towards peers, peers' towards me): see
    /// [`chat_core::e2ee::MAX_PAIRS`].
    pub fn e2ee_contexts(&self) -> (usize, usize) {
        self.inner
            .e2ee
            .as_ref()
            .map_or((0, 0), |e| lock_e2ee(e).contexts())
    }

    /// The social service, for the social actions (request/accept/reject/cancel/delete
    /// friendship, block, unblock, set my privacy, lists).
    pub fn social(&self) -> &SocialSession {
        &self.inner.social
    }

    /// Sets my private-messages setting (UpsertSocialSettings).
    pub async fn set_privacy(&self, privacy: Privacy) -> Result<Privacy, SocialError> {
        self.inner.social.set_privacy(privacy).await
    }

    /// Leaves the room and closes the social connection.
    pub async fn close(self) {
        self.task.abort();
        self.inner.social.close().await;
        self.inner.rooms.leave_all().await;
    }
}

fn not_sent(e: chat_core::SendError, to: &str) -> NotSent {
    use chat_core::SendError as E;
    match e {
        E::InvalidRecipient => NotSent::BadRecipient(to.chars().take(64).collect()),
        E::Empty => NotSent::Empty,
        E::TooLong { len, limit } => NotSent::TooLong { len, limit },
        other => NotSent::Rules(other),
    }
}

/// `peer`'s state as seen from here (fails closed while the social view is not current).
async fn recipient_state(inner: &Inner, peer: &str) -> RecipientState {
    let route = inner.rooms.find(peer).await;
    let present = route.peer;
    let (my_privacy, is_friend, i_blocked, blocked_me) = {
        let s = lock(&inner.state);
        let v = s.view.as_ref();
        (
            s.my_privacy(),
            v.is_some_and(|v| v.friends.contains(peer)),
            v.is_some_and(|v| v.blocked.contains(peer)),
            v.is_some_and(|v| v.blocked_by.contains(peer)),
        )
    };
    let room_up = route.participant.state() == ConnectionState::Connected;
    chat_core::recipient_state(
        my_privacy,
        chat_core::recipient::RecipientFacts {
            in_room: room_up && present.is_some(),
            their_privacy: present.and_then(|p| Privacy::from_participant_metadata(&p.metadata)),
            is_friend,
            i_blocked,
            blocked_me,
        },
    )
}

/// Confirms the message `id` to its sender `to`.
fn send_receipt(inner: &Arc<Inner>, to: String, id: &str) {
    match chat_core::packet::encode_receipt(id) {
        Ok(payload) => send_detached(inner.clone(), to, payload),
        // Our own filter formed the id; it always fits.
        Err(e) => tracing::warn!(%id, error = %e, "cannot encode a receipt"),
    }
}

/// The event for a message's outcome; its id stops being one of the sealed ones.
fn outcome_event(inner: &Inner, outcome: Outcome) -> ChatEvent {
    let id = match &outcome {
        Outcome::Delivered { id, .. } | Outcome::NotDelivered { id, .. } => id,
    };
    lock_set(&inner.sealed).remove(id);
    match outcome {
        Outcome::Delivered { id, to } => ChatEvent::Delivered { id, to },
        Outcome::NotDelivered { id, to, reason } => ChatEvent::NotDelivered { id, to, reason },
    }
}

/// The task that merges the room's and the social service's events into [`ChatEvent`]s.
struct Worker {
    inner: std::sync::Weak<Inner>,
    tx: mpsc::Sender<ChatEvent>,
    filter: Filter,
    /// Packets waiting for the first social view.
    held: VecDeque<IncomingPacket>,
    held_max: usize,
    /// The last fail-closed state reported (None: nothing reported yet).
    fail_closed_reported: Option<bool>,
}

impl Worker {
    async fn run(
        mut self,
        mut room: Events,
        mut other_rooms: mpsc::Receiver<RoomEvent>,
        sweep_every: std::time::Duration,
        mut social: mpsc::Receiver<SessionEvent>,
    ) {
        let mut social_open = true;
        let mut tick = tokio::time::interval(DELIVERY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep =
            tokio::time::interval(sweep_every.max(std::time::Duration::from_millis(10)));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.on_tick().await,
                event = room.recv() => match event {
                    Some(e) => self.on_room(e).await,
                    None => return,
                },
                Some(e) = other_rooms.recv() => self.on_other_room(e).await,
                _ = sweep.tick() => self.sweep().await,
                event = social.recv(), if social_open => match event {
                    Some(e) => self.on_social(e).await,
                    None => social_open = false,
                },
            }
            if self.tx.is_closed() {
                return;
            }
        }
    }

    /// Counts a dropped packet and tells the application.
    async fn report_drop(&self, inner: &Inner, from: String, reason: DropReason) {
        let count = lock(&inner.state).count_drop(&reason);
        self.emit(ChatEvent::Dropped {
            from,
            reason,
            count,
        })
        .await;
    }

    /// Sends `event` to the application; `false` if it is gone.
    async fn emit(&self, event: ChatEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }

    /// Resends what is due and reports what was given up.
    async fn on_tick(&mut self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let now = Instant::now();
        // Whether each peer's room is connected is checked below.
        let (outcomes, resends) = deliveries(&inner).poll(now, true);
        for resend in resends {
            // Only to a peer in a connected room of mine: LiveKit drops a packet for an absent
            // identity, and after a reconnection the peer may not be back yet.
            let route = inner.rooms.find(&resend.to).await;
            if route.peer.is_none() || route.participant.state() != ConnectionState::Connected {
                continue;
            }
            let payload = if lock_set(&inner.sealed).contains(&resend.id) {
                // Left encrypted: again encrypted, for the key the peer has now, or not at all.
                let key = peer_key(&inner, &resend.to).await;
                match key.map(|k| seal(&inner, &resend.to, &k, &resend.payload)) {
                    Some(Ok(sealed)) => sealed,
                    _ => continue,
                }
            } else {
                resend.payload
            };
            tracing::debug!(id = %resend.id, to = %resend.to, "no receipt yet: sending again");
            deliveries(&inner).resent(&resend.id, now);
            send_detached(inner.clone(), resend.to, payload);
        }
        for outcome in outcomes {
            self.emit(outcome_event(&inner, outcome)).await;
        }
    }

    async fn on_room(&mut self, event: Event) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        match event {
            Event::Data(packet) => {
                let loaded = lock(&inner.state).view.is_some();
                if loaded {
                    self.judge(&inner, packet).await;
                } else {
                    if self.held.len() >= self.held_max
                        && let Some(old) = self.held.pop_front()
                    {
                        self.report_drop(&inner, old.sender, DropReason::HeldTooMany)
                            .await;
                    }
                    self.held.push_back(packet);
                }
            }
            Event::ParticipantJoined(p) => {
                self.update_states(&inner, Some(&p.identity)).await;
            }
            Event::ParticipantLeft(p) => {
                // That session is over: its contexts are of no more use.
                if let (Some(e2ee), Some(key)) = (&inner.e2ee, published_key(&p)) {
                    lock_e2ee(e2ee).forget_peer(&key);
                }
                self.update_states(&inner, Some(&p.identity)).await;
            }
            Event::MetadataChanged { participant, .. } | Event::AttributesChanged(participant) => {
                self.update_states(&inner, Some(&participant.identity))
                    .await;
            }
            Event::ConnectionStateChanged(state) => {
                if state == ConnectionState::Connected {
                    // What was in flight may be lost: resend what waits for a receipt.
                    deliveries(&inner).reconnected();
                }
                self.emit(ChatEvent::RoomState(state)).await;
                self.update_states(&inner, None).await;
            }
            Event::Lagged { dropped } => {
                self.emit(ChatEvent::Lagged { dropped }).await;
                // Roster events may be among those lost: recompute everything.
                self.update_states(&inner, None).await;
            }
        }
    }

    /// An event of a room other than home: the same as home's, except that its connection
    /// state is not the chat's room state (only the peers' states may change).
    async fn on_other_room(&mut self, e: RoomEvent) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        match e.event {
            Event::ConnectionStateChanged(state) => {
                if state == ConnectionState::Connected {
                    // What was in flight through this room may be lost.
                    deliveries(&inner).reconnected();
                }
                self.update_states(&inner, None).await
            }
            event => {
                if matches!(event, Event::Data(_)) {
                    inner.rooms.used(e.room);
                }
                self.on_room(event).await;
            }
        }
    }

    /// Leaves the idle rooms; the peers seen only there change state.
    async fn sweep(&mut self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        if inner.rooms.sweep().await {
            self.update_states(&inner, None).await;
        }
    }

    async fn judge(&mut self, inner: &Arc<Inner>, mut packet: IncomingPacket) {
        let view = lock(&inner.state).filter_view(&inner.me);
        let Some(view) = view else {
            return;
        };
        let from = packet.sender.to_ascii_lowercase();
        let sender_key = usable_peer_key(inner, &from).await;
        let protection = if chat_core::packet::is_encrypted(&packet.payload) {
            // The social rules first: a packet that would be dropped anyway costs no decryption.
            let opened = match chat_core::filter::admit(&view, crate::incoming(&packet)) {
                Err(reason) => Err(DropReason::Filter(reason)),
                Ok(_) => match &inner.e2ee {
                    // I published no key: nobody can have sealed anything for me.
                    None => Err(DropReason::E2ee(chat_core::OpenError::Undecryptable)),
                    Some(e2ee) => lock_e2ee(e2ee)
                        .open(&from, &inner.me, sender_key.as_ref(), &packet.payload)
                        .map_err(DropReason::E2ee),
                },
            };
            match opened {
                Ok(plain) => {
                    packet.payload = plain;
                    Protection::Encrypted
                }
                Err(reason) => {
                    if let DropReason::E2ee(e) = &reason {
                        tracing::debug!(%from, error = %e, "an encrypted packet was refused");
                    }
                    self.report_drop(inner, packet.sender, reason).await;
                    return;
                }
            }
        } else if sender_key.is_some() {
            Protection::PlaintextFromKeyedPeer
        } else {
            Protection::Plaintext
        };
        let verdict = self
            .filter
            .check_packet(&view, crate::incoming(&packet), Instant::now());
        match verdict {
            Ok(Accepted::Message(message)) => {
                let id = message_id(&from, message.timestamp);
                self.emit(ChatEvent::Message {
                    from,
                    message,
                    id,
                    protection,
                })
                .await;
            }
            Ok(Accepted::MessageWithReceipt { message, id }) => {
                deliveries(inner).peer_speaks_receipts(&from);
                let emitted = self
                    .emit(ChatEvent::Message {
                        from: from.clone(),
                        message,
                        id: id.clone(),
                        protection,
                    })
                    .await;
                // Confirmed only once it is in the application's hands.
                if emitted {
                    send_receipt(inner, from, &id);
                }
            }
            Ok(Accepted::Reaction(reaction)) => {
                self.emit(ChatEvent::Reaction {
                    from,
                    reaction,
                    protection,
                })
                .await;
            }
            Ok(Accepted::Receipt { message_id }) => {
                let outcome = deliveries(inner).confirm(&from, &message_id);
                if let Some(outcome) = outcome {
                    self.emit(outcome_event(inner, outcome)).await;
                }
            }
            Err(reason) => {
                if let chat_core::Rejected::DuplicateMessage { id } = &reason {
                    // Shown before: the sender missed our receipt, so confirm it again.
                    send_receipt(inner, from.clone(), id);
                }
                self.report_drop(inner, packet.sender, DropReason::Filter(reason))
                    .await;
            }
        }
    }

    async fn on_social(&mut self, event: SessionEvent) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        match event {
            SessionEvent::State(state) => {
                let current = state.is_connected() && {
                    let s = lock(&inner.state);
                    s.view.is_some()
                };
                let shown = match state {
                    SessionState::Connecting => SocialState::Connecting,
                    SessionState::Connected => SocialState::Connected,
                    SessionState::Reconnecting { attempt, error } => {
                        SocialState::Reconnecting { attempt, error }
                    }
                };
                self.emit(ChatEvent::SocialState(shown)).await;
                if !current {
                    lock(&inner.state).social_current = false;
                    self.report_fail_closed(true).await;
                    self.update_states(&inner, None).await;
                }
            }
            SessionEvent::Lagged { dropped } => {
                self.emit(ChatEvent::Lagged { dropped }).await;
            }
            SessionEvent::ViewLoaded(_) | SessionEvent::ViewChanged => {
                // The session's view is the current one (None: lost again meanwhile; the
                // State event that says so follows).
                let Some(view) = inner.social.view() else {
                    return;
                };
                {
                    let mut s = lock(&inner.state);
                    s.view = Some(view);
                    s.social_current = true;
                }
                self.emit(ChatEvent::ViewChanged).await;
                self.report_fail_closed(false).await;
                for packet in std::mem::take(&mut self.held) {
                    self.judge(&inner, packet).await;
                }
                self.update_states(&inner, None).await;
            }
            SessionEvent::Update(update) => {
                let event = match update {
                    SocialUpdate::RequestReceived { from, message, .. } => {
                        ChatEvent::FriendshipRequested { from, message }
                    }
                    SocialUpdate::Accepted { by } => ChatEvent::FriendshipAccepted { by },
                    SocialUpdate::Rejected { by } => ChatEvent::FriendshipRejected { by },
                    SocialUpdate::Cancelled { by } => ChatEvent::FriendshipCancelled { by },
                    SocialUpdate::Deleted { by } => ChatEvent::FriendshipDeleted { by },
                    SocialUpdate::BlockedBy { address } => ChatEvent::BlockedBy {
                        address,
                        blocked: true,
                    },
                    SocialUpdate::UnblockedBy { address } => ChatEvent::BlockedBy {
                        address,
                        blocked: false,
                    },
                    // Reported by the block stream as BlockedBy.
                    SocialUpdate::FriendshipBlocked { .. } => return,
                    SocialUpdate::FriendConnectivity { address, status } => {
                        if status.is_online() {
                            ChatEvent::FriendOnline { address }
                        } else {
                            ChatEvent::FriendOffline { address }
                        }
                    }
                };
                self.emit(event).await;
            }
        }
    }

    async fn report_fail_closed(&mut self, closed: bool) {
        if self.fail_closed_reported != Some(closed) {
            self.fail_closed_reported = Some(closed);
            self.emit(ChatEvent::FilterFailClosed(closed)).await;
        }
    }

    /// Recomputes the state of `only` (or of every watched address) and reports changes. An
    /// address that stops being watched (a friendship ended) gets its new state reported once
    /// more, then is forgotten.
    async fn update_states(&mut self, inner: &Inner, only: Option<&str>) {
        let (candidates, watched): (Vec<String>, Option<HashSet<String>>) = {
            let s = lock(&inner.state);
            match only {
                Some(identity) => {
                    let id = identity.to_ascii_lowercase();
                    let watched = s.open.contains(&id)
                        || s.view.as_ref().is_some_and(|v| v.friends.contains(&id));
                    (if watched { vec![id] } else { Vec::new() }, None)
                }
                None => {
                    let watched: HashSet<String> = s.watched().into_iter().collect();
                    let mut all: Vec<String> = watched.iter().cloned().collect();
                    all.extend(s.reported.keys().filter(|a| !watched.contains(*a)).cloned());
                    (all, Some(watched))
                }
            }
        };
        for address in candidates {
            let state = recipient_state(inner, &address).await;
            let key = usable_peer_key(inner, &address).await;
            let (changed, key_changed) = {
                let mut s = lock(&inner.state);
                (
                    s.reported.insert(address.clone(), state) != Some(state),
                    s.reported_keys.insert(address.clone(), key) != Some(key),
                )
            };
            if key_changed {
                self.emit(ChatEvent::PeerKey {
                    address: address.clone(),
                    key,
                })
                .await;
            }
            if changed {
                self.emit(ChatEvent::RecipientState { address, state })
                    .await;
            }
        }
        if let Some(watched) = watched {
            let mut s = lock(&inner.state);
            s.reported.retain(|a, _| watched.contains(a));
            s.reported_keys.retain(|a, _| watched.contains(a));
        }
    }
}
