//! A pure-Rust, data-only LiveKit participant.
//!
//! It joins a room on `livekit-server` over the single-peer-connection signalling endpoint
//! (`/rtc/v1`, protobuf over WebSocket), opens the `_reliable` and `_lossy` data channels, sends
//! user packets to chosen identities and receives them, and keeps a roster of the other
//! participants. It publishes no media.
//!
//! **WebRTC stack: `str0m`** (sans-IO, `aws-lc-rs` crypto). The issue names webrtc-rs first and
//! str0m as the fallback; we chose str0m on the measured evidence in docs/wire.md §5: against
//! Pion (the stack inside LiveKit) it opened both channels in ~35 ms with no tuning versus ~1.2 s for
//! webrtc-rs by default, it reports a remote channel close (which LiveKit uses when a message is
//! too large), and, being sans-IO, a participant is one task, one UDP socket and a few buffers,
//! which is what keeps many participants per process cheap. The price is the event loop we own
//! (`session.rs`, about 100 lines of it).
//!
//! Layout:
//! - [`token`]: where credentials come from ([`TokenSource`]); asked again on every reconnect.
//! - [`signal`]: the `/rtc/v1` URL, JoinRequest, and protobuf frames on the WebSocket.
//! - `session`: one connection (WebSocket + peer connection + pings) and its event loop.
//! - [`channel`]: the `_reliable` and `_lossy` channels ([`Reliability`]) and their payload
//!   limits; [`error`]: what a send or a connection can fail with.
//! - [`packet`]: DataPacket encoding/decoding, limits, de-duplication (pure).
//! - [`roster`]: presence from JoinResponse and ParticipantUpdates (pure).
//! - this module: the [`Participant`] handle and the supervisor that reconnects with back-off.
//!
//! Resilience: a dead connection (WebSocket closed, 10 s without any signalling frame while
//! pinging every 5 s, ICE consent lost, a data channel closed) ends the session; the supervisor
//! then asks the token source for fresh credentials and rejoins with exponential back-off
//! (200 ms doubling to 5 s, with jitter). After a rejoin the roster is rebuilt from the new
//! JoinResponse and the differences are reported as events. Incoming packets are de-duplicated
//! by (sender, nonce) across reconnects.
//!
//! ## Announced before sending
//!
//! `livekit-server` tells the rest of the room about a participant that publishes no tracks in
//! batches (every 3 s), and a packet that reaches another participant before that announcement
//! arrives there with no sender in the official SDKs (`participant=None`). So [`Participant::send`]
//! holds packets until the server has announced us: the batch that carries our own
//! `ParticipantInfo` in state ACTIVE is sent to everyone in the room at once, so once it reaches
//! us it has been sent to the others. It may still be on its way to them, or waiting in their
//! SDK, while our first packet overtakes it on the data channel (seen in about one run in ten of
//! the interop tests under load), so packets wait [`ANNOUNCE_GRACE`] (250 ms) more after it.
//! The hold is bounded by [`Options::announce_wait`] (default 4 s, a batch interval and some),
//! after which packets go anyway; it starts again after every rejoin (a new session is
//! announced anew). [`Participant::is_announced`] tells where we are.
//!
//! ## Bounds
//!
//! Everything the other participants (or the server) can make this participant hold is bounded:
//!
//! - **De-duplication**: the last [`packet::DEDUP_CAPACITY`] (16,384) packets, each remembered as
//!   a 16-byte digest of (sender, nonce) whatever the nonce's length: at most 1.5 MiB.
//! - **Roster**: at most [`Options::roster`]`.max_participants` (50,000) entries, identities up
//!   to 256 bytes and sids up to 64 (longer: not listed), metadata up to
//!   `max_metadata_bytes` (1 KiB; longer: kept as `""`); refusals are counted in
//!   [`StatsSnapshot`]. See [`roster`].
//! - **Events** (incoming packets and roster changes waiting for the application): at most
//!   [`Options::event_queue_events`] (4,096) events and [`Options::event_queue_bytes`] (8 MiB,
//!   payload, topic, sender and metadata bytes plus a fixed ~100 bytes per event). When the
//!   application reads too slowly, **new events are dropped**, counted in
//!   [`StatsSnapshot::events_dropped`], and the application receives an [`Event::Lagged`] with the
//!   number dropped at the place of the gap (after the events queued before it). The network task
//!   never waits for the application (that would stall pings and get the participant removed).
//!   After a `Lagged`, re-read [`Participant::participants`] and [`Participant::state`] if roster
//!   or state events matter to you. See `queue.rs`.
//! - **Outgoing**: 256 queued commands and at most 4,096 messages waiting for room in the SCTP
//!   buffer; [`Participant::send`] waits (it does not queue without bound).
//! - **Frames**: signalling frames up to 4 MiB; data-channel messages up to str0m's 256 KiB
//!   (LiveKit itself reads at most 65,535 bytes from a sender), decoded one at a time.

pub mod channel;
pub mod error;
pub mod packet;
mod queue;
pub mod roster;
mod session;
pub mod signal;
pub mod token;

/// Entry points for the fuzz targets in `fuzz/` (not part of the API).
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::session::parse_trickle;
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot, watch};

pub use channel::Reliability;
pub use error::{ConnectError, SendError};
pub use packet::IncomingPacket;
pub use roster::{PresenceState, RemoteParticipant, RosterEvent, RosterLimits};
pub use token::{Credentials, FnTokenSource, StaticToken, TokenSource, TokenSourceError};

use packet::Deduplicator;
use queue::EventQueue;
use roster::Roster;
use session::{Command, Ended, Session};

/// The state of the connection to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Connecting,
    /// Joined, with both data channels open.
    Connected,
    /// The connection was lost; a new one is being made.
    Reconnecting,
    /// Closed for good (left, kicked, or the handle was dropped).
    Disconnected,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Data(IncomingPacket),
    ParticipantJoined(RemoteParticipant),
    ParticipantLeft(RemoteParticipant),
    MetadataChanged {
        participant: RemoteParticipant,
        previous: String,
    },
    /// A participant's attributes changed, its metadata did not (see
    /// [`RosterEvent::AttributesChanged`]).
    AttributesChanged(RemoteParticipant),
    ConnectionStateChanged(ConnectionState),
    /// The application read too slowly: `dropped` events that arrived here were dropped (the
    /// queue was full, see the crate docs' "Bounds"). Also counted in
    /// [`StatsSnapshot::events_dropped`].
    Lagged {
        dropped: u64,
    },
}

impl From<RosterEvent> for Event {
    fn from(e: RosterEvent) -> Self {
        match e {
            RosterEvent::Joined(p) => Event::ParticipantJoined(p),
            RosterEvent::Left(p) => Event::ParticipantLeft(p),
            RosterEvent::MetadataChanged {
                participant,
                previous,
            } => Event::MetadataChanged {
                participant,
                previous,
            },
            RosterEvent::AttributesChanged(p) => Event::AttributesChanged(p),
        }
    }
}

/// Counters of things dropped or retried.
#[derive(Debug, Default)]
pub struct Stats {
    bad_signal_frames: AtomicU64,
    bad_packets: AtomicU64,
    duplicates: AtomicU64,
    reconnects: AtomicU64,
    participants_not_listed: AtomicU64,
    metadata_cut: AtomicU64,
    signal_bytes: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Signalling frames that did not decode (dropped).
    pub bad_signal_frames: u64,
    /// Data-channel messages that did not decode (dropped).
    pub bad_packets: u64,
    /// Packets seen before (dropped).
    pub duplicates: u64,
    /// Successful rejoins after a lost connection.
    pub reconnects: u64,
    /// Events dropped because the application did not read them fast enough (each run of
    /// drops is also reported as an [`Event::Lagged`]).
    pub events_dropped: u64,
    /// Participants not put in the roster (it was full, or their identity or sid was too long).
    pub participants_not_listed: u64,
    /// Participant metadata over the limit, kept as `""`.
    pub metadata_cut: u64,
    /// Signalling received from the server, in bytes of WebSocket message payload (all
    /// connections so far, pings' answers included): what the room costs this participant in
    /// signalling, measured by the scale benches.
    pub signal_bytes_received: u64,
}

impl Stats {
    fn count_bad_signal(&self) {
        self.bad_signal_frames.fetch_add(1, Ordering::Relaxed);
    }
    fn count_bad_packet(&self) {
        self.bad_packets.fetch_add(1, Ordering::Relaxed);
    }
    fn count_duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    fn snapshot(&self, events_dropped: u64) -> StatsSnapshot {
        StatsSnapshot {
            bad_signal_frames: self.bad_signal_frames.load(Ordering::Relaxed),
            bad_packets: self.bad_packets.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            events_dropped,
            participants_not_listed: self.participants_not_listed.load(Ordering::Relaxed),
            metadata_cut: self.metadata_cut.load(Ordering::Relaxed),
            signal_bytes_received: self.signal_bytes.load(Ordering::Relaxed),
        }
    }
}

/// State shared by the handle, the supervisor and the session.
pub(crate) struct Shared {
    roster: Mutex<Roster>,
    events: Arc<EventQueue>,
    dedup: std::sync::Mutex<Deduplicator>,
    stats: Stats,
    state: watch::Sender<ConnectionState>,
    identity: std::sync::Mutex<String>,
    sequence: AtomicU32,
    announced: watch::Sender<Announcement>,
}

/// Whether the server has announced the current session to the room (see the crate docs).
#[derive(Debug, Clone)]
struct Announcement {
    /// Our participant sid in the current session ("" before the first join).
    sid: String,
    /// When the current session joined.
    since: tokio::time::Instant,
    done: bool,
    /// When the announcement reached us.
    done_at: Option<tokio::time::Instant>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The handle and the connection task are gone: the application reads what is queued,
        // then the end of the stream.
        self.events.close();
    }
}

impl Shared {
    fn emit(&self, event: Event) {
        self.events.push(event);
    }

    /// Moves the roster's refusal counts into the stats.
    fn note_roster(&self, roster: &mut Roster) {
        let counts = roster.take_counts();
        self.stats
            .participants_not_listed
            .fetch_add(counts.not_listed, Ordering::Relaxed);
        self.stats
            .metadata_cut
            .fetch_add(counts.metadata_cut, Ordering::Relaxed);
    }

    fn admit(&self, sender: &str, nonce: &[u8]) -> bool {
        self.dedup
            .lock()
            .map(|mut d| d.admit(sender, nonce))
            .unwrap_or(true)
    }

    fn set_state(&self, state: ConnectionState) {
        let changed = self.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
        if changed {
            self.emit(Event::ConnectionStateChanged(state));
        }
    }

    fn set_connected(&self, connected: bool) {
        self.set_state(if connected {
            ConnectionState::Connected
        } else {
            ConnectionState::Reconnecting
        });
    }

    /// A new session joined as `sid`: not announced yet.
    fn joined_as(&self, sid: &str) {
        self.announced.send_replace(Announcement {
            sid: sid.to_owned(),
            since: tokio::time::Instant::now(),
            done: false,
            done_at: None,
        });
    }

    /// A `ParticipantInfo` about us arrived in a ParticipantUpdate.
    fn note_self(&self, info: &livekit_protocol::ParticipantInfo) {
        if info.state != livekit_protocol::participant_info::State::Active as i32 {
            return;
        }
        self.announced.send_if_modified(|a| {
            let now_done = !a.done && a.sid == info.sid;
            if now_done {
                a.done = true;
                a.done_at = Some(tokio::time::Instant::now());
            }
            now_done
        });
    }

    /// The next reliable sequence number (strictly increasing, never 0).
    fn next_sequence(&self) -> u32 {
        loop {
            let s = self.sequence.fetch_add(1, Ordering::Relaxed);
            if s != 0 {
                return s;
            }
        }
    }
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Reconnect by itself after a lost connection (default true).
    pub reconnect: bool,
    /// First back-off delay (default 200 ms); doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest back-off delay (default 5 s).
    pub max_backoff: Duration,
    /// Limit for the first connection, token included (default 30 s).
    pub connect_timeout: Duration,
    /// Most events waiting for the application (default 4,096); see the crate docs' "Bounds".
    pub event_queue_events: usize,
    /// Most bytes of events waiting for the application (default 8 MiB).
    pub event_queue_bytes: usize,
    /// Bounds of the roster (default 50,000 participants, 1 KiB of metadata each).
    pub roster: RosterLimits,
    /// Longest time [`Participant::send`] holds packets after a (re)join until the server has
    /// announced us to the room (default 4 s; see the crate docs). Zero: never hold.
    pub announce_wait: Duration,
    /// Identities every packet is also addressed to (default none). For tests only: it plays
    /// an SFU that forwards a packet to whoever it likes, e.g. to show that an eavesdropper
    /// receives only ciphertext of end-to-end encrypted messages (docs/e2ee.md). Bounded by
    /// the destination limit of [`Participant::send`].
    pub copy_to: Vec<String>,
}

/// Default [`Options::announce_wait`]: LiveKit's 3 s batch interval and a margin.
pub const ANNOUNCE_WAIT: Duration = Duration::from_secs(4);
/// How long packets still wait once our announcement reached us, for it to reach the others
/// too (see the crate docs); within [`Options::announce_wait`].
pub const ANNOUNCE_GRACE: Duration = Duration::from_millis(250);

/// Default [`Options::event_queue_events`].
pub const EVENT_QUEUE_EVENTS: usize = 4_096;
/// Default [`Options::event_queue_bytes`].
pub const EVENT_QUEUE_BYTES: usize = 8 * 1024 * 1024;

impl Default for Options {
    fn default() -> Self {
        Options {
            reconnect: true,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            event_queue_events: EVENT_QUEUE_EVENTS,
            event_queue_bytes: EVENT_QUEUE_BYTES,
            roster: RosterLimits::default(),
            announce_wait: ANNOUNCE_WAIT,
            copy_to: Vec::new(),
        }
    }
}

/// The stream of [`Event`]s. Consume it: events wait for the application in a bounded queue;
/// when it is full, new ones are dropped and an [`Event::Lagged`] says how many.
pub struct Events(Arc<EventQueue>);

impl Events {
    /// The next event; `None` once the participant is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.pop().await
    }

    /// The next event within `limit`.
    pub async fn recv_timeout(&mut self, limit: Duration) -> Option<Event> {
        tokio::time::timeout(limit, self.0.pop())
            .await
            .ok()
            .flatten()
    }
}

/// A data-only participant in a LiveKit room.
pub struct Participant {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    state: watch::Receiver<ConnectionState>,
    task: tokio::task::JoinHandle<()>,
    announce_wait: Duration,
    copy_to: Vec<String>,
}

impl Drop for Participant {
    fn drop(&mut self) {
        // Dropping the command sender makes the session send a leave and stop; abort is the
        // backstop for a supervisor sleeping in back-off.
        self.task.abort();
    }
}

impl Participant {
    /// Joins the room with credentials from `source` and waits until both data channels are
    /// open. Later connection losses are repaired in the background (see [`Options`]).
    pub async fn connect(
        source: impl TokenSource,
        options: Options,
    ) -> Result<(Participant, Events), ConnectError> {
        let events = Arc::new(EventQueue::new(
            options.event_queue_events,
            options.event_queue_bytes,
        ));
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
        let shared = Arc::new(Shared {
            roster: Mutex::new(Roster::with_limits("", options.roster)),
            events: events.clone(),
            dedup: std::sync::Mutex::new(Deduplicator::new(packet::DEDUP_CAPACITY)),
            stats: Stats::default(),
            state: state_tx,
            identity: std::sync::Mutex::new(String::new()),
            sequence: AtomicU32::new(1),
            announced: watch::channel(Announcement {
                sid: String::new(),
                since: tokio::time::Instant::now(),
                done: false,
                done_at: None,
            })
            .0,
        });
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let (first_tx, first_rx) = oneshot::channel();
        let timeout = options.connect_timeout;
        let announce_wait = options.announce_wait;
        let copy_to = options.copy_to.clone();
        let task = tokio::spawn(supervise(
            shared.clone(),
            Box::new(source),
            commands_rx,
            options,
            first_tx,
        ));
        let participant = Participant {
            commands: commands_tx,
            shared,
            state: state_rx,
            task,
            announce_wait,
            copy_to,
        };
        match tokio::time::timeout(timeout, first_rx).await {
            Ok(Ok(Ok(()))) => Ok((participant, Events(events))),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ConnectError::Signal("the connection task ended".into())),
            Err(_) => Err(ConnectError::Timeout("connect")),
        }
    }

    /// Sends a user packet to `destinations` (empty: everyone else in the room) with an
    /// optional topic. Resolves once the packet is handed to the transport. Oversized payloads
    /// are refused before anything is sent. Right after a (re)join it first waits (at most
    /// [`Options::announce_wait`]) until the server has announced us to the room, so that the
    /// receivers know who sent it (see the crate docs).
    pub async fn send(
        &self,
        payload: &[u8],
        destinations: &[String],
        topic: Option<&str>,
        reliability: Reliability,
    ) -> Result<(), SendError> {
        let widened;
        let destinations = if self.copy_to.is_empty() || destinations.is_empty() {
            destinations
        } else {
            widened = [destinations, &self.copy_to].concat();
            widened.as_slice()
        };
        packet::check_limits(payload, destinations, topic, reliability)?;
        if *self.state.borrow() != ConnectionState::Connected {
            return Err(SendError::NotConnected);
        }
        self.wait_announced().await;
        if *self.state.borrow() != ConnectionState::Connected {
            return Err(SendError::NotConnected);
        }
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Send {
            payload: payload.to_vec(),
            destinations: destinations.to_vec(),
            topic: topic.map(str::to_owned),
            reliability,
            reply,
        };
        self.commands
            .send(cmd)
            .await
            .map_err(|_| SendError::Closed)?;
        rx.await.map_err(|_| SendError::NotConnected)?
    }

    /// Whether the server has announced the current session to the room (see the crate docs).
    pub fn is_announced(&self) -> bool {
        self.shared.announced.borrow().done
    }

    /// Waits until the current session is announced, or [`Options::announce_wait`] after it
    /// joined, whichever comes first.
    pub async fn wait_announced(&self) {
        let mut rx = self.shared.announced.subscribe();
        loop {
            let (done_at, deadline) = {
                let a = rx.borrow_and_update();
                (a.done_at.filter(|_| a.done), a.since + self.announce_wait)
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return;
            }
            if let Some(at) = done_at {
                let until = (at + ANNOUNCE_GRACE).min(deadline);
                if now < until {
                    tokio::time::sleep_until(until).await;
                }
                return;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// My identity in the room (from the server).
    pub fn identity(&self) -> String {
        self.shared
            .identity
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The other participants now.
    pub async fn participants(&self) -> Vec<RemoteParticipant> {
        self.shared
            .roster
            .lock()
            .await
            .participants()
            .cloned()
            .collect()
    }

    /// One participant by identity.
    pub async fn participant(&self, identity: &str) -> Option<RemoteParticipant> {
        self.shared.roster.lock().await.get(identity).cloned()
    }

    pub fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// Waits until the state is `wanted`, at most `limit`.
    pub async fn wait_for_state(&self, wanted: ConnectionState, limit: Duration) -> bool {
        let mut rx = self.state.clone();
        tokio::time::timeout(limit, rx.wait_for(|s| *s == wanted))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot(self.shared.events.dropped())
    }

    /// Sends `bytes` as they are (an encoded `DataPacket`) on one channel, with no limits
    /// checked: for tests that need packets no well-behaved sender makes (e.g. 60,000-byte
    /// nonces). Only with the `test-util` feature.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub async fn send_raw(
        &self,
        bytes: Vec<u8>,
        reliability: Reliability,
    ) -> Result<(), SendError> {
        if *self.state.borrow() != ConnectionState::Connected {
            return Err(SendError::NotConnected);
        }
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Raw {
                bytes,
                reliability,
                reply,
            })
            .await
            .map_err(|_| SendError::Closed)?;
        rx.await.map_err(|_| SendError::NotConnected)?
    }

    /// Leaves the room cleanly (the handle stays, disconnected).
    pub async fn leave(&self) {
        let (reply, rx) = oneshot::channel();
        if self.commands.send(Command::Leave { reply }).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
    }
}

/// Connects, runs sessions, and reconnects with back-off until told to stop.
async fn supervise(
    shared: Arc<Shared>,
    source: Box<dyn TokenSource>,
    mut commands: mpsc::Receiver<Command>,
    options: Options,
    first: oneshot::Sender<Result<(), ConnectError>>,
) {
    let mut first = Some(first);
    let mut backoff = options.min_backoff;
    loop {
        let attempt = async {
            let creds = tokio::time::timeout(options.connect_timeout, source.credentials())
                .await
                .map_err(|_| ConnectError::Timeout("token source"))?
                .map_err(ConnectError::Token)?;
            Session::start(&shared, &creds).await
        };
        let outcome = match attempt.await {
            Ok((session, join)) => {
                let me = session.identity().to_owned();
                if let Ok(mut id) = shared.identity.lock() {
                    *id = me.clone();
                }
                shared.joined_as(join.participant.as_ref().map_or("", |p| p.sid.as_str()));
                let changes = {
                    let mut roster = shared.roster.lock().await;
                    let changes = roster.rebuild(&me, &join.other_participants);
                    shared.note_roster(&mut roster);
                    changes
                };
                for change in changes {
                    shared.emit(Event::from(change));
                }
                let mut watcher = shared.state.subscribe();
                let first_ref = &mut first;
                let run = session.run(&mut commands);
                tokio::pin!(run);
                // Report the first success as soon as the channels are open; count rejoins.
                let mut watching = true;
                let ended = loop {
                    tokio::select! {
                        ended = &mut run => break ended,
                        changed = watcher.changed(), if watching => {
                            if changed.is_err() {
                                watching = false;
                            } else if *watcher.borrow() == ConnectionState::Connected {
                                watching = false;
                                match first_ref.take() {
                                    Some(tx) => {
                                        let _ = tx.send(Ok(()));
                                    }
                                    None => {
                                        shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                    }
                };
                if *shared.state.borrow() == ConnectionState::Connected {
                    backoff = options.min_backoff;
                }
                ended
            }
            Err(e) => Ended::Failed(e),
        };
        match outcome {
            Ended::Left | Ended::HandleDropped => {
                shared.set_state(ConnectionState::Disconnected);
                return;
            }
            Ended::Kicked(reason) => {
                tracing::warn!(%reason, "removed from the room");
                shared.set_state(ConnectionState::Disconnected);
                return;
            }
            Ended::Failed(e) => {
                if let Some(tx) = first.take() {
                    shared.set_state(ConnectionState::Disconnected);
                    let _ = tx.send(Err(e));
                    return;
                }
                if !options.reconnect {
                    tracing::warn!(error = %e, "connection lost");
                    shared.set_state(ConnectionState::Disconnected);
                    return;
                }
                tracing::info!(error = %e, ?backoff, "connection lost; reconnecting");
                shared.set_state(ConnectionState::Reconnecting);
            }
        }
        // Back off, refusing sends meanwhile.
        let jitter =
            Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 4 + 1));
        let wake = tokio::time::Instant::now() + backoff + jitter;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                cmd = commands.recv() => match cmd {
                    None => {
                        shared.set_state(ConnectionState::Disconnected);
                        return;
                    }
                    Some(Command::Send { reply, .. }) => {
                        let _ = reply.send(Err(SendError::NotConnected));
                    }
                    #[cfg(feature = "test-util")]
                    Some(Command::Raw { reply, .. }) => {
                        let _ = reply.send(Err(SendError::NotConnected));
                    }
                    Some(Command::Leave { reply }) => {
                        shared.set_state(ConnectionState::Disconnected);
                        let _ = reply.send(());
                        return;
                    }
                },
            }
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}
