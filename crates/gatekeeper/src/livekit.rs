//! LiveKit: minting access tokens for the shared room (or, with `PRIVATE_MESSAGES_ROOM_SHARDS`,
//! for one of the K rooms: [`pchat_core::rooms`]), and the RoomService boundary used to update
//! a participant's metadata.

use std::time::Duration;

use async_trait::async_trait;
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_api::services::room::{RoomClient, UpdateParticipantOptions};
use livekit_api::services::{ServerError, ServiceError};
use pchat_core::Privacy;
use pchat_core::rooms::RoomShards;

/// Why a RoomService call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomServiceError {
    /// The participant is not in the room (Twirp `not_found`).
    #[error("participant not found in the room")]
    NotFound,
    /// LiveKit could not be reached or timed out.
    #[error("LiveKit is unreachable: {0}")]
    Unavailable(String),
    /// LiveKit answered with another error.
    #[error("LiveKit error: {0}")]
    Other(String),
}

/// The part of LiveKit's RoomService the gatekeeper uses.
#[async_trait]
pub trait RoomService: Send + Sync {
    async fn update_participant_metadata(
        &self,
        room: &str,
        identity: &str,
        metadata: &str,
    ) -> Result<(), RoomServiceError>;
}

/// The real RoomService over Twirp (`livekit-api`).
pub struct LiveKitRoomService {
    client: RoomClient,
}

impl LiveKitRoomService {
    /// `host` may be ws(s):// or http(s)://.
    pub fn new(host: &str, api_key: &str, api_secret: &str, timeout: Duration) -> Self {
        let client = RoomClient::with_api_key(host, api_key, api_secret)
            .with_failover(false)
            .with_request_timeout(timeout);
        LiveKitRoomService { client }
    }
}

/// RoomService on a LiveKit cluster: a call goes to a node that passed its last health check
/// (any node forwards it to the node hosting the room), trying the next healthy one when a node
/// cannot be reached, so `PROD_LIVEKIT_HOST` going down does not stop privacy updates.
pub struct ClusterRoomService {
    nodes: std::sync::Arc<crate::nodes::Nodes>,
    clients: Vec<LiveKitRoomService>,
}

impl ClusterRoomService {
    pub fn new(
        nodes: std::sync::Arc<crate::nodes::Nodes>,
        api_key: &str,
        api_secret: &str,
        timeout: Duration,
    ) -> Self {
        let clients = nodes
            .urls()
            .map(|url| LiveKitRoomService::new(url, api_key, api_secret, timeout))
            .collect();
        ClusterRoomService { nodes, clients }
    }
}

#[async_trait]
impl RoomService for ClusterRoomService {
    async fn update_participant_metadata(
        &self,
        room: &str,
        identity: &str,
        metadata: &str,
    ) -> Result<(), RoomServiceError> {
        let mut last = RoomServiceError::Unavailable("no LiveKit node is available".into());
        for i in self.nodes.healthy_for(identity) {
            match self.clients[i]
                .update_participant_metadata(room, identity, metadata)
                .await
            {
                Err(e @ RoomServiceError::Unavailable(_)) => last = e,
                answer => return answer,
            }
        }
        Err(last)
    }
}

#[async_trait]
impl RoomService for LiveKitRoomService {
    async fn update_participant_metadata(
        &self,
        room: &str,
        identity: &str,
        metadata: &str,
    ) -> Result<(), RoomServiceError> {
        let options = UpdateParticipantOptions {
            metadata: metadata.to_owned(),
            ..Default::default()
        };
        match self
            .client
            .update_participant(room, identity, options)
            .await
        {
            Ok(_) => Ok(()),
            Err(ServiceError::Twirp(ServerError::Twirp(code))) if code.code == "not_found" => {
                Err(RoomServiceError::NotFound)
            }
            Err(ServiceError::Twirp(ServerError::Twirp(code))) => Err(RoomServiceError::Other(
                format!("{}: {}", code.code, code.msg),
            )),
            Err(ServiceError::Twirp(ServerError::Request(e)))
                if e.is_connect() || e.is_timeout() || e.is_request() =>
            {
                Err(RoomServiceError::Unavailable(e.to_string()))
            }
            Err(e) => Err(RoomServiceError::Other(e.to_string())),
        }
    }
}

/// Errors minting a token.
#[derive(Debug, thiserror::Error)]
#[error("cannot mint a LiveKit token: {0}")]
pub struct TokenError(String);

/// Mints the access tokens of docs/wire.md §2 step 4 and builds the adapter string.
#[derive(Clone)]
pub struct TokenMinter {
    api_key: String,
    api_secret: String,
    rooms: RoomShards,
    ttl: Duration,
    /// The client-facing URL, ws:// or wss://.
    ws_url: String,
}

impl std::fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMinter")
            .field("api_key", &self.api_key)
            .field("rooms", &self.rooms)
            .field("ttl", &self.ttl)
            .field("ws_url", &self.ws_url)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    /// A minter for the one room `room`.
    pub fn new(
        livekit_host: &str,
        api_key: &str,
        api_secret: &str,
        room: &str,
        ttl: Duration,
    ) -> Self {
        let one = RoomShards::new(room, 1).unwrap_or_else(|_| unreachable!("1 room is valid"));
        Self::sharded(livekit_host, api_key, api_secret, one, ttl)
    }

    /// A minter for the rooms `rooms`.
    pub fn sharded(
        livekit_host: &str,
        api_key: &str,
        api_secret: &str,
        rooms: RoomShards,
        ttl: Duration,
    ) -> Self {
        TokenMinter {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            rooms,
            ttl,
            ws_url: client_url(livekit_host),
        }
    }

    /// Room 0's name: the configured room.
    pub fn room(&self) -> &str {
        self.rooms.base()
    }

    /// The rooms tokens are minted for.
    pub fn rooms(&self) -> &RoomShards {
        &self.rooms
    }

    /// A JWT for `identity` with its privacy in the participant metadata: join room 0,
    /// subscribe and publish data only, no media, no own-metadata updates.
    pub fn mint(&self, identity: &str, privacy: Privacy) -> Result<String, TokenError> {
        self.mint_in(identity, privacy, 0, None)
    }

    /// [`TokenMinter::mint`] for room `index` (checked by the caller against
    /// [`TokenMinter::rooms`]): the same grants and metadata in every room. With `chat_key`
    /// (end-to-end encryption, docs/e2ee.md) the token also carries the participant attribute
    /// `chat_key`; without it the token is exactly the reference's. The grant
    /// `can_update_own_metadata: false` is what makes the attribute trustworthy: a client
    /// cannot set or change its own attributes, at join or later, only this token (or the
    /// RoomService) can.
    pub fn mint_in(
        &self,
        identity: &str,
        privacy: Privacy,
        index: u32,
        chat_key: Option<&pchat_core::chat_key::ChatKey>,
    ) -> Result<String, TokenError> {
        let grants = VideoGrants {
            room_join: true,
            room: self.rooms.name(index),
            can_publish: Some(false),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            can_update_own_metadata: Some(false),
            ..Default::default()
        };
        let mut token = AccessToken::with_api_key(&self.api_key, &self.api_secret)
            .with_identity(identity)
            .with_metadata(&privacy.participant_metadata());
        if let Some(key) = chat_key {
            token = token.with_attributes([(pchat_core::chat_key::ATTRIBUTE, key.to_hex())]);
        }
        token
            .with_grants(grants)
            .with_ttl(self.ttl)
            .to_jwt()
            .map_err(|e| TokenError(e.to_string()))
    }

    /// `livekit:<ws url>?access_token=<jwt>`, the answer of `GET /private-messages/token`.
    pub fn adapter(&self, jwt: &str) -> String {
        Self::adapter_at(&self.ws_url, jwt)
    }

    /// [`TokenMinter::adapter`] naming the LiveKit node at `ws_url`.
    pub fn adapter_at(ws_url: &str, jwt: &str) -> String {
        format!("livekit:{ws_url}?access_token={jwt}")
    }
}

/// The ws(s):// form of a LiveKit URL given as ws(s) or http(s).
pub fn client_url(host: &str) -> String {
    let host = host.trim_end_matches('/');
    if let Some(rest) = host.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = host.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        host.to_owned()
    }
}
