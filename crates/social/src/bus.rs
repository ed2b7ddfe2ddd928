//! Updates for connected users (friendship, block, connectivity). Each subscriber keeps the
//! events addressed to its user.
//!
//! Without Redis the fan-out is an in-process broadcast. With `REDIS_URL`, every update is
//! published on one Redis channel and every instance (this one included) delivers what it hears
//! to its own connections, so a user connected to another instance gets it too. If Redis
//! cannot take a publish, the update is still delivered locally.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use prost::Message;
use social_proto::v2;
use tokio::sync::broadcast;

use crate::cache::Invalidation;

/// The Redis channel updates travel on.
pub const CHANNEL: &str = "pchat:social:updates";

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
    /// `[kind][to length][to][protobuf]`.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body) = match &self.update {
            Update::Friendship(u) => (1u8, u.encode_to_vec()),
            Update::Block(u) => (2, u.encode_to_vec()),
            Update::Connectivity(u) => (3, u.encode_to_vec()),
            Update::Invalidate(i) => (4, vec![i.to_byte()]),
        };
        let to = self.to.as_bytes();
        let mut out = Vec::with_capacity(2 + to.len() + body.len());
        out.push(kind);
        out.push(to.len().min(255) as u8);
        out.extend_from_slice(&to[..to.len().min(255)]);
        out.extend_from_slice(&body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Envelope> {
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

/// The fan-out.
#[derive(Clone)]
pub struct Bus {
    local: broadcast::Sender<Arc<Envelope>>,
    redis: Option<redis::aio::MultiplexedConnection>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            local: broadcast::channel(4096).0,
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
        let local = broadcast::channel(4096).0;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(relay(client, local.clone(), ready_tx));
        // Wait for the subscription so that nothing published from now on is missed.
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        Ok(Bus {
            local,
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
        let _ = self.local.send(Arc::new(envelope));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.local.subscribe()
    }
}

async fn relay(
    client: redis::Client,
    local: broadcast::Sender<Arc<Envelope>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut subscribed_before = false;
    loop {
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
                        let _ = local.send(Arc::new(Envelope {
                            to: String::new(),
                            update: Update::Invalidate(Invalidation::All),
                        }));
                    }
                    subscribed_before = true;
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
                        match Envelope::decode(&payload) {
                            Some(env) => {
                                let _ = local.send(Arc::new(env));
                            }
                            None => tracing::warn!("undecodable update on the Redis channel"),
                        }
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

    #[test]
    fn envelopes_round_trip_and_garbage_is_refused() {
        let e = Envelope {
            to: "0xabc".into(),
            update: Update::Block(v2::BlockUpdate {
                address: "0xdef".into(),
                is_blocked: true,
            }),
        };
        assert_eq!(Envelope::decode(&e.encode()), Some(e));
        let i = Envelope {
            to: "0xabc".into(),
            update: Update::Invalidate(Invalidation::Settings),
        };
        assert_eq!(Envelope::decode(&i.encode()), Some(i));
        assert_eq!(Envelope::decode(&[4, 0]), None);
        assert_eq!(Envelope::decode(&[4, 0, 9]), None);
        assert_eq!(Envelope::decode(&[]), None);
        assert_eq!(Envelope::decode(&[9, 0]), None);
        assert_eq!(Envelope::decode(&[1, 200, 1]), None);
    }
}
