//! Updates for connected users (friendship, block, connectivity) and cache invalidations.
//!
//! Delivery is routed by recipient: each stream subscribes for its own user and gets only what
//! is addressed to that user, through its own bounded queue, so an update costs work for its
//! recipient's streams only, however many users are connected. A stream that falls
//! [`QUEUE`] updates behind loses the newest ones (logged and counted) rather than slowing
//! everyone else. Cache invalidations go to the instance's internal listeners.
//!
//! Without Redis delivery is in-process. With `REDIS_URL`, every update is published on one
//! Redis channel and every instance (this one included) delivers what it hears to its own
//! subscribers, so a user connected to another instance gets it too. If Redis cannot take a
//! publish, the update is still delivered locally.
//!
//! An envelope on Redis starts with a version byte ([`VERSION`], now 0x10), so a rolling upgrade
//! can change the format: an instance drops an envelope whose version it does not know (or one
//! without any), logs it at `warn` and counts it ([`Bus::refused`]), rather than misreading it.
//! A new format takes a new version, which old instances then refuse while both run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use prost::Message;
use social_proto::v2;
use tokio::sync::{broadcast, mpsc};

use crate::cache::Invalidation;

/// The Redis channel updates travel on.
pub const CHANNEL: &str = "pchat:social:updates";

/// The envelope format this instance writes and reads (the first byte on the channel).
///
/// Versions count up from 0x10: an envelope written before there was a version byte started
/// with its kind (1–4), so no version can be mistaken for one of those, and an instance from
/// before versions drops a versioned envelope as an unknown kind instead of misreading it.
pub const VERSION: u8 = 0x10;

/// Why bytes from the channel are not an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("empty envelope (no version byte)")]
    NoVersion,
    #[error("envelope version {0}, this instance reads version {VERSION}")]
    UnknownVersion(u8),
    #[error("malformed envelope")]
    Malformed,
}

/// An update for one user.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Friendship(v2::FriendshipUpdate),
    Block(v2::BlockUpdate),
    Connectivity(v2::FriendConnectivityUpdate),
    /// Not for clients: every instance drops the named cache entries of the recipient.
    Invalidate(Invalidation),
}

/// An update and its recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub to: String,
    pub update: Update,
}

impl Envelope {
    /// `[VERSION][kind][to length][to][protobuf]`.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body) = match &self.update {
            Update::Friendship(u) => (1u8, u.encode_to_vec()),
            Update::Block(u) => (2, u.encode_to_vec()),
            Update::Connectivity(u) => (3, u.encode_to_vec()),
            Update::Invalidate(i) => (4, vec![i.to_byte()]),
        };
        let to = self.to.as_bytes();
        let mut out = Vec::with_capacity(3 + to.len() + body.len());
        out.push(VERSION);
        out.push(kind);
        out.push(to.len().min(255) as u8);
        out.extend_from_slice(&to[..to.len().min(255)]);
        out.extend_from_slice(&body);
        out
    }

    /// An envelope of this instance's [`VERSION`]; any other version is refused unread.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        match bytes.split_first() {
            None => Err(EnvelopeError::NoVersion),
            Some((&VERSION, rest)) => Self::decode_v1(rest).ok_or(EnvelopeError::Malformed),
            Some((&other, _)) => Err(EnvelopeError::UnknownVersion(other)),
        }
    }

    /// `[kind][to length][to][protobuf]`, after the version byte.
    fn decode_v1(bytes: &[u8]) -> Option<Envelope> {
        let (&kind, rest) = bytes.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let to = std::str::from_utf8(rest.get(..len as usize)?)
            .ok()?
            .to_owned();
        let body = rest.get(len as usize..)?;
        let update = match kind {
            1 => Update::Friendship(v2::FriendshipUpdate::decode(body).ok()?),
            2 => Update::Block(v2::BlockUpdate::decode(body).ok()?),
            3 => Update::Connectivity(v2::FriendConnectivityUpdate::decode(body).ok()?),
            4 => match body {
                [b] => Update::Invalidate(Invalidation::from_byte(*b)?),
                _ => return None,
            },
            _ => return None,
        };
        Some(Envelope { to, update })
    }
}

/// Updates a stream may have waiting before newer ones are dropped.
pub const QUEUE: usize = 1024;

/// One stream's queue, with the id that unsubscribes it.
type Sink = (u64, mpsc::Sender<Arc<Envelope>>);

/// Where envelopes are delivered on this instance.
struct Hub {
    users: Mutex<HashMap<String, Vec<Sink>>>,
    internal: broadcast::Sender<Arc<Envelope>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
    /// Envelopes from the channel that were not read (unknown version, malformed).
    refused: AtomicU64,
}

impl Hub {
    fn new() -> Arc<Hub> {
        Arc::new(Hub {
            users: Mutex::new(HashMap::new()),
            internal: broadcast::channel(4096).0,
            next_id: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Delivers what arrived on the Redis channel, or drops, logs and counts what cannot be
    /// read.
    fn receive(&self, payload: &[u8]) {
        match Envelope::decode(payload) {
            Ok(env) => self.deliver(Arc::new(env)),
            Err(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "update on the Redis channel dropped");
            }
        }
    }

    fn deliver(&self, envelope: Arc<Envelope>) {
        if matches!(envelope.update, Update::Invalidate(_)) {
            let _ = self.internal.send(envelope);
            return;
        }
        let Ok(users) = self.users.lock() else {
            return;
        };
        for (_, tx) in users.get(&envelope.to).into_iter().flatten() {
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(envelope.clone()) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(user = %envelope.to, "update stream {QUEUE} behind; update dropped");
            }
        }
    }
}

/// The updates addressed to one user, as a stream; unsubscribes when dropped.
pub struct Subscription {
    id: u64,
    user: String,
    rx: mpsc::Receiver<Arc<Envelope>>,
    hub: Arc<Hub>,
}

impl futures_util::Stream for Subscription {
    type Item = Arc<Envelope>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Ok(mut users) = self.hub.users.lock() else {
            return;
        };
        if let Some(list) = users.get_mut(&self.user) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                users.remove(&self.user);
            }
        }
    }
}

/// The fan-out.
#[derive(Clone)]
pub struct Bus {
    hub: Arc<Hub>,
    redis: Option<redis::aio::MultiplexedConnection>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            hub: Hub::new(),
            redis: None,
        }
    }
}

/// Errors connecting to Redis.
#[derive(Debug, thiserror::Error)]
#[error("Redis: {0}")]
pub struct BusError(String);

impl Bus {
    /// A bus that fans out through Redis at `url`, with a background task relaying what the
    /// channel carries to this instance's subscribers (it reconnects by itself).
    pub async fn with_redis(url: &str) -> Result<Bus, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError(e.to_string()))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let hub = Hub::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(relay(client, Arc::downgrade(&hub), ready_tx));
        // Wait for the subscription so that nothing published from now on is missed.
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        Ok(Bus {
            hub,
            redis: Some(conn),
        })
    }

    pub async fn publish(&self, to: &str, update: Update) {
        let envelope = Envelope {
            to: to.to_owned(),
            update,
        };
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(envelope.encode())
                .query_async(&mut conn)
                .await;
            match sent {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "Redis publish failed; delivering locally only")
                }
            }
        }
        self.hub.deliver(Arc::new(envelope));
    }

    /// The updates addressed to `user`.
    pub fn subscribe(&self, user: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.hub.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut users) = self.hub.users.lock() {
            users.entry(user.to_owned()).or_default().push((id, tx));
        }
        Subscription {
            id,
            user: user.to_owned(),
            rx,
            hub: self.hub.clone(),
        }
    }

    /// Cache invalidations, for this instance's own listeners.
    pub fn invalidations(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.hub.internal.subscribe()
    }

    /// Updates dropped because a stream was too far behind.
    pub fn dropped(&self) -> u64 {
        self.hub.dropped.load(Ordering::Relaxed)
    }

    /// Envelopes from Redis dropped unread (an unknown version, none, or malformed).
    pub fn refused(&self) -> u64 {
        self.hub.refused.load(Ordering::Relaxed)
    }
}

/// Relays the Redis channel to this instance's hub until the hub is gone.
async fn relay(
    client: redis::Client,
    hub: std::sync::Weak<Hub>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut subscribed_before = false;
    loop {
        if hub.strong_count() == 0 {
            return;
        }
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub.subscribe(CHANNEL).await {
                    tracing::warn!(error = %e, "Redis subscribe failed");
                } else {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                    if subscribed_before {
                        // Whatever was published while we were away is lost: caches must not
                        // trust anything they hold.
                        let Some(hub) = hub.upgrade() else { return };
                        hub.deliver(Arc::new(Envelope {
                            to: String::new(),
                            update: Update::Invalidate(Invalidation::All),
                        }));
                    }
                    subscribed_before = true;
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(hub) = hub.upgrade() else { return };
                        hub.receive(msg.get_payload_bytes());
                    }
                }
                tracing::warn!("Redis subscription ended; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect to Redis; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn block(to: &str, from: &str) -> Update {
        let _ = to;
        Update::Block(v2::BlockUpdate {
            address: from.into(),
            is_blocked: true,
        })
    }

    #[tokio::test]
    async fn updates_reach_only_their_recipients_streams() {
        let bus = Bus::default();
        let mut a1 = bus.subscribe("0xa");
        let mut a2 = bus.subscribe("0xa");
        let mut b = bus.subscribe("0xb");
        bus.publish("0xa", block("0xa", "0xc")).await;
        for s in [&mut a1, &mut a2] {
            let got = tokio::time::timeout(Duration::from_secs(1), s.next())
                .await
                .expect("in time")
                .expect("open");
            assert_eq!(got.to, "0xa");
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.next())
                .await
                .is_err(),
            "0xb gets nothing"
        );
        // Dropping a stream unsubscribes it; the others keep working.
        drop(a1);
        bus.publish("0xa", block("0xa", "0xd")).await;
        assert!(a2.next().await.is_some());
        drop((a2, b));
        assert!(bus.hub.users.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_stream_too_far_behind_loses_updates_and_others_do_not_wait() {
        let bus = Bus::default();
        let slow = bus.subscribe("0xa");
        let mut other = bus.subscribe("0xb");
        for _ in 0..QUEUE + 5 {
            bus.publish("0xa", block("0xa", "0xc")).await;
        }
        bus.publish("0xb", block("0xb", "0xc")).await;
        assert!(other.next().await.is_some());
        assert_eq!(bus.dropped(), 5);
        drop(slow);
    }

    #[tokio::test]
    async fn invalidations_go_to_internal_listeners() {
        let bus = Bus::default();
        let mut user = bus.subscribe("0xa");
        let mut internal = bus.invalidations();
        bus.publish("0xa", Update::Invalidate(Invalidation::Friends))
            .await;
        let got = internal.recv().await.expect("invalidation");
        assert_eq!(got.update, Update::Invalidate(Invalidation::Friends));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), user.next())
                .await
                .is_err(),
            "clients never see invalidations"
        );
    }

    #[test]
    fn envelopes_round_trip_and_garbage_is_refused() {
        let e = Envelope {
            to: "0xabc".into(),
            update: Update::Block(v2::BlockUpdate {
                address: "0xdef".into(),
                is_blocked: true,
            }),
        };
        assert_eq!(Envelope::decode(&e.encode()), Ok(e));
        let i = Envelope {
            to: "0xabc".into(),
            update: Update::Invalidate(Invalidation::Settings),
        };
        assert_eq!(Envelope::decode(&i.encode()), Ok(i));
        let malformed = Err(EnvelopeError::Malformed);
        assert_eq!(Envelope::decode(&[VERSION, 4, 0]), malformed);
        assert_eq!(Envelope::decode(&[VERSION, 4, 0, 9]), malformed);
        assert_eq!(Envelope::decode(&[]), Err(EnvelopeError::NoVersion));
        assert_eq!(Envelope::decode(&[VERSION]), malformed);
        assert_eq!(Envelope::decode(&[VERSION, 9, 0]), malformed);
        assert_eq!(Envelope::decode(&[VERSION, 1, 200, 1]), malformed);
    }

    #[test]
    fn envelopes_carry_a_version_and_another_version_is_refused() {
        let e = Envelope {
            to: "0xabc".into(),
            update: Update::Invalidate(Invalidation::Friends),
        };
        let mut bytes = e.encode();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(Envelope::decode(&bytes), Ok(e.clone()));
        bytes[0] = VERSION + 1;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::UnknownVersion(VERSION + 1))
        );
        // The format before the version byte (it started with the kind, 1–4) is refused too,
        // whatever its kind.
        for kind in 1..=4u8 {
            let mut legacy = bytes[1..].to_vec();
            legacy[0] = kind;
            assert_eq!(
                Envelope::decode(&legacy),
                Err(EnvelopeError::UnknownVersion(kind))
            );
        }
    }

    #[tokio::test]
    async fn a_refused_envelope_is_counted_and_not_delivered() {
        let bus = Bus::default();
        let mut internal = bus.invalidations();
        let e = Envelope {
            to: "0xa".into(),
            update: Update::Invalidate(Invalidation::Friends),
        };
        let mut bytes = e.encode();
        bytes[0] = VERSION + 1;
        bus.hub.receive(&bytes);
        bus.hub.receive(&[]);
        assert_eq!(bus.refused(), 2);
        assert!(internal.try_recv().is_err(), "nothing delivered");
        bus.hub.receive(&e.encode());
        assert_eq!(internal.recv().await.expect("delivered").update, e.update);
        assert_eq!(bus.refused(), 2);
    }
}
