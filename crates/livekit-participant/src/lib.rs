//! A pure-Rust, data-only LiveKit participant.
//!
//! It joins a room on `livekit-server` over the single-peer-connection signalling endpoint
//! (`/rtc/v1`, protobuf over WebSocket), opens the `_reliable` and `_lossy` data channels, sends
//! user packets to chosen identities and receives them, and keeps a roster of the other
//! participants. It publishes no media.
//!
//! **WebRTC stack: `str0m`** (sans-IO, `aws-lc-rs` crypto). The issue names webrtc-rs first and
//! str0m as the fallback; we chose str0m on the measured evidence in FACTS §5: against Pion (the
//! stack inside LiveKit) it opened both channels in ~35 ms with no tuning versus ~1.2 s for
//! webrtc-rs by default, it reports a remote channel close (which LiveKit uses when a message is
//! too large), and, being sans-IO, a participant is one task, one UDP socket and a few buffers,
//! which is what keeps many participants per process cheap. The price is the event loop we own
//! (`session.rs`, about 100 lines of it).
//!
//! Layout:
//! - [`token`]: where credentials come from ([`TokenSource`]); asked again on every reconnect.
//! - [`signal`]: the `/rtc/v1` URL, JoinRequest, and protobuf frames on the WebSocket.
//! - `session`: one connection (WebSocket + peer connection + pings) and its event loop.
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

pub mod error;
pub mod packet;
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

pub use error::{ConnectError, SendError};
pub use packet::{IncomingPacket, Reliability};
pub use roster::{PresenceState, RemoteParticipant, RosterEvent};
pub use token::{Credentials, FnTokenSource, StaticToken, TokenSource};

use packet::Deduplicator;
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
    ConnectionStateChanged(ConnectionState),
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
    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            bad_signal_frames: self.bad_signal_frames.load(Ordering::Relaxed),
            bad_packets: self.bad_packets.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// State shared by the handle, the supervisor and the session.
pub(crate) struct Shared {
    roster: Mutex<Roster>,
    events: mpsc::UnboundedSender<Event>,
    dedup: std::sync::Mutex<Deduplicator>,
    stats: Stats,
    state: watch::Sender<ConnectionState>,
    identity: std::sync::Mutex<String>,
    sequence: AtomicU32,
}

impl Shared {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reconnect: true,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// The stream of [`Event`]s. Consume it: events are queued until read.
pub struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    /// The next event; `None` once the participant is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// The next event within `limit`.
    pub async fn recv_timeout(&mut self, limit: Duration) -> Option<Event> {
        tokio::time::timeout(limit, self.0.recv())
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
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
        let shared = Arc::new(Shared {
            roster: Mutex::new(Roster::default()),
            events: events_tx,
            dedup: std::sync::Mutex::new(Deduplicator::new(16_384)),
            stats: Stats::default(),
            state: state_tx,
            identity: std::sync::Mutex::new(String::new()),
            sequence: AtomicU32::new(1),
        });
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let (first_tx, first_rx) = oneshot::channel();
        let timeout = options.connect_timeout;
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
        };
        match tokio::time::timeout(timeout, first_rx).await {
            Ok(Ok(Ok(()))) => Ok((participant, Events(events_rx))),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ConnectError::Signal("the connection task ended".into())),
            Err(_) => Err(ConnectError::Timeout("connect")),
        }
    }

    /// Sends a user packet to `destinations` (empty: everyone else in the room) with an
    /// optional topic. Resolves once the packet is handed to the transport. Oversized payloads
    /// are refused before anything is sent.
    pub async fn send(
        &self,
        payload: &[u8],
        destinations: &[String],
        topic: Option<&str>,
        reliability: Reliability,
    ) -> Result<(), SendError> {
        packet::check_limits(payload, destinations, topic, reliability)?;
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
        self.shared.stats.snapshot()
    }

    /// Leaves the room cleanly.
    pub async fn leave(self) {
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
                let changes = shared
                    .roster
                    .lock()
                    .await
                    .rebuild(&me, &join.other_participants);
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
