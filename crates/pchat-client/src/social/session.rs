//! [`SocialSession`]: the social service for one wallet, connected, current, and recovering by
//! itself.
//!
//! - It connects, opens the friendship, block and connectivity streams, then loads the whole
//!   [`FullView`] (settings, friends, incoming and sent requests, blocked and blocked-by) and
//!   only then reports [`ConnectionState::Connected`] (after [`SessionEvent::ViewLoaded`]). The
//!   streams are opened first so that no change made during the load is missed (applying an
//!   update twice changes nothing).
//! - The view is kept current from the streams (and from my own actions, which the service does
//!   not report back to me; actions made with the same wallet on another connection are seen
//!   at the next reload). The connectivity stream starts with the friends online now, so
//!   [`FullView::online`] fills in just after `Connected`; a friend made later shows as online
//!   at their next connectivity change (the service announces changes only).
//! - When the connection is lost, [`SocialSession::view`] is `None` (unknown: the caller must
//!   fail closed) and the session reconnects after 1 s, 2 s, 4 s, … at most 30 s (each pause
//!   drawn between half and all of that, so clients do not come back in step), reporting
//!   [`ConnectionState::Reconnecting`] with the attempt and the error; the view is loaded again
//!   on every reconnection.
//! - An action while not connected is [`SocialError::NotConnected`], never queued or dropped
//!   silently.
//!
//! # Events and a slow reader
//!
//! Events go to a bounded channel of [`SessionConfig::event_buffer`] ([`EVENT_BUFFER`], 1,024).
//! The session never waits for the reader (it must keep the view current): when the channel is
//! full, events are dropped and counted, and [`SessionEvent::Lagged`] with the count is
//! delivered as soon as there is room again. A reader that sees `Lagged` should read
//! [`SocialSession::view`] and [`SocialSession::status`], which are always current.
//!
//! # Bounds
//!
//! One connection; the dcl-rpc limits of [`SessionConfig::rpc`]; at most
//! [`super::UPDATE_BUFFER`] stream updates read ahead; lists are read up to
//! [`super::MAX_LIST`] entries each; the event channel above.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_core::SocialView;
use pchat_core::Privacy;
use tokio::sync::{mpsc, watch};

use super::{BlockingStatus, ClientConfig, FriendRequest, SocialClient, SocialError, SocialUpdate};

/// Default size of the event channel.
pub const EVENT_BUFFER: usize = 1024;

/// How a [`SocialSession`] connects and recovers.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The social service's WebSocket URL (`ws://…/`).
    pub url: String,
    /// dcl-rpc limits (call timeout, pending calls, stream buffer).
    pub rpc: ClientConfig,
    /// The first pause before reconnecting. Default 1 s.
    pub backoff_first: Duration,
    /// The longest pause between attempts. Default 30 s.
    pub backoff_max: Duration,
    /// Events waiting for the reader. Default [`EVENT_BUFFER`].
    pub event_buffer: usize,
}

impl SessionConfig {
    /// The defaults for the service at `url`.
    pub fn new(url: &str) -> Self {
        SessionConfig {
            url: url.to_owned(),
            rpc: ClientConfig::default(),
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            event_buffer: EVENT_BUFFER,
        }
    }
}

/// The connection to the social service.
#[derive(Debug, Clone)]
pub enum ConnectionState {
    /// The first connection is being made (and the view loaded).
    Connecting,
    /// Connected; the view is loaded and kept current.
    Connected,
    /// The connection was lost, or could not be made or loaded: attempt `attempt` (from 1)
    /// follows after a pause. The view is unknown meanwhile.
    Reconnecting { attempt: u32, error: SocialError },
}

impl ConnectionState {
    /// Connected, with a current view.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected)
    }
}

/// Everything the player's social state is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullView {
    /// My address, lower case.
    pub me: String,
    /// Who may write to me.
    pub privacy: Privacy,
    /// My friends, lower case.
    pub friends: HashSet<String>,
    /// Requests made to me, by the requester's address.
    pub pending_in: BTreeMap<String, FriendRequest>,
    /// My requests, by the address asked.
    pub pending_out: BTreeMap<String, FriendRequest>,
    /// Users I blocked.
    pub blocked: HashSet<String>,
    /// Users who blocked me.
    pub blocked_by: HashSet<String>,
    /// Friends connected to the social service now (online or away).
    pub online: HashSet<String>,
}

impl FullView {
    /// What the inbox filter needs.
    pub fn social_view(&self) -> SocialView {
        SocialView {
            me: self.me.clone(),
            privacy: self.privacy,
            friends: self.friends.clone(),
            blocked: self.blocked.clone(),
            blocked_by: self.blocked_by.clone(),
        }
    }

    /// Ends every friendship and request with `other`; whether there was one.
    fn forget(&mut self, other: &str) -> bool {
        self.online.remove(other);
        let friend = self.friends.remove(other);
        let inc = self.pending_in.remove(other).is_some();
        let out = self.pending_out.remove(other).is_some();
        friend | inc | out
    }

    /// Applies an update from the service; whether the view changed.
    pub fn apply(&mut self, update: &SocialUpdate) -> bool {
        match update {
            SocialUpdate::RequestReceived {
                from,
                message,
                created_at,
            } => {
                let request = FriendRequest {
                    address: from.clone(),
                    message: message.clone(),
                    created_at: *created_at,
                    id: self
                        .pending_in
                        .get(from)
                        .map(|r| r.id.clone())
                        .unwrap_or_default(),
                };
                self.pending_in.insert(from.clone(), request.clone()) != Some(request)
            }
            SocialUpdate::Accepted { by } => {
                let out = self.pending_out.remove(by).is_some();
                let inc = self.pending_in.remove(by).is_some();
                self.friends.insert(by.clone()) | out | inc
            }
            SocialUpdate::Rejected { by } => self.pending_out.remove(by).is_some(),
            SocialUpdate::Cancelled { by } => self.pending_in.remove(by).is_some(),
            SocialUpdate::Deleted { by } => {
                self.online.remove(by);
                self.friends.remove(by)
            }
            SocialUpdate::BlockedBy { address } => {
                let forgot = self.forget(address);
                self.blocked_by.insert(address.clone()) | forgot
            }
            SocialUpdate::FriendshipBlocked { by } => self.forget(by),
            SocialUpdate::UnblockedBy { address } => self.blocked_by.remove(address),
            SocialUpdate::FriendConnectivity { address, status } => {
                if status.is_online() && self.friends.contains(address) {
                    self.online.insert(address.clone())
                } else {
                    self.online.remove(address)
                }
            }
        }
    }
}

impl From<&FullView> for SocialView {
    fn from(v: &FullView) -> SocialView {
        v.social_view()
    }
}

/// What a [`SocialSession`] reports.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// The connection's state changed.
    State(ConnectionState),
    /// The whole view was (re)loaded; `Connected` follows.
    ViewLoaded(Box<FullView>),
    /// The view changed (after an update or one of my actions): read it with
    /// [`SocialSession::view`]. (Not carried in the event, so that a full channel holds no
    /// copies of a large view.)
    ViewChanged,
    /// A change pushed by the service.
    Update(SocialUpdate),
    /// `dropped` events were dropped because the channel was full (see the module docs).
    Lagged { dropped: u64 },
}

struct Emitter {
    tx: mpsc::Sender<SessionEvent>,
    dropped: AtomicU64,
}

impl Emitter {
    fn emit(&self, event: SessionEvent) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            if self.tx.try_send(SessionEvent::Lagged { dropped }).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.dropped.fetch_sub(dropped, Ordering::Relaxed);
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Shared {
    me: String,
    client: Mutex<Option<SocialClient>>,
    view: Mutex<Option<FullView>>,
    status: watch::Sender<ConnectionState>,
    events: Emitter,
}

impl Shared {
    fn set_state(&self, state: ConnectionState) {
        self.status.send_replace(state.clone());
        self.events.emit(SessionEvent::State(state));
    }

    /// Changes the view (if known) with `f`; reports it when it changed.
    fn change(&self, f: impl FnOnce(&mut FullView) -> bool) {
        let changed = match self.view.lock() {
            Ok(mut v) => v.as_mut().is_some_and(f),
            Err(_) => false,
        };
        if changed {
            self.events.emit(SessionEvent::ViewChanged);
        }
    }
}

/// The social service for one wallet: see the module docs.
pub struct SocialSession {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SocialSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SocialSession {
    /// Starts the session for `identity`'s wallet: returns at once, with the receiver of its
    /// events (the first is `State(Connecting)`). Must be called within a Tokio runtime.
    ///
    /// Every (re)connection signs a fresh auth frame with `identity`; once its auth chain has
    /// expired the service refuses it (close code 3003) and the session keeps reporting
    /// `Reconnecting` with that error: start a new session with a new identity then.
    pub fn start(
        identity: authchain::Identity,
        config: SessionConfig,
    ) -> (SocialSession, mpsc::Receiver<SessionEvent>) {
        let (tx, rx) = mpsc::channel(config.event_buffer.max(1));
        let shared = Arc::new(Shared {
            me: identity.address().to_lower_hex(),
            client: Mutex::new(None),
            view: Mutex::new(None),
            status: watch::Sender::new(ConnectionState::Connecting),
            events: Emitter {
                tx,
                dropped: AtomicU64::new(0),
            },
        });
        shared
            .events
            .emit(SessionEvent::State(ConnectionState::Connecting));
        let task = tokio::spawn(run(shared.clone(), identity, config));
        (SocialSession { shared, task }, rx)
    }

    /// My address, lower case.
    pub fn address(&self) -> &str {
        &self.shared.me
    }

    /// The current view; `None` while it is unknown (connecting, or the connection was lost):
    /// the caller must then fail closed.
    pub fn view(&self) -> Option<FullView> {
        self.shared.view.lock().ok().and_then(|v| v.clone())
    }

    /// The connection's state now.
    pub fn status(&self) -> ConnectionState {
        self.shared.status.borrow().clone()
    }

    /// A receiver that sees every change of [`SocialSession::status`] (for waiting on it).
    pub fn watch_status(&self) -> watch::Receiver<ConnectionState> {
        self.shared.status.subscribe()
    }

    /// Stops the session and closes its connection.
    pub async fn close(&self) {
        self.task.abort();
        let client = self.shared.client.lock().ok().and_then(|mut c| c.take());
        if let Some(c) = client {
            c.close().await;
        }
    }

    fn client(&self) -> Result<SocialClient, SocialError> {
        self.shared
            .client
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .ok_or(SocialError::NotConnected)
    }

    /// Asks `to` to be friends (see [`SocialClient::request_friendship`]).
    pub async fn request_friendship(
        &self,
        to: &str,
        message: Option<&str>,
    ) -> Result<(), SocialError> {
        let c = self.client()?;
        c.request_friendship(to, message).await?;
        let to = to.to_ascii_lowercase();
        let message = message.map(str::to_owned);
        self.shared.change(|v| {
            if v.pending_in.contains_key(&to) {
                // Asking someone who asked me makes us friends.
                v.pending_in.remove(&to);
                v.friends.insert(to);
            } else {
                v.pending_out.insert(
                    to.clone(),
                    FriendRequest {
                        address: to,
                        message,
                        created_at: chrono::Utc::now().timestamp_millis(),
                        id: String::new(),
                    },
                );
            }
            true
        });
        Ok(())
    }

    /// Accepts `from`'s request.
    pub async fn accept(&self, from: &str) -> Result<(), SocialError> {
        self.client()?.accept(from).await?;
        let from = from.to_ascii_lowercase();
        self.shared.change(|v| {
            v.pending_in.remove(&from);
            v.friends.insert(from)
        });
        Ok(())
    }

    /// Rejects `from`'s request.
    pub async fn reject(&self, from: &str) -> Result<(), SocialError> {
        self.client()?.reject(from).await?;
        let from = from.to_ascii_lowercase();
        self.shared.change(|v| v.pending_in.remove(&from).is_some());
        Ok(())
    }

    /// Withdraws my request to `to`.
    pub async fn cancel(&self, to: &str) -> Result<(), SocialError> {
        self.client()?.cancel(to).await?;
        let to = to.to_ascii_lowercase();
        self.shared.change(|v| v.pending_out.remove(&to).is_some());
        Ok(())
    }

    /// Ends my friendship with `friend`.
    pub async fn delete_friendship(&self, friend: &str) -> Result<(), SocialError> {
        self.client()?.delete_friendship(friend).await?;
        let friend = friend.to_ascii_lowercase();
        self.shared.change(|v| {
            v.online.remove(&friend);
            v.friends.remove(&friend)
        });
        Ok(())
    }

    /// Blocks `address`.
    pub async fn block(&self, address: &str) -> Result<(), SocialError> {
        self.client()?.block(address).await?;
        let address = address.to_ascii_lowercase();
        self.shared.change(|v| {
            let forgot = v.forget(&address);
            v.blocked.insert(address) | forgot
        });
        Ok(())
    }

    /// Unblocks `address`.
    pub async fn unblock(&self, address: &str) -> Result<(), SocialError> {
        self.client()?.unblock(address).await?;
        let address = address.to_ascii_lowercase();
        self.shared.change(|v| v.blocked.remove(&address));
        Ok(())
    }

    /// Sets who may write to me; returns the setting now stored.
    pub async fn set_privacy(&self, privacy: Privacy) -> Result<Privacy, SocialError> {
        let stored = self.client()?.set_privacy(privacy).await?;
        self.shared.change(|v| {
            let changed = v.privacy != stored;
            v.privacy = stored;
            changed
        });
        Ok(stored)
    }

    /// My friends, read from the service now.
    pub async fn friends(&self) -> Result<HashSet<String>, SocialError> {
        self.client()?.friends().await
    }

    /// Requests made to me, read from the service now.
    pub async fn pending_requests(&self) -> Result<Vec<FriendRequest>, SocialError> {
        self.client()?.pending_requests().await
    }

    /// My requests, read from the service now.
    pub async fn sent_requests(&self) -> Result<Vec<FriendRequest>, SocialError> {
        self.client()?.sent_requests().await
    }

    /// Users I blocked, read from the service now.
    pub async fn blocked(&self) -> Result<HashSet<String>, SocialError> {
        self.client()?.blocked().await
    }

    /// Blocks in both directions, read from the service now.
    pub async fn blocking_status(&self) -> Result<BlockingStatus, SocialError> {
        self.client()?.blocking_status().await
    }

    /// My privacy setting, read from the service now.
    pub async fn settings(&self) -> Result<Privacy, SocialError> {
        self.client()?.settings().await
    }
}

/// Connects, opens the streams, loads the view.
async fn connect(
    identity: &authchain::Identity,
    config: &SessionConfig,
) -> Result<(SocialClient, mpsc::Receiver<SocialUpdate>, FullView), SocialError> {
    let client = SocialClient::connect_with(&config.url, identity, config.rpc.clone()).await?;
    let updates = client.updates().await?;
    let privacy = client.settings().await?;
    let friends = client.friends().await?;
    let pending_in = client.pending_requests().await?;
    let pending_out = client.sent_requests().await?;
    let blocking = client.blocking_status().await?;
    let view = FullView {
        me: client.address().to_owned(),
        privacy,
        friends,
        pending_in: pending_in
            .into_iter()
            .map(|r| (r.address.clone(), r))
            .collect(),
        pending_out: pending_out
            .into_iter()
            .map(|r| (r.address.clone(), r))
            .collect(),
        blocked: blocking.blocked,
        blocked_by: blocking.blocked_by,
        online: HashSet::new(),
    };
    Ok((client, updates, view))
}

/// The pause before attempt `attempt` (from 1): `first` doubled each attempt up to `max`, then
/// drawn between half and all of it.
pub fn backoff(attempt: u32, first: Duration, max: Duration) -> Duration {
    let full = first
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(rand::random::<f64>())
}

async fn run(shared: Arc<Shared>, identity: authchain::Identity, config: SessionConfig) {
    let mut attempt: u32 = 0;
    loop {
        let error = match connect(&identity, &config).await {
            Ok((client, mut updates, view)) => {
                attempt = 0;
                if let Ok(mut v) = shared.view.lock() {
                    *v = Some(view.clone());
                }
                if let Ok(mut c) = shared.client.lock() {
                    *c = Some(client.clone());
                }
                shared.events.emit(SessionEvent::ViewLoaded(Box::new(view)));
                shared.set_state(ConnectionState::Connected);
                while let Some(update) = updates.recv().await {
                    shared.change(|v| v.apply(&update));
                    shared.events.emit(SessionEvent::Update(update));
                }
                // The connection ended: the view is unknown until loaded again.
                if let Ok(mut c) = shared.client.lock() {
                    *c = None;
                }
                if let Ok(mut v) = shared.view.lock() {
                    *v = None;
                }
                SocialError::Rpc(client.closed().unwrap_or_else(|| {
                    dcl_rpc_client::RpcError::Protocol("the update streams ended".into())
                }))
            }
            Err(e) => e,
        };
        attempt = attempt.saturating_add(1);
        tracing::warn!(%error, attempt, "social service connection lost; reconnecting");
        shared.set_state(ConnectionState::Reconnecting { attempt, error });
        tokio::time::sleep(backoff(attempt, config.backoff_first, config.backoff_max)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::social::Connectivity;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let (first, max) = (Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            let d1 = backoff(1, first, max);
            assert!(d1 >= Duration::from_millis(500) && d1 <= first, "{d1:?}");
            let d3 = backoff(3, first, max);
            assert!(
                d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4),
                "{d3:?}"
            );
            let d9 = backoff(9, first, max);
            assert!(d9 >= Duration::from_secs(15) && d9 <= max, "{d9:?}");
            assert!(backoff(u32::MAX, first, max) <= max);
        }
    }

    #[test]
    fn updates_change_the_view() {
        let mut v = FullView::default();
        let a = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned();
        assert!(v.apply(&SocialUpdate::RequestReceived {
            from: a.clone(),
            message: Some("hi".into()),
            created_at: 5,
        }));
        assert_eq!(v.pending_in[&a].message.as_deref(), Some("hi"));
        assert!(v.apply(&SocialUpdate::Cancelled { by: a.clone() }));
        assert!(v.pending_in.is_empty());
        v.pending_out.insert(
            a.clone(),
            FriendRequest {
                address: a.clone(),
                message: None,
                created_at: 1,
                id: String::new(),
            },
        );
        assert!(v.apply(&SocialUpdate::Accepted { by: a.clone() }));
        assert!(v.friends.contains(&a) && v.pending_out.is_empty());
        assert!(v.apply(&SocialUpdate::FriendConnectivity {
            address: a.clone(),
            status: Connectivity::Online,
        }));
        assert!(v.online.contains(&a));
        assert!(!v.apply(&SocialUpdate::FriendConnectivity {
            address: a.clone(),
            status: Connectivity::Away,
        }));
        assert!(v.apply(&SocialUpdate::BlockedBy { address: a.clone() }));
        assert!(v.friends.is_empty() && v.online.is_empty() && v.blocked_by.contains(&a));
        assert!(v.apply(&SocialUpdate::UnblockedBy { address: a.clone() }));
        assert!(!v.apply(&SocialUpdate::UnblockedBy { address: a }));
        // A stranger's connectivity is not a friend online.
        assert!(!v.apply(&SocialUpdate::FriendConnectivity {
            address: "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
            status: Connectivity::Online,
        }));
    }

    #[tokio::test]
    async fn a_full_channel_drops_counts_and_reports_lagged() {
        let (tx, mut rx) = mpsc::channel(2);
        let e = Emitter {
            tx,
            dropped: AtomicU64::new(0),
        };
        for _ in 0..5 {
            e.emit(SessionEvent::State(ConnectionState::Connected));
        }
        assert!(matches!(rx.recv().await, Some(SessionEvent::State(_))));
        assert!(matches!(rx.recv().await, Some(SessionEvent::State(_))));
        e.emit(SessionEvent::State(ConnectionState::Connecting));
        match rx.recv().await {
            Some(SessionEvent::Lagged { dropped }) => assert_eq!(dropped, 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            rx.recv().await,
            Some(SessionEvent::State(ConnectionState::Connecting))
        ));
    }
}
