//! The private-chat client SDK.
//!
//! Start with [`private_chat::PrivateChat`]: one object for one wallet that owns the room
//! connection and the social connection and gives the application one stream of typed events
//! (messages, reactions, drops with their reasons, recipient states pushed as they change,
//! friendship and block updates, connection states, and for every message sent whether it was
//! delivered: confirmed by the recipient's client, or reported not delivered with the reason),
//! with sending and the social actions on the same object. Its parts, usable alone:
//!
//! - [`GatekeeperTokens`]: LiveKit credentials for the shared private-messages room, fetched from
//!   the gatekeeper with a signed `GET /private-messages/token` (metadata
//!   `{"signer":"dcl:explorer"}`, plus `"chat_key"` with end-to-end encryption), fresh for every
//!   (re)connection, as the reference client does.
//! - [`social::SocialSession`]: the social service (dcl-rpc, through `dcl-rpc-client`) for one
//!   wallet: the full view (settings, friends, requests, blocks both ways) kept current from the
//!   update streams, every social action, reconnection with back-off.
//! - [`rooms::Rooms`]: which private-messages rooms to be in when the gatekeeper spreads the
//!   players over several (`GatekeeperTokens::for_room`, docs/sharded-rooms.md): the home room,
//!   others joined lazily and left when idle. With one room it is just that room.
//! - [`ChatClient`] + [`Inbox`]: the lower-level room side (join, send to one wallet, incoming
//!   packets judged by [`chat_core::Filter`] against a [`SocialView`] the caller keeps).
//!
//! The rules live in `chat-core` (no I/O); this crate wires them to the network. Errors are typed
//! per part: [`AdapterError`], [`TokenError`], [`ClientError`], [`social::SocialError`],
//! [`private_chat::ConnectFailed`] and [`private_chat::NotSent`].

pub mod private_chat;
pub mod rooms;
pub mod social;

use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

pub use chat_core::{ChatMessage, Filter, RateLimit, RecipientState, Rejected, SocialView};
use livekit_participant::{
    ConnectError, Credentials, Event, Events, Options, Participant, Reliability, SendError,
    TokenSource,
};
use pchat_core::{Privacy, normalize_address};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot join the chat room: {0}")]
    Connect(#[from] ConnectError),
    #[error("cannot send: {0}")]
    Send(#[from] SendError),
    #[error("invalid recipient address {0:?}")]
    BadRecipient(String),
    #[error(transparent)]
    Message(#[from] chat_core::PacketError),
}

/// Why the gatekeeper's `adapter` string could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("adapter {0:?} does not start with \"livekit:\"")]
    NotLiveKit(String),
    #[error("adapter has no query string")]
    NoQuery,
    #[error("adapter has no access_token")]
    NoToken,
    #[error("adapter URL {0:?} is not ws:// or wss://")]
    BadUrl(String),
}

/// Splits the gatekeeper's `adapter` (`livekit:<url>?access_token=<token>`).
pub fn parse_adapter(adapter: &str) -> Result<Credentials, AdapterError> {
    let rest = adapter
        .strip_prefix("livekit:")
        .ok_or_else(|| AdapterError::NotLiveKit(adapter.chars().take(64).collect()))?;
    let (url, query) = rest.split_once('?').ok_or(AdapterError::NoQuery)?;
    let token = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("access_token="))
        .filter(|t| !t.is_empty())
        .ok_or(AdapterError::NoToken)?;
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(AdapterError::BadUrl(url.chars().take(256).collect()));
    }
    Ok(Credentials {
        url: url.to_owned(),
        token: token.to_owned(),
    })
}

/// Why no credentials came from the gatekeeper.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot reach the gatekeeper at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the gatekeeper at {url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        /// The answer's body, at most 1 KiB of it.
        body: String,
    },
    #[error("the gatekeeper's answer is not the expected JSON: {0}")]
    BadAnswer(String),
    #[error("the gatekeeper's adapter is unusable: {0}")]
    Adapter(#[from] AdapterError),
}

/// Most bytes of a gatekeeper answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Credentials from the gatekeeper, signed with the user's identity (ADR-44).
#[derive(Clone)]
pub struct GatekeeperTokens {
    base: String,
    identity: Arc<authchain::Identity>,
    http: reqwest::Client,
    /// `Some(k)`: tokens for room k of the sharded rooms (`/private-messages/token/{k}`);
    /// `None`: the reference's request, room 0.
    room: Option<u32>,
    /// The session's public key for end-to-end encryption, sent in the signed metadata so
    /// that the gatekeeper publishes it as the participant attribute `chat_key` (docs/e2ee.md).
    chat_key: Option<pchat_core::chat_key::ChatKey>,
}

/// Which of the sharded rooms (docs/sharded-rooms.md) a token is for, as the gatekeeper says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room's index, `0..count`.
    pub index: u32,
    /// K: 1 when the gatekeeper does not say (one room, or a gatekeeper without shards).
    pub count: u32,
}

impl GatekeeperTokens {
    /// `base` is the gatekeeper's URL (e.g. `http://127.0.0.1:3000`).
    pub fn new(base: &str, identity: authchain::Identity) -> Self {
        GatekeeperTokens {
            base: base.trim_end_matches('/').to_owned(),
            identity: Arc::new(identity),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            room: None,
            chat_key: None,
        }
    }

    /// The same wallet's tokens, asking the gatekeeper to publish `key` as the session's
    /// end-to-end encryption key (in every room's token).
    pub fn with_chat_key(self, key: pchat_core::chat_key::ChatKey) -> GatekeeperTokens {
        GatekeeperTokens {
            chat_key: Some(key),
            ..self
        }
    }

    /// The key these tokens publish, if any.
    pub fn chat_key(&self) -> Option<pchat_core::chat_key::ChatKey> {
        self.chat_key
    }

    /// The same wallet's tokens for room `index` of the sharded rooms (signed path
    /// `/private-messages/token/{index}`).
    pub fn for_room(&self, index: u32) -> GatekeeperTokens {
        GatekeeperTokens {
            room: Some(index),
            ..self.clone()
        }
    }

    /// One signed request for credentials.
    pub async fn fetch(&self) -> Result<Credentials, TokenError> {
        Ok(self.fetch_with_room().await?.0)
    }

    /// One signed request for credentials, with the room they are for.
    pub async fn fetch_with_room(&self) -> Result<(Credentials, RoomInfo), TokenError> {
        let (status, body) = self.request().await?;
        parse_answer(&self.base, self.room, status, &body)
    }

    /// One signed request, answered as is: (HTTP status, body).
    pub async fn request(&self) -> Result<(u16, String), TokenError> {
        let path = match self.room {
            None => "/private-messages/token".to_owned(),
            Some(k) => format!("/private-messages/token/{k}"),
        };
        let metadata = match &self.chat_key {
            None => serde_json::json!({ "signer": "dcl:explorer" }),
            Some(key) => serde_json::json!({
                "signer": "dcl:explorer",
                pchat_core::chat_key::METADATA_FIELD: key.to_hex(),
            }),
        };
        let headers = self.identity.signed_fetch_headers(
            "GET",
            &path,
            authchain::now_ms(),
            &metadata.to_string(),
        );
        request(&self.http, &format!("{}{path}", self.base), &headers).await
    }
}

async fn request(
    http: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
) -> Result<(u16, String), TokenError> {
    let mut req = http.get(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let unreachable = |source| TokenError::Unreachable {
        url: url.to_owned(),
        source,
    };
    let mut resp = req.send().await.map_err(unreachable)?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err(TokenError::BadAnswer(format!(
                "more than {MAX_ANSWER_BYTES} bytes"
            )));
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn parse_answer(
    base: &str,
    room: Option<u32>,
    status: u16,
    body: &str,
) -> Result<(Credentials, RoomInfo), TokenError> {
    if !(200..300).contains(&status) {
        return Err(TokenError::Refused {
            url: base.to_owned(),
            status,
            body: body.chars().take(1024).collect(),
        });
    }
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| TokenError::BadAnswer(format!("not JSON: {e}")))?;
    let adapter = v["adapter"]
        .as_str()
        .ok_or_else(|| TokenError::BadAnswer("no \"adapter\" string".into()))?;
    Ok((parse_adapter(adapter)?, room_info(&v, room)?))
}

/// The room a token answer is for: its `room_index`/`room_count` fields, or room 0 of 1 when
/// the gatekeeper does not send them (one room). Checked: `index < count <= MAX_ROOM_SHARDS`,
/// and the index is the one asked for.
fn room_info(v: &serde_json::Value, asked: Option<u32>) -> Result<RoomInfo, TokenError> {
    let field = |name: &str| -> Result<Option<u32>, TokenError> {
        match v.get(name) {
            None => Ok(None),
            Some(x) => x
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| TokenError::BadAnswer(format!("{name:?} is not a room number"))),
        }
    };
    let info = RoomInfo {
        index: field("room_index")?.unwrap_or(0),
        count: field("room_count")?.unwrap_or(1),
    };
    let valid = (1..=pchat_core::rooms::MAX_ROOM_SHARDS).contains(&info.count)
        && info.index < info.count
        && asked.is_none_or(|k| k == info.index);
    if valid {
        Ok(info)
    } else {
        Err(TokenError::BadAnswer(format!(
            "room {} of {} (asked for {asked:?})",
            info.index, info.count
        )))
    }
}

impl TokenSource for GatekeeperTokens {
    fn credentials(&self) -> livekit_participant::token::TokenFuture {
        let tokens = self.clone();
        Box::pin(async move {
            tokens
                .fetch()
                .await
                .map_err(livekit_participant::TokenSourceError::new)
        })
    }
}

/// A connected chat user.
pub struct ChatClient {
    participant: Participant,
    me: String,
    view: Arc<RwLock<SocialView>>,
}

/// What arrives for the user, filtered.
pub struct Inbox {
    events: Events,
    filter: Filter,
    view: Arc<RwLock<SocialView>>,
}

/// One thing from the inbox.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A message to show.
    Message { from: String, message: ChatMessage },
    /// A packet the filter dropped, and why (for logs and counters; not to be shown).
    Dropped { from: String, reason: Rejected },
    /// The inbox was read too slowly: `dropped` packets (or room events) that arrived after the
    /// ones before this were dropped, unread. Also counted in [`ChatClient::events_dropped`].
    Lagged { dropped: u64 },
}

impl ChatClient {
    /// Joins the room with credentials from `tokens` as `me` (the wallet the tokens are for);
    /// `view` is the starting social state ([`ChatClient::set_social_view`] updates it).
    pub async fn connect(
        tokens: impl TokenSource,
        me: &str,
        view: SocialView,
        filter: Filter,
    ) -> Result<(ChatClient, Inbox), ClientError> {
        let me = normalize_address(me).map_err(|_| ClientError::BadRecipient(me.to_owned()))?;
        let view = Arc::new(RwLock::new(SocialView {
            me: me.clone(),
            ..view
        }));
        let (participant, events) = Participant::connect(tokens, Options::default()).await?;
        Ok((
            ChatClient {
                participant,
                me,
                view: view.clone(),
            },
            Inbox {
                events,
                filter,
                view,
            },
        ))
    }

    /// My address.
    pub fn address(&self) -> &str {
        &self.me
    }

    /// Replaces the social state the inbox filters with (`me` is kept).
    pub fn set_social_view(&self, view: SocialView) {
        set_view(&self.view, view);
    }

    /// The shared social view (for tasks that keep it current).
    pub fn view_handle(&self) -> Arc<RwLock<SocialView>> {
        self.view.clone()
    }

    /// Sends `text` to the wallet `to` (only that participant receives it). Returns once the
    /// message is on the reliable data channel, not when it is delivered: leaving right after
    /// can lose it.
    pub async fn send(&self, to: &str, text: &str) -> Result<(), ClientError> {
        let to = normalize_address(to).map_err(|_| ClientError::BadRecipient(to.to_owned()))?;
        let payload = chat_core::packet::encode(text, SystemTime::now())?;
        self.participant
            .send(
                &payload,
                std::slice::from_ref(&to),
                Some(&to),
                Reliability::Reliable,
            )
            .await?;
        Ok(())
    }

    /// Whether `to` can be written to now (see [`chat_core::recipient`]).
    pub async fn recipient_state(&self, to: &str) -> RecipientState {
        let Ok(to) = normalize_address(to) else {
            return RecipientState::Disconnected;
        };
        let present = self.participant.participant(&to).await;
        let (my_privacy, is_friend, i_blocked, blocked_me) = match self.view.read() {
            Ok(v) => (
                v.privacy,
                v.friends.contains(&to),
                v.blocked.contains(&to),
                v.blocked_by.contains(&to),
            ),
            Err(_) => (Privacy::All, false, false, false),
        };
        chat_core::recipient_state(
            my_privacy,
            chat_core::recipient::RecipientFacts {
                in_room: present.is_some(),
                their_privacy: present
                    .and_then(|p| Privacy::from_participant_metadata(&p.metadata)),
                is_friend,
                i_blocked,
                blocked_me,
            },
        )
    }

    /// Packets and room events dropped so far because the [`Inbox`] was read too slowly.
    pub fn events_dropped(&self) -> u64 {
        self.participant.stats().events_dropped
    }

    /// Leaves the room.
    pub async fn leave(self) {
        self.participant.leave().await;
    }
}

/// What the filter judges of a packet that came in from the room.
fn incoming(packet: &livekit_participant::IncomingPacket) -> chat_core::Incoming<'_> {
    chat_core::Incoming {
        sender: &packet.sender,
        topic: packet.topic.as_deref().unwrap_or(""),
        payload: &packet.payload,
    }
}

/// Replaces the view in `handle`, keeping its `me`.
pub fn set_view(handle: &RwLock<SocialView>, view: SocialView) {
    if let Ok(mut v) = handle.write() {
        let me = std::mem::take(&mut v.me);
        *v = SocialView { me, ..view };
    }
}

impl Inbox {
    /// The next data packet, judged, or [`Received::Lagged`] where packets were dropped because
    /// the inbox was read too slowly; `None` once the client is gone. Other room events are
    /// skipped.
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            let packet = match self.events.recv().await? {
                Event::Data(packet) => packet,
                Event::Lagged { dropped } => return Some(Received::Lagged { dropped }),
                _ => continue,
            };
            let view = match self.view.read() {
                Ok(v) => v.clone(),
                Err(_) => continue,
            };
            let verdict = self.filter.check(&view, incoming(&packet), Instant::now());
            return Some(match verdict {
                Ok(message) => Received::Message {
                    from: packet.sender.to_ascii_lowercase(),
                    message,
                },
                Err(reason) => Received::Dropped {
                    from: packet.sender,
                    reason,
                },
            });
        }
    }

    /// [`Inbox::next`] with a time limit.
    pub async fn next_timeout(&mut self, limit: std::time::Duration) -> Option<Received> {
        tokio::time::timeout(limit, self.next())
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_of_a_token_answer_is_read_and_checked() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("json");
        let one = RoomInfo { index: 0, count: 1 };
        assert_eq!(room_info(&v(r#"{"adapter":"x"}"#), None).ok(), Some(one));
        assert_eq!(
            room_info(&v(r#"{"room_index":2,"room_count":4}"#), Some(2)).ok(),
            Some(RoomInfo { index: 2, count: 4 })
        );
        assert_eq!(
            room_info(&v(r#"{"room_index":0,"room_count":4}"#), None).ok(),
            Some(RoomInfo { index: 0, count: 4 })
        );
        for (bad, asked) in [
            (r#"{"room_index":4,"room_count":4}"#, None),
            (r#"{"room_index":0,"room_count":0}"#, None),
            (r#"{"room_index":0,"room_count":65}"#, None),
            (r#"{"room_index":"1","room_count":4}"#, None),
            (r#"{"room_index":-1,"room_count":4}"#, None),
            (r#"{"room_index":1,"room_count":4}"#, Some(2)),
            (r#"{"adapter":"x"}"#, Some(1)),
        ] {
            assert!(room_info(&v(bad), asked).is_err(), "{bad} {asked:?}");
        }
    }

    #[test]
    fn adapters_are_split_or_refused() {
        let c = parse_adapter("livekit:wss://lk.example/x?access_token=abc.def").expect("ok");
        assert_eq!(c.url, "wss://lk.example/x");
        assert_eq!(c.token, "abc.def");
        let c = parse_adapter("livekit:ws://127.0.0.1:7880?foo=1&access_token=t").expect("ok");
        assert_eq!(
            (c.url.as_str(), c.token.as_str()),
            ("ws://127.0.0.1:7880", "t")
        );
        for bad in [
            "ws://x?access_token=t",
            "livekit:ws://x",
            "livekit:ws://x?access_token=",
            "livekit:http://x?access_token=t",
        ] {
            assert!(parse_adapter(bad).is_err(), "{bad}");
        }
    }
}
