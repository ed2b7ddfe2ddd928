//! The social service (dcl-rpc over WebSocket, `SocialService` v2), for one player.
//!
//! - [`SocialClient`]: one connection and the whole social API a player needs, typed: friendship
//!   requests and answers, blocks, the private-messages privacy setting, every list (all pages),
//!   and [`SocialClient::updates`], one typed stream of [`SocialUpdate`]s merging the
//!   friendship, block and friend-connectivity streams.
//! - [`SocialSession`] (module [`session`]): a connection that recovers by itself and keeps the
//!   player's whole [`FullView`] current; what the `PrivateChat` object builds on.
//!
//! The dcl-rpc machinery (reader task, calls by message number, acknowledged streams) is the
//! `dcl-rpc-client` crate's.
//!
//! [`SocialClient::keep_current`] (the older way to feed a [`ChatClient`](crate::ChatClient)'s
//! view) reads the view again whenever a friendship or block update arrives. A read that fails
//! (the service, or its database, is unreachable) never replaces the view: the last good view
//! stays, and [`SocialClient::view_status`] says it is [`ViewStatus::Stale`] and why. It then
//! reads again after 1 s, 2 s, 4 s, … (at most every [`RETRY_MAX`]) and at the next update,
//! until a read succeeds ([`ViewStatus::Current`] again).

pub mod session;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chat_core::SocialView;
pub use dcl_rpc_client::{ClientConfig, RpcError};
use dcl_rpc_client::{Module, RpcClient, ServerStream};
use pchat_core::{Privacy, normalize_address};
use social_proto::v2;
use tokio::sync::mpsc;

pub use session::{
    ConnectionState, EVENT_BUFFER, FullView, SessionConfig, SessionEvent, SocialSession,
};

/// Items read per page of a list.
const PAGE: i32 = 1000;
/// Longest list read (pages stop there; a bound on what a service can make us hold).
pub const MAX_LIST: usize = 100_000;
/// First pause before reading the view again after a failed read; it doubles each time.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between reads of a stale view.
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Typed updates queued by [`SocialClient::updates`] and not yet taken.
pub const UPDATE_BUFFER: usize = 64;

/// Errors talking to the social service.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SocialError {
    /// The connection or the dcl-rpc layer: cannot connect, closed (with its code), timeout,
    /// a dcl-rpc remote error, a protocol violation.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The service answered the call with one of its error arms (invalid request, invalid
    /// friendship action, internal error, profile not found).
    #[error("{procedure}: the social service refused: {kind}: {message}")]
    Refused {
        procedure: &'static str,
        kind: &'static str,
        message: String,
    },
    /// The answer lacks what the call must return (e.g. no privacy setting, or one this client
    /// does not know): never replaced by a default.
    #[error("{procedure}: unexpected answer: {what}")]
    BadAnswer {
        procedure: &'static str,
        what: String,
    },
    /// An address that is not a wallet address; nothing was sent.
    #[error("invalid address {0:?}")]
    BadAddress(String),
    /// The session is not connected right now (see [`SocialSession`]); nothing was sent.
    #[error("not connected to the social service")]
    NotConnected,
}

/// How current the social view that [`SocialClient::keep_current`] (or
/// [`SocialClient::refresh`]) maintains is.
#[derive(Debug, Clone)]
pub enum ViewStatus {
    /// No view was read yet.
    Unknown,
    /// The last read succeeded: the view is the service's.
    Current,
    /// The last `failures` reads failed, the latest with `error`: the view is the last good
    /// one, unchanged. `keep_current` keeps trying; if the connection closed, it has stopped
    /// (`error` is a [`RpcError::Closed`]) and the caller should connect again.
    Stale { error: SocialError, failures: u32 },
}

impl PartialEq for ViewStatus {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ViewStatus::Unknown, ViewStatus::Unknown) => true,
            (ViewStatus::Current, ViewStatus::Current) => true,
            (
                ViewStatus::Stale { error, failures },
                ViewStatus::Stale {
                    error: e2,
                    failures: f2,
                },
            ) => failures == f2 && error.to_string() == e2.to_string(),
            _ => false,
        }
    }
}

/// A pending friendship request (incoming or sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendRequest {
    /// The other side, lower case.
    pub address: String,
    /// The message sent with the request, if any.
    pub message: Option<String>,
    /// When it was made (milliseconds since the epoch, the service's clock).
    pub created_at: i64,
    /// The service's id of the friendship.
    pub id: String,
}

/// Blocks in both directions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockingStatus {
    /// Users I blocked, lower case.
    pub blocked: HashSet<String>,
    /// Users who blocked me, lower case.
    pub blocked_by: HashSet<String>,
}

/// A friend's connectivity, as the service reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Connectivity {
    Online,
    Offline,
    Away,
}

impl Connectivity {
    /// Online or away (connected to the service).
    pub fn is_online(self) -> bool {
        !matches!(self, Connectivity::Offline)
    }
}

/// One change pushed by the service, typed. What the streams send (see `crates/social`):
/// the friendship stream tells the other side of every request, accept, reject, cancel and
/// delete; the block stream tells the blocked user of a block and an unblock; the connectivity
/// stream starts with the friends online now, then every change.
///
/// (A block also ends the friendship or request between the two; the friendship stream then
/// carries a "block" item, which is folded into [`SocialUpdate::BlockedBy`] from the block
/// stream and not reported twice.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocialUpdate {
    /// `from` asked me to be friends.
    RequestReceived {
        from: String,
        message: Option<String>,
        created_at: i64,
    },
    /// `by` accepted my request.
    Accepted { by: String },
    /// `by` rejected my request.
    Rejected { by: String },
    /// `by` withdrew their request to me.
    Cancelled { by: String },
    /// `by` ended our friendship.
    Deleted { by: String },
    /// `address` blocked me (any friendship or request between us ended).
    BlockedBy { address: String },
    /// `address` unblocked me.
    UnblockedBy { address: String },
    /// A friend's connectivity.
    FriendConnectivity {
        address: String,
        status: Connectivity,
    },
    /// The friendship stream's "block" item: `by` blocked me and our friendship (or request)
    /// ended. [`SocialClient::updates`] does not report it (the block stream's
    /// [`SocialUpdate::BlockedBy`] does); kept for callers decoding the stream themselves.
    FriendshipBlocked { by: String },
}

/// A connection to the social service for one user.
#[derive(Clone)]
pub struct SocialClient {
    module: Module,
    me: String,
    status: Arc<tokio::sync::watch::Sender<ViewStatus>>,
}

fn lower(s: String) -> String {
    s.to_ascii_lowercase()
}

fn address_of(procedure: &'static str, user: Option<v2::User>) -> Result<String, SocialError> {
    user.map(|u| lower(u.address))
        .filter(|a| !a.is_empty())
        .ok_or(SocialError::BadAnswer {
            procedure,
            what: "no user".into(),
        })
}

fn user(address: &str) -> Result<Option<v2::User>, SocialError> {
    let address =
        normalize_address(address).map_err(|_| SocialError::BadAddress(address.to_owned()))?;
    Ok(Some(v2::User { address }))
}

fn privacy_from(p: i32, procedure: &'static str) -> Result<Privacy, SocialError> {
    match v2::PrivateMessagePrivacySetting::try_from(p) {
        Ok(v2::PrivateMessagePrivacySetting::All) => Ok(Privacy::All),
        Ok(v2::PrivateMessagePrivacySetting::OnlyFriends) => Ok(Privacy::OnlyFriends),
        Err(_) => Err(SocialError::BadAnswer {
            procedure,
            what: format!("unknown private_messages_privacy {p}"),
        }),
    }
}

fn privacy_to(p: Privacy) -> i32 {
    match p {
        Privacy::All => v2::PrivateMessagePrivacySetting::All as i32,
        Privacy::OnlyFriends => v2::PrivateMessagePrivacySetting::OnlyFriends as i32,
    }
}

fn refused(procedure: &'static str, kind: &'static str, message: Option<String>) -> SocialError {
    SocialError::Refused {
        procedure,
        kind,
        message: message.unwrap_or_default(),
    }
}

/// BlockUser and UnblockUser: the same request and answers under two sets of proto types.
macro_rules! block_method {
    ($(#[$doc:meta])* $name:ident, $procedure:literal, $payload:ident, $response:ident, $module:ident) => {
        $(#[$doc])*
        pub async fn $name(&self, address: &str) -> Result<(), SocialError> {
            use v2::$module::Response as R;
            const P: &str = $procedure;
            let r: v2::$response = self
                .call(
                    P,
                    &v2::$payload {
                        user: user(address)?,
                    },
                )
                .await?;
            match r.response {
                Some(R::Ok(_)) => Ok(()),
                Some(R::InternalServerError(e)) => Err(refused(P, "internal error", e.message)),
                Some(R::InvalidRequest(e)) => Err(refused(P, "invalid request", e.message)),
                Some(R::ProfileNotFound(e)) => Err(refused(P, "profile not found", e.message)),
                None => Err(SocialError::BadAnswer {
                    procedure: P,
                    what: "no response".into(),
                }),
            }
        }
    };
}

impl SocialClient {
    /// Connects to the social service at `url` (`ws://…/`) as `identity`'s owner, with the
    /// default dcl-rpc limits.
    pub async fn connect(
        url: &str,
        identity: &authchain::Identity,
    ) -> Result<SocialClient, SocialError> {
        Self::connect_with(url, identity, ClientConfig::default()).await
    }

    /// [`SocialClient::connect`] with explicit dcl-rpc limits.
    pub async fn connect_with(
        url: &str,
        identity: &authchain::Identity,
        config: ClientConfig,
    ) -> Result<SocialClient, SocialError> {
        let client = RpcClient::connect_as(url, identity, config).await?;
        let module = client.module("pchat-client", "SocialService").await?;
        Ok(SocialClient {
            module,
            me: identity.address().to_lower_hex(),
            status: Arc::new(tokio::sync::watch::Sender::new(ViewStatus::Unknown)),
        })
    }

    /// My address, lower case.
    pub fn address(&self) -> &str {
        &self.me
    }

    /// Why the connection ended (`None` while it is open).
    pub fn closed(&self) -> Option<RpcError> {
        self.module.client().closed()
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.module.client().close().await;
    }

    /// A unary call by procedure name (for what the typed methods do not cover).
    pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        name: &str,
        req: &Req,
    ) -> Result<Resp, SocialError> {
        Ok(self.module.call(name, req).await?)
    }

    /// Opens a server stream by procedure name.
    pub async fn stream<Item: prost::Message + Default>(
        &self,
        name: &str,
    ) -> Result<ServerStream<Item>, SocialError> {
        Ok(self.module.server_stream(name, &()).await?)
    }

    // ---- actions ----

    async fn upsert(
        &self,
        action: v2::upsert_friendship_payload::Action,
    ) -> Result<v2::upsert_friendship_response::Accepted, SocialError> {
        use v2::upsert_friendship_response::Response as R;
        const P: &str = "UpsertFriendship";
        let r: v2::UpsertFriendshipResponse = self
            .call(
                P,
                &v2::UpsertFriendshipPayload {
                    action: Some(action),
                },
            )
            .await?;
        match r.response {
            Some(R::Accepted(a)) => Ok(a),
            Some(R::InvalidFriendshipAction(e)) => {
                Err(refused(P, "invalid friendship action", e.message))
            }
            Some(R::InternalServerError(e)) => Err(refused(P, "internal error", e.message)),
            Some(R::InvalidRequest(e)) => Err(refused(P, "invalid request", e.message)),
            None => Err(SocialError::BadAnswer {
                procedure: P,
                what: "no response".into(),
            }),
        }
    }

    /// Asks `to` to be friends, with an optional message.
    pub async fn request_friendship(
        &self,
        to: &str,
        message: Option<&str>,
    ) -> Result<(), SocialError> {
        use v2::upsert_friendship_payload::{Action, RequestPayload};
        self.upsert(Action::Request(RequestPayload {
            user: user(to)?,
            message: message.map(str::to_owned),
        }))
        .await
        .map(|_| ())
    }

    /// Accepts `from`'s request.
    pub async fn accept(&self, from: &str) -> Result<(), SocialError> {
        use v2::upsert_friendship_payload::{AcceptPayload, Action};
        self.upsert(Action::Accept(AcceptPayload { user: user(from)? }))
            .await
            .map(|_| ())
    }

    /// Rejects `from`'s request.
    pub async fn reject(&self, from: &str) -> Result<(), SocialError> {
        use v2::upsert_friendship_payload::{Action, RejectPayload};
        self.upsert(Action::Reject(RejectPayload { user: user(from)? }))
            .await
            .map(|_| ())
    }

    /// Withdraws my request to `to`.
    pub async fn cancel(&self, to: &str) -> Result<(), SocialError> {
        use v2::upsert_friendship_payload::{Action, CancelPayload};
        self.upsert(Action::Cancel(CancelPayload { user: user(to)? }))
            .await
            .map(|_| ())
    }

    /// Ends my friendship with `friend`.
    pub async fn delete_friendship(&self, friend: &str) -> Result<(), SocialError> {
        use v2::upsert_friendship_payload::{Action, DeletePayload};
        self.upsert(Action::Delete(DeletePayload {
            user: user(friend)?,
        }))
        .await
        .map(|_| ())
    }

    block_method!(
        /// Blocks `address` (ends any friendship or request with them).
        block,
        "BlockUser",
        BlockUserPayload,
        BlockUserResponse,
        block_user_response
    );

    block_method!(
        /// Unblocks `address`.
        unblock,
        "UnblockUser",
        UnblockUserPayload,
        UnblockUserResponse,
        unblock_user_response
    );

    /// Sets who may write to me (UpsertSocialSettings); returns the setting now stored.
    pub async fn set_privacy(&self, privacy: Privacy) -> Result<Privacy, SocialError> {
        use v2::upsert_social_settings_response::Response as R;
        const P: &str = "UpsertSocialSettings";
        let r: v2::UpsertSocialSettingsResponse = self
            .call(
                P,
                &v2::UpsertSocialSettingsPayload {
                    private_messages_privacy: Some(privacy_to(privacy)),
                    ..Default::default()
                },
            )
            .await?;
        match r.response {
            Some(R::Ok(s)) => privacy_from(s.private_messages_privacy, P),
            Some(R::InternalServerError(e)) => Err(refused(P, "internal error", e.message)),
            Some(R::InvalidRequest(e)) => Err(refused(P, "invalid request", e.message)),
            None => Err(SocialError::BadAnswer {
                procedure: P,
                what: "no response".into(),
            }),
        }
    }

    // ---- lists ----

    /// My private-messages setting.
    pub async fn settings(&self) -> Result<Privacy, SocialError> {
        use v2::get_social_settings_response::Response as R;
        const P: &str = "GetSocialSettings";
        let r: v2::GetSocialSettingsResponse = self.call(P, &()).await?;
        match r.response {
            Some(R::Ok(ok)) => match ok.settings {
                Some(s) => privacy_from(s.private_messages_privacy, P),
                None => Err(SocialError::BadAnswer {
                    procedure: P,
                    what: "no settings".into(),
                }),
            },
            Some(R::InternalServerError(e)) => Err(refused(P, "internal error", e.message)),
            None => Err(SocialError::BadAnswer {
                procedure: P,
                what: "no response".into(),
            }),
        }
    }

    /// Every page of a paginated procedure, [`PAGE`] items at a time: `page` asks for the page at
    /// the given pagination and gives back its items and the total the server reported. It stops
    /// at an empty page, at that total, or once [`MAX_LIST`] items are in.
    async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, SocialError>
    where
        F: FnMut(v2::Pagination) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<T>, Option<i32>), SocialError>>,
    {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let (items, total) = page(v2::Pagination {
                limit: PAGE,
                offset,
            })
            .await?;
            let n = items.len();
            out.extend(items);
            let total = total.map(|t| t.max(0) as usize);
            if n == 0 || out.len() >= MAX_LIST || total.is_some_and(|t| out.len() >= t) {
                return Ok(out);
            }
            offset = offset.saturating_add(n as i32);
        }
    }

    /// All my friends (every page), lower case.
    pub async fn friends(&self) -> Result<HashSet<String>, SocialError> {
        let friends = Self::all_pages(|pagination| async move {
            let page: v2::PaginatedFriendsProfilesResponse = self
                .call(
                    "GetFriends",
                    &v2::GetFriendsPayload {
                        pagination: Some(pagination),
                    },
                )
                .await?;
            let total = page.pagination_data.map(|p| p.total);
            Ok((
                page.friends.into_iter().map(|f| lower(f.address)).collect(),
                total,
            ))
        })
        .await?;
        Ok(friends.into_iter().collect())
    }

    async fn requests(&self, incoming: bool) -> Result<Vec<FriendRequest>, SocialError> {
        use v2::paginated_friendship_requests_response::Response as R;
        let procedure = if incoming {
            "GetPendingFriendshipRequests"
        } else {
            "GetSentFriendshipRequests"
        };
        Self::all_pages(|pagination| async move {
            let page: v2::PaginatedFriendshipRequestsResponse = self
                .call(
                    procedure,
                    &v2::GetFriendshipRequestsPayload {
                        pagination: Some(pagination),
                    },
                )
                .await?;
            let requests = match page.response {
                Some(R::Requests(r)) => r.requests,
                Some(R::InternalServerError(e)) => {
                    return Err(refused(procedure, "internal error", e.message));
                }
                None => {
                    return Err(SocialError::BadAnswer {
                        procedure,
                        what: "no response".into(),
                    });
                }
            };
            let requests = requests
                .into_iter()
                .map(|r| {
                    let friend = r.friend.ok_or_else(|| SocialError::BadAnswer {
                        procedure,
                        what: "a request without its user".into(),
                    })?;
                    Ok(FriendRequest {
                        address: lower(friend.address),
                        message: r.message,
                        created_at: r.created_at,
                        id: r.id,
                    })
                })
                .collect::<Result<Vec<_>, SocialError>>()?;
            Ok((requests, page.pagination_data.map(|p| p.total)))
        })
        .await
    }

    /// Requests made to me and not answered yet (every page), with their message and time.
    pub async fn pending_requests(&self) -> Result<Vec<FriendRequest>, SocialError> {
        self.requests(true).await
    }

    /// My requests not answered yet (every page).
    pub async fn sent_requests(&self) -> Result<Vec<FriendRequest>, SocialError> {
        self.requests(false).await
    }

    /// The users I blocked (every page of GetBlockedUsers), lower case.
    pub async fn blocked(&self) -> Result<HashSet<String>, SocialError> {
        let blocked = Self::all_pages(|pagination| async move {
            let page: v2::GetBlockedUsersResponse = self
                .call(
                    "GetBlockedUsers",
                    &v2::GetBlockedUsersPayload {
                        pagination: Some(pagination),
                    },
                )
                .await?;
            let total = page.pagination_data.map(|p| p.total);
            Ok((
                page.profiles
                    .into_iter()
                    .map(|p| lower(p.address))
                    .collect(),
                total,
            ))
        })
        .await?;
        Ok(blocked.into_iter().collect())
    }

    /// Blocks in both directions (GetBlockingStatus).
    pub async fn blocking_status(&self) -> Result<BlockingStatus, SocialError> {
        let r: v2::GetBlockingStatusResponse = self.call("GetBlockingStatus", &()).await?;
        Ok(BlockingStatus {
            blocked: r.blocked_users.into_iter().map(lower).collect(),
            blocked_by: r.blocked_by_users.into_iter().map(lower).collect(),
        })
    }

    /// My social state as the inbox filter needs it.
    pub async fn view(&self) -> Result<SocialView, SocialError> {
        let privacy = self.settings().await?;
        let friends = self.friends().await?;
        let blocking = self.blocking_status().await?;
        Ok(SocialView {
            me: self.me.clone(),
            privacy,
            friends,
            blocked: blocking.blocked,
            blocked_by: blocking.blocked_by,
        })
    }

    // ---- updates ----

    /// Opens the friendship, block and friend-connectivity streams and merges them into one
    /// stream of typed updates. Returns once all three are open. Bounded: at most
    /// [`UPDATE_BUFFER`] updates wait to be taken; while they do, the streams are not read
    /// further (and not acknowledged), so the service holds the rest (its own per-stream
    /// bounds apply). The receiver ends (`None` after its last update) when the connection
    /// ends; [`SocialClient::closed`] then says why.
    pub async fn updates(&self) -> Result<mpsc::Receiver<SocialUpdate>, SocialError> {
        let friendships: ServerStream<v2::FriendshipUpdate> =
            self.stream("SubscribeToFriendshipUpdates").await?;
        let blocks: ServerStream<v2::BlockUpdate> = self.stream("SubscribeToBlockUpdates").await?;
        let connectivity: ServerStream<v2::FriendConnectivityUpdate> =
            self.stream("SubscribeToFriendConnectivityUpdates").await?;
        let (tx, rx) = mpsc::channel(UPDATE_BUFFER);
        tokio::spawn(merge(friendships, blocks, connectivity, tx));
        Ok(rx)
    }

    // ---- the older view-keeping API (used by `pchat chat`) ----

    /// Reads the view again and gives it to `chat` (after the user's own changes, which the
    /// update streams do not report back). On failure `chat` keeps its view, the error is
    /// returned and [`SocialClient::view_status`] says the view is stale.
    pub async fn refresh(&self, chat: &crate::ChatClient) -> Result<(), SocialError> {
        self.refresh_view(&chat.view_handle()).await
    }

    /// [`SocialClient::refresh`] for a view held elsewhere (`me` is kept).
    pub async fn refresh_view(&self, view: &RwLock<SocialView>) -> Result<(), SocialError> {
        match self.view().await {
            Ok(v) => {
                crate::set_view(view, v);
                self.status.send_replace(ViewStatus::Current);
                Ok(())
            }
            Err(e) => {
                self.mark_stale(e.clone());
                Err(e)
            }
        }
    }

    /// Records a failed read: the view is the last good one.
    fn mark_stale(&self, error: SocialError) {
        tracing::warn!(%error, "cannot read the social view; keeping the last good one");
        self.status.send_modify(|s| {
            let failures = match s {
                ViewStatus::Stale { failures, .. } => failures.saturating_add(1),
                _ => 1,
            };
            *s = ViewStatus::Stale { error, failures };
        });
    }

    /// Whether the view is current, or stale and why.
    pub fn view_status(&self) -> ViewStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change of [`SocialClient::view_status`].
    pub fn watch_view_status(&self) -> tokio::sync::watch::Receiver<ViewStatus> {
        self.status.subscribe()
    }

    /// Keeps `chat`'s social view current: now, and again after every friendship or block
    /// update (until the connection closes). Returns once the first view is set. A failed
    /// read keeps the last good view and is retried (see the module docs).
    pub async fn keep_current(&self, chat: &crate::ChatClient) -> Result<(), SocialError> {
        self.keep_view_current(chat.view_handle()).await
    }

    /// [`SocialClient::keep_current`] for a view held elsewhere (`me` is kept).
    pub async fn keep_view_current(
        &self,
        view: Arc<RwLock<SocialView>>,
    ) -> Result<(), SocialError> {
        let mut friendships: ServerStream<v2::FriendshipUpdate> =
            self.stream("SubscribeToFriendshipUpdates").await?;
        let mut blocks: ServerStream<v2::BlockUpdate> =
            self.stream("SubscribeToBlockUpdates").await?;
        self.refresh_view(&view).await?;
        let client = self.clone();
        tokio::spawn(async move {
            let mut retry = RETRY_FIRST;
            loop {
                let stale = matches!(client.view_status(), ViewStatus::Stale { .. });
                let more = tokio::select! {
                    u = friendships.next() => matches!(u, Ok(Some(_))),
                    u = blocks.next() => matches!(u, Ok(Some(_))),
                    _ = tokio::time::sleep(retry), if stale => true,
                };
                if !more {
                    // The connection closed: nothing keeps the view current any more.
                    let error = client
                        .closed()
                        .unwrap_or_else(|| RpcError::Protocol("an update stream ended".into()));
                    client.mark_stale(SocialError::Rpc(error));
                    break;
                }
                match client.refresh_view(&view).await {
                    Ok(()) => retry = RETRY_FIRST,
                    Err(_) if stale => retry = (retry * 2).min(RETRY_MAX),
                    Err(_) => retry = RETRY_FIRST,
                }
            }
        });
        Ok(())
    }
}

/// Decodes one friendship item.
pub fn friendship_update(u: v2::FriendshipUpdate) -> Result<SocialUpdate, SocialError> {
    use v2::friendship_update::Update as U;
    const P: &str = "SubscribeToFriendshipUpdates";
    Ok(match u.update {
        Some(U::Request(r)) => SocialUpdate::RequestReceived {
            from: r
                .friend
                .map(|f| lower(f.address))
                .filter(|a| !a.is_empty())
                .ok_or(SocialError::BadAnswer {
                    procedure: P,
                    what: "a request without its user".into(),
                })?,
            message: r.message,
            created_at: r.created_at,
        },
        Some(U::Accept(a)) => SocialUpdate::Accepted {
            by: address_of(P, a.user)?,
        },
        Some(U::Reject(a)) => SocialUpdate::Rejected {
            by: address_of(P, a.user)?,
        },
        Some(U::Cancel(a)) => SocialUpdate::Cancelled {
            by: address_of(P, a.user)?,
        },
        Some(U::Delete(a)) => SocialUpdate::Deleted {
            by: address_of(P, a.user)?,
        },
        Some(U::Block(a)) => SocialUpdate::FriendshipBlocked {
            by: address_of(P, a.user)?,
        },
        None => {
            return Err(SocialError::BadAnswer {
                procedure: P,
                what: "an empty update".into(),
            });
        }
    })
}

/// Decodes one block item.
pub fn block_update(u: v2::BlockUpdate) -> Result<SocialUpdate, SocialError> {
    let address = lower(u.address);
    if address.is_empty() {
        return Err(SocialError::BadAnswer {
            procedure: "SubscribeToBlockUpdates",
            what: "no address".into(),
        });
    }
    Ok(if u.is_blocked {
        SocialUpdate::BlockedBy { address }
    } else {
        SocialUpdate::UnblockedBy { address }
    })
}

/// Decodes one connectivity item.
pub fn connectivity_update(u: v2::FriendConnectivityUpdate) -> Result<SocialUpdate, SocialError> {
    const P: &str = "SubscribeToFriendConnectivityUpdates";
    let address = u
        .friend
        .map(|f| lower(f.address))
        .filter(|a| !a.is_empty())
        .ok_or(SocialError::BadAnswer {
            procedure: P,
            what: "no friend".into(),
        })?;
    let status = match v2::ConnectivityStatus::try_from(u.status) {
        Ok(v2::ConnectivityStatus::Online) => Connectivity::Online,
        Ok(v2::ConnectivityStatus::Offline) => Connectivity::Offline,
        Ok(v2::ConnectivityStatus::Away) => Connectivity::Away,
        Err(_) => {
            return Err(SocialError::BadAnswer {
                procedure: P,
                what: format!("unknown status {}", u.status),
            });
        }
    };
    Ok(SocialUpdate::FriendConnectivity { address, status })
}

/// Reads the three streams into `tx` until the connection ends, a stream fails, or the
/// receiver is gone. An item that cannot be decoded is logged and skipped.
async fn merge(
    mut friendships: ServerStream<v2::FriendshipUpdate>,
    mut blocks: ServerStream<v2::BlockUpdate>,
    mut connectivity: ServerStream<v2::FriendConnectivityUpdate>,
    tx: mpsc::Sender<SocialUpdate>,
) {
    loop {
        // Wait for room first, so an item is only taken (and acknowledged) when it can be
        // queued: the service's backpressure reaches a slow reader.
        let Ok(permit) = tx.reserve().await else {
            return;
        };
        let update = tokio::select! {
            // The receiver is gone: stop, so the streams (and the connection) are dropped.
            _ = tx.closed() => return,
            u = friendships.next() => u.map(|u| u.map(friendship_update)),
            u = blocks.next() => u.map(|u| u.map(block_update)),
            u = connectivity.next() => u.map(|u| u.map(connectivity_update)),
        };
        match update {
            Ok(Some(Ok(SocialUpdate::FriendshipBlocked { by }))) => {
                tracing::debug!(%by, "friendship ended by a block (reported by the block stream)");
            }
            Ok(Some(Ok(u))) => permit.send(u),
            Ok(Some(Err(e))) => tracing::warn!(error = %e, "skipping a social update"),
            Ok(None) => {
                tracing::warn!("a social update stream ended");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "social update streams ended");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A server holding `len` items that reports `total` (or none), answering pages of at most
    /// `limit` items; records the offsets asked for.
    async fn fetch(len: usize, total: Option<i32>) -> (Vec<usize>, Vec<i32>) {
        let asked = Mutex::new(Vec::new());
        let items = SocialClient::all_pages(|p| {
            asked.lock().unwrap().push(p.offset);
            async move {
                let from = (p.offset as usize).min(len);
                let to = (from + p.limit as usize).min(len);
                Ok(((from..to).collect(), total))
            }
        })
        .await
        .unwrap();
        (items, asked.into_inner().unwrap())
    }

    #[tokio::test]
    async fn all_pages_follows_offsets_until_the_total() {
        let (items, asked) = fetch(2_500, Some(2_500)).await;
        assert_eq!(items, (0..2_500).collect::<Vec<_>>());
        assert_eq!(asked, vec![0, 1_000, 2_000]);
    }

    #[tokio::test]
    async fn all_pages_without_a_total_stops_at_an_empty_page() {
        let (items, asked) = fetch(1_000, None).await;
        assert_eq!(items.len(), 1_000);
        assert_eq!(asked, vec![0, 1_000]);
        let (items, asked) = fetch(0, Some(0)).await;
        assert!(items.is_empty());
        assert_eq!(asked, vec![0]);
    }

    #[tokio::test]
    async fn all_pages_stops_at_the_list_bound() {
        let (items, asked) = fetch(MAX_LIST + 5_000, None).await;
        assert_eq!(items.len(), MAX_LIST);
        assert_eq!(asked.len(), MAX_LIST / PAGE as usize);
    }

    #[tokio::test]
    async fn all_pages_passes_errors_on() {
        let r: Result<Vec<u8>, _> = SocialClient::all_pages(|_| async {
            Err(SocialError::BadAnswer {
                procedure: "GetFriends",
                what: "no response".into(),
            })
        })
        .await;
        assert!(matches!(r, Err(SocialError::BadAnswer { .. })));
    }
}
