//! The SocialService procedures: decode the request, apply the domain rules through the store,
//! publish updates, encode the response. Business errors travel inside the response's `oneof`.

use pchat_core::now_ms;
use std::future::Future;
use std::sync::Arc;

use dcl_rpc_server::{CallContext, Module, Payload, Procedure, RpcError};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use pchat_core::{Privacy, normalize_address, normalize_address_owned};
use prost::Message;
use social_core::{
    Action, BlockedMessagesVisibility, FriendshipError, FriendshipStatus, SettingsChange,
    SituationReactions, status_for,
};
use social_proto::v2;
use social_proto::{InternalServerError, InvalidFriendshipAction, InvalidRequest};
use social_store::{Direction, Page, Store, StoreError};

use crate::bus::{Bus, Update};
use crate::cache::{FriendList, Invalidation, MAX_CACHED_FRIENDS, ReadCache};
use crate::gatekeeper::GatekeeperNotifier;
use crate::presence::Presence;
use crate::profiles::{Profile, ProfileSource};
use crate::ratelimit::{FriendshipLimiter, Scope};

/// Most addresses in one GetPrivateMessagesSettings call.
pub const MAX_SETTINGS_USERS: usize = 50;
/// Page size when the request has none.
pub const DEFAULT_PAGE: i64 = 50;
/// Largest page accepted.
pub const MAX_PAGE: i64 = 1000;

/// The service state shared by every connection.
pub struct Social {
    pub store: Store,
    pub bus: Bus,
    pub gatekeeper: Arc<dyn GatekeeperNotifier>,
    pub cache: Arc<ReadCache>,
    pub profiles: Arc<dyn ProfileSource>,
    presence: Presence,
    /// Limits on friendship actions, blocks and unblocks (default: in memory, default limits).
    pub limiter: FriendshipLimiter,
}

fn internal(e: impl std::fmt::Display) -> InternalServerError {
    tracing::error!(error = %e, "social service internal error");
    InternalServerError {
        message: Some("Internal server error".into()),
    }
}

/// A failed read of a procedure whose response has no error arm (GetFriends, GetMutualFriends,
/// GetBlockedUsers, GetBlockingStatus, the connectivity stream's snapshot): a dcl-rpc remote
/// error, never an empty or default answer the client would take for the truth.
fn read_failed(e: impl std::fmt::Display) -> RpcError {
    tracing::error!(error = %e, "social service read failed");
    RpcError::new("Internal server error: the social data could not be read; try again")
}

fn invalid(message: impl Into<String>) -> InvalidRequest {
    InvalidRequest {
        message: Some(message.into()),
    }
}

/// (limit, offset) from an optional Pagination, clamped.
fn page(p: Option<v2::Pagination>) -> (i64, i64) {
    match p {
        Some(p) => {
            let limit = if p.limit <= 0 {
                DEFAULT_PAGE
            } else {
                i64::from(p.limit).min(MAX_PAGE)
            };
            (limit, i64::from(p.offset.max(0)))
        }
        None => (DEFAULT_PAGE, 0),
    }
}

/// The response's pagination: both numbers saturate at `i32::MAX` (the wire type) instead of
/// wrapping around (an offset near `i32::MAX` with a page size of 1 used to give page −2³¹).
fn paginated(total: i64, limit: i64, offset: i64) -> v2::PaginatedResponse {
    v2::PaginatedResponse {
        total: i32::try_from(total.max(0)).unwrap_or(i32::MAX),
        page: i32::try_from(offset.max(0) / limit.max(1) + 1).unwrap_or(i32::MAX),
    }
}

fn privacy_to_proto(p: Privacy) -> i32 {
    match p {
        Privacy::All => v2::PrivateMessagePrivacySetting::All as i32,
        Privacy::OnlyFriends => v2::PrivateMessagePrivacySetting::OnlyFriends as i32,
    }
}

fn visibility_to_proto(v: BlockedMessagesVisibility) -> i32 {
    match v {
        BlockedMessagesVisibility::ShowMessages => {
            v2::BlockedUsersMessagesVisibilitySetting::ShowMessages as i32
        }
        BlockedMessagesVisibility::DoNotShowMessages => {
            v2::BlockedUsersMessagesVisibilitySetting::DoNotShowMessages as i32
        }
    }
}

fn status_to_proto(s: FriendshipStatus) -> i32 {
    use v2::FriendshipStatus as P;
    (match s {
        FriendshipStatus::RequestSent => P::RequestSent,
        FriendshipStatus::RequestReceived => P::RequestReceived,
        FriendshipStatus::Canceled => P::Canceled,
        FriendshipStatus::Accepted => P::Accepted,
        FriendshipStatus::Rejected => P::Rejected,
        FriendshipStatus::Deleted => P::Deleted,
        FriendshipStatus::Blocked => P::Blocked,
        FriendshipStatus::None => P::None,
        FriendshipStatus::BlockedBy => P::BlockedBy,
    }) as i32
}

/// The address inside an optional `User`, validated and lower-cased.
fn user_address(user: Option<&v2::User>) -> Result<String, InvalidRequest> {
    let user = user.ok_or_else(|| invalid("missing user"))?;
    normalize_address(&user.address)
        .map_err(|_| invalid(format!("invalid address {:?}", user.address)))
}

/// Wraps a typed unary handler as a procedure.
fn unary<Req, Resp, F, Fut>(social: &Arc<Social>, f: F) -> Procedure
where
    Req: Message + Default + 'static,
    Resp: Message + 'static,
    F: Fn(Arc<Social>, CallContext, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let social = social.clone();
    let f = Arc::new(f);
    Procedure::unary(move |ctx, payload: Payload| {
        let (social, f) = (social.clone(), f.clone());
        async move {
            let req = Req::decode(payload.as_slice())
                .map_err(|e| RpcError::new(format!("invalid request payload: {e}")))?;
            Ok(f(social, ctx, req).await.encode_to_vec())
        }
    })
}

/// Wraps a typed unary handler that can fail without an error arm in its response: the error
/// is answered as a dcl-rpc remote error.
fn fallible_unary<Req, Resp, F, Fut>(social: &Arc<Social>, f: F) -> Procedure
where
    Req: Message + Default + 'static,
    Resp: Message + 'static,
    F: Fn(Arc<Social>, CallContext, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, RpcError>> + Send + 'static,
{
    let social = social.clone();
    let f = Arc::new(f);
    Procedure::unary(move |ctx, payload: Payload| {
        let (social, f) = (social.clone(), f.clone());
        async move {
            let req = Req::decode(payload.as_slice())
                .map_err(|e| RpcError::new(format!("invalid request payload: {e}")))?;
            Ok(f(social, ctx, req).await?.encode_to_vec())
        }
    })
}

/// A server stream of the updates addressed to the caller that `pick` selects.
fn updates(social: &Arc<Social>, pick: fn(&Update) -> Option<Vec<u8>>) -> Procedure {
    let social = social.clone();
    Procedure::server_stream(move |ctx, _payload| {
        let subscription = social.bus.subscribe(&ctx.address);
        async move {
            let s = subscription.filter_map(move |env| {
                let out = pick(&env.update).map(Ok);
                async move { out }
            });
            Ok(s.boxed() as BoxStream<'static, Result<Payload, RpcError>>)
        }
    })
}

/// Friend connectivity: first an ONLINE item for each friend online now (on any instance), then
/// the changes. The subscription starts before the snapshot is taken, so no change is missed
/// (one may repeat what the snapshot said). If the friend list cannot be read, the stream is
/// refused with a remote error (not opened with an empty snapshot).
fn connectivity_updates(social: &Arc<Social>) -> Procedure {
    let social = social.clone();
    Procedure::server_stream(move |ctx, _payload| {
        let subscription = social.bus.subscribe(&ctx.address);
        let social = social.clone();
        async move {
            let online = social
                .online_friends(&ctx.address)
                .await
                .map_err(read_failed)?;
            let snapshot = futures_util::stream::iter(online.into_iter().map(|friend| {
                Ok(v2::FriendConnectivityUpdate {
                    friend: Some(friend),
                    status: v2::ConnectivityStatus::Online as i32,
                }
                .encode_to_vec())
            }));
            let live = subscription.filter_map(|env| {
                let out = match &env.update {
                    Update::Connectivity(c) => Some(Ok(c.encode_to_vec())),
                    _ => None,
                };
                async move { out }
            });
            Ok(snapshot.chain(live).boxed() as BoxStream<'static, Result<Payload, RpcError>>)
        }
    })
}

fn not_supported(name: &'static str) -> Procedure {
    Procedure::unary(move |_, _| async move {
        Err(RpcError::new(format!(
            "{name} is not supported by this social service"
        )))
    })
}

impl Social {
    pub fn new(
        store: Store,
        bus: Bus,
        gatekeeper: Arc<dyn GatekeeperNotifier>,
        cache: Arc<ReadCache>,
        profiles: Arc<dyn ProfileSource>,
        presence: Presence,
    ) -> Self {
        Social {
            store,
            bus,
            gatekeeper,
            cache,
            profiles,
            presence,
            limiter: FriendshipLimiter::default(),
        }
    }

    /// The same service with `limiter` for friendship actions, blocks and unblocks.
    pub fn with_limiter(mut self, limiter: FriendshipLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// Drops cache entries on every instance when the bus says so. Runs until the bus closes.
    pub fn spawn_cache_listener(&self) {
        let cache = self.cache.clone();
        let mut rx = self.bus.invalidations();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(env) => {
                        if let Update::Invalidate(what) = env.update {
                            cache.invalidate(&env.to, what);
                        }
                    }
                    // Missed some: trust nothing.
                    Err(RecvError::Lagged(_)) => cache.invalidate("", Invalidation::All),
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    /// Tells every instance (this one first, before the caller answers) that `address`'s
    /// `what` changed.
    async fn changed(&self, address: &str, what: Invalidation) {
        self.cache.invalidate(address, what);
        self.bus.publish(address, Update::Invalidate(what)).await;
    }

    /// The profile shown for one address.
    async fn profile(&self, address: &str) -> Profile {
        self.profiles
            .profiles(std::slice::from_ref(&address.to_owned()))
            .await
            .get(address)
    }

    /// A page of friend profiles; a store failure is a remote error (the response has no
    /// error arm, and an empty page would say "no friends").
    async fn friends_page(
        &self,
        result: Result<Page<String>, StoreError>,
        limit: i64,
        offset: i64,
    ) -> Result<v2::PaginatedFriendsProfilesResponse, RpcError> {
        let Page {
            items: friends,
            total,
        } = result.map_err(read_failed)?;
        let profiles = self.profiles.profiles(&friends).await;
        Ok(v2::PaginatedFriendsProfilesResponse {
            friends: friends.iter().map(|f| profiles.get(f).friend()).collect(),
            pagination_data: Some(paginated(total, limit, offset)),
        })
    }

    /// One user's settings (defaults if the user never changed them); a failed read is an
    /// error.
    pub async fn settings_for(
        &self,
        address: &str,
    ) -> Result<social_core::SocialSettings, StoreError> {
        let mut all = self
            .settings_of(std::slice::from_ref(&address.to_owned()))
            .await?;
        all.pop()
            .ok_or_else(|| StoreError::Corrupt("no settings answered for one address".into()))
    }

    /// Settings of each address, in order (defaults for users without a row). A failed read
    /// is an error, never defaults.
    pub async fn settings_of(
        &self,
        addresses: &[String],
    ) -> Result<Vec<social_core::SocialSettings>, StoreError> {
        let mut out = self.cache.settings_many(addresses);
        let missing: Vec<String> = addresses
            .iter()
            .zip(&out)
            .filter(|(_, s)| s.is_none())
            .map(|(a, _)| a.clone())
            .collect();
        if !missing.is_empty() {
            let generation = self.cache.generation();
            let found = self.store.settings_many(&missing).await?;
            for (slot, address) in out.iter_mut().zip(addresses) {
                if slot.is_none() {
                    // The read succeeded and has no row: the user never changed a setting.
                    let s = found.get(address).copied().unwrap_or_default();
                    self.cache.put_settings(generation, address, s);
                    *slot = Some(s);
                }
            }
        }
        // Every slot is filled by now (from the cache or the read above).
        Ok(out.into_iter().flatten().collect())
    }

    /// `address`'s whole friend list when caching is on and it is short enough to cache;
    /// `None` tells the caller to ask the database for just what it needs.
    async fn friend_list(&self, address: &str) -> Result<Option<Arc<FriendList>>, StoreError> {
        if !self.cache.enabled() {
            return Ok(None);
        }
        if let Some(list) = self.cache.friends(address) {
            return Ok(list.is_complete().then_some(list));
        }
        let generation = self.cache.generation();
        let Page {
            items: friends,
            total,
        } = self
            .store
            .friends(address, MAX_CACHED_FRIENDS as i64 + 1, 0)
            .await?;
        let list = self
            .cache
            .put_friends(generation, address, friends, total as usize);
        Ok(list.is_complete().then_some(list))
    }

    /// The `SocialService` module with every procedure of the proto, in order.
    pub fn module(self: &Arc<Self>) -> Module {
        let s = self;
        let mut procedures: Vec<(String, Procedure)> = Vec::new();
        for name in social_proto::SOCIAL_SERVICE_PROCEDURES {
            let p = match *name {
                "GetFriends" => fallible_unary(s, Self::get_friends),
                "GetMutualFriends" => fallible_unary(s, Self::get_mutual_friends),
                "GetPendingFriendshipRequests" => {
                    unary(s, |s, c, r| Self::requests(s, c, r, Direction::Incoming))
                }
                "GetSentFriendshipRequests" => {
                    unary(s, |s, c, r| Self::requests(s, c, r, Direction::Outgoing))
                }
                "UpsertFriendship" => unary(s, Self::upsert_friendship),
                "GetFriendshipStatus" => unary(s, Self::friendship_status),
                "BlockUser" => unary(s, Self::block_user),
                "UnblockUser" => unary(s, Self::unblock_user),
                "GetBlockedUsers" => fallible_unary(s, Self::blocked_users),
                "GetBlockingStatus" => fallible_unary(s, Self::blocking_status),
                "GetSocialSettings" => unary(s, Self::get_settings),
                "UpsertSocialSettings" => unary(s, Self::upsert_settings),
                "GetPrivateMessagesSettings" => unary(s, Self::private_messages_settings),
                "SubscribeToFriendshipUpdates" => updates(s, |u| match u {
                    Update::Friendship(f) => Some(f.encode_to_vec()),
                    _ => None,
                }),
                "SubscribeToBlockUpdates" => updates(s, |u| match u {
                    Update::Block(b) => Some(b.encode_to_vec()),
                    _ => None,
                }),
                "SubscribeToFriendConnectivityUpdates" => connectivity_updates(s),
                other => not_supported(other),
            };
            procedures.push(((*name).to_owned(), p));
        }
        Module {
            name: social_proto::SOCIAL_SERVICE_MODULE.to_owned(),
            procedures,
        }
    }

    // ---------------------------------------------------------------- presence

    /// With Redis: keeps this instance alive in the shared presence and announces the users of
    /// instances that died as offline (see [`crate::presence`]). Stops when the service is gone.
    pub fn spawn_presence_upkeep(self: &Arc<Self>) {
        let Some(period) = self.presence.upkeep_period() else {
            return;
        };
        let social = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(social) = social.upgrade() else {
                    return;
                };
                let found = social.presence.upkeep().await;
                for user in &found.offline {
                    social.announce(user, v2::ConnectivityStatus::Offline).await;
                }
                for user in &found.online {
                    social.announce(user, v2::ConnectivityStatus::Online).await;
                }
            }
        });
    }

    /// A user's first connection (on any instance) makes them online to their friends.
    pub async fn connected(&self, address: &str) {
        if self.presence.joined(address).await {
            self.announce(address, v2::ConnectivityStatus::Online).await;
        }
    }

    /// A user's last connection (on any instance) closing makes them offline.
    pub async fn disconnected(&self, address: &str) {
        if self.presence.left(address).await {
            self.announce(address, v2::ConnectivityStatus::Offline)
                .await;
        }
    }

    /// Profiles of `address`'s friends who are online now (at most `MAX_PAGE * 10` friends are
    /// looked at). A store failure is an error, not "nobody online".
    pub async fn online_friends(
        &self,
        address: &str,
    ) -> Result<Vec<v2::FriendProfile>, StoreError> {
        let friends = match self.friend_list(address).await? {
            Some(list) => list.as_slice().to_vec(),
            None => self.store.friends(address, MAX_PAGE * 10, 0).await?.items,
        };
        let online: Vec<String> = self
            .presence
            .online_among(&friends)
            .await
            .into_iter()
            .zip(friends)
            .filter_map(|(on, f)| on.then_some(f))
            .collect();
        let profiles = self.profiles.profiles(&online).await;
        Ok(online.iter().map(|f| profiles.get(f).friend()).collect())
    }

    /// Whether `address` holds a connection to this instance.
    pub async fn is_connected_here(&self, address: &str) -> bool {
        self.presence.here(address).await
    }

    async fn announce(&self, address: &str, status: v2::ConnectivityStatus) {
        let friends = match self.friend_list(address).await {
            Ok(Some(list)) => Ok(list.as_slice().to_vec()),
            Ok(None) => self
                .store
                .friends(address, MAX_PAGE * 10, 0)
                .await
                .map(|p| p.items),
            Err(e) => Err(e),
        };
        match friends {
            Ok(friends) if friends.is_empty() => {}
            Ok(friends) => {
                let me = self.profile(address).await.friend();
                for f in friends {
                    self.bus
                        .publish(
                            &f,
                            Update::Connectivity(v2::FriendConnectivityUpdate {
                                friend: Some(me.clone()),
                                status: status as i32,
                            }),
                        )
                        .await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot announce connectivity"),
        }
    }

    // ---------------------------------------------------------------- friends

    async fn get_friends(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetFriendsPayload,
    ) -> Result<v2::PaginatedFriendsProfilesResponse, RpcError> {
        let (limit, offset) = page(req.pagination);
        let result = match self.friend_list(&ctx.address).await {
            Ok(Some(list)) => {
                let all = list.as_slice();
                let start = (offset as usize).min(all.len());
                let end = start.saturating_add(limit as usize).min(all.len());
                Ok(Page::new(all[start..end].to_vec(), all.len() as i64))
            }
            Ok(None) => self.store.friends(&ctx.address, limit, offset).await,
            Err(e) => Err(e),
        };
        self.friends_page(result, limit, offset).await
    }

    async fn get_mutual_friends(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetMutualFriendsPayload,
    ) -> Result<v2::PaginatedFriendsProfilesResponse, RpcError> {
        let (limit, offset) = page(req.pagination);
        // The response has no error arm: bad input is a remote error, not "no mutual friends".
        let other = user_address(req.user.as_ref())
            .map_err(|e| RpcError::new(e.message.unwrap_or_else(|| "invalid user".into())))?;
        let result = self
            .store
            .mutual_friends(&ctx.address, &other, limit, offset)
            .await;
        self.friends_page(result, limit, offset).await
    }

    async fn requests(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetFriendshipRequestsPayload,
        direction: Direction,
    ) -> v2::PaginatedFriendshipRequestsResponse {
        use v2::paginated_friendship_requests_response::Response;
        let (limit, offset) = page(req.pagination);
        match self
            .store
            .pending_requests(&ctx.address, direction, limit, offset)
            .await
        {
            Ok(Page { items: list, total }) => {
                let addresses: Vec<String> = list.iter().map(|r| r.address.clone()).collect();
                let profiles = self.profiles.profiles(&addresses).await;
                v2::PaginatedFriendshipRequestsResponse {
                    response: Some(Response::Requests(v2::FriendshipRequests {
                        requests: list
                            .into_iter()
                            .map(|r| v2::FriendshipRequestResponse {
                                friend: Some(profiles.get(&r.address).friend()),
                                created_at: r.created_at,
                                message: r.message,
                                id: r.id,
                            })
                            .collect(),
                    })),
                    pagination_data: Some(paginated(total, limit, offset)),
                }
            }
            Err(e) => v2::PaginatedFriendshipRequestsResponse {
                response: Some(Response::InternalServerError(internal(e))),
                pagination_data: None,
            },
        }
    }

    async fn upsert_friendship(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::UpsertFriendshipPayload,
    ) -> v2::UpsertFriendshipResponse {
        use v2::upsert_friendship_payload::Action as A;
        use v2::upsert_friendship_response::{Accepted, Response};
        let (action, user, message) = match req.action {
            Some(A::Request(r)) => (Action::Request, r.user, r.message),
            Some(A::Accept(r)) => (Action::Accept, r.user, None),
            Some(A::Reject(r)) => (Action::Reject, r.user, None),
            Some(A::Delete(r)) => (Action::Delete, r.user, None),
            Some(A::Cancel(r)) => (Action::Cancel, r.user, None),
            None => {
                return v2::UpsertFriendshipResponse {
                    response: Some(Response::InvalidRequest(invalid("missing action"))),
                };
            }
        };
        let other = match user_address(user.as_ref()) {
            Ok(a) => a,
            Err(e) => {
                return v2::UpsertFriendshipResponse {
                    response: Some(Response::InvalidRequest(e)),
                };
            }
        };
        if message.as_ref().is_some_and(|m| m.len() > 2000) {
            return v2::UpsertFriendshipResponse {
                response: Some(Response::InvalidRequest(invalid("message too long"))),
            };
        }
        if let Err(e) = self
            .limiter
            .check(&ctx.address, &other, Scope::Friendship)
            .await
        {
            return v2::UpsertFriendshipResponse {
                response: Some(Response::InvalidRequest(e)),
            };
        }
        match self
            .store
            .apply_action(&ctx.address, &other, action, message.as_deref())
            .await
        {
            Ok(applied) => {
                self.publish_friendship(&applied).await;
                v2::UpsertFriendshipResponse {
                    response: Some(Response::Accepted(Accepted {
                        id: applied.friendship_id,
                        created_at: applied.created_at,
                        friend: Some(self.profile(&other).await.friend()),
                        message: applied.message,
                    })),
                }
            }
            Err(StoreError::Rejected(FriendshipError::SelfRequest)) => {
                v2::UpsertFriendshipResponse {
                    response: Some(Response::InvalidRequest(invalid(
                        "You cannot send a friendship request to yourself",
                    ))),
                }
            }
            Err(StoreError::Rejected(e)) => v2::UpsertFriendshipResponse {
                response: Some(Response::InvalidFriendshipAction(InvalidFriendshipAction {
                    message: Some(e.to_string()),
                })),
            },
            Err(e) => v2::UpsertFriendshipResponse {
                response: Some(Response::InternalServerError(internal(e))),
            },
        }
    }

    /// Tells the other user about a friendship action.
    async fn publish_friendship(&self, applied: &social_store::Applied) {
        if matches!(
            applied.action,
            Action::Accept | Action::Delete | Action::Block
        ) {
            self.changed(&applied.acting_user, Invalidation::Friends)
                .await;
            self.changed(&applied.other, Invalidation::Friends).await;
        }
        use v2::friendship_update::{
            AcceptResponse, BlockResponse, CancelResponse, DeleteResponse, RejectResponse,
            RequestResponse, Update as U,
        };
        let me = Some(v2::User {
            address: applied.acting_user.clone(),
        });
        let update = match applied.action {
            Action::Request => U::Request(RequestResponse {
                friend: Some(self.profile(&applied.acting_user).await.friend()),
                created_at: applied.created_at,
                message: applied.message.clone(),
                id: applied.friendship_id.clone(),
            }),
            Action::Accept => U::Accept(AcceptResponse { user: me }),
            Action::Reject => U::Reject(RejectResponse { user: me }),
            Action::Delete => U::Delete(DeleteResponse { user: me }),
            Action::Cancel => U::Cancel(CancelResponse { user: me }),
            Action::Block => U::Block(BlockResponse { user: me }),
        };
        self.bus
            .publish(
                &applied.other,
                Update::Friendship(v2::FriendshipUpdate {
                    update: Some(update),
                }),
            )
            .await;
    }

    async fn friendship_status(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetFriendshipStatusPayload,
    ) -> v2::GetFriendshipStatusResponse {
        use v2::get_friendship_status_response::{Ok as StatusOk, Response};
        let other = match user_address(req.user.as_ref()) {
            Ok(a) => a,
            Err(e) => {
                return v2::GetFriendshipStatusResponse {
                    response: Some(Response::InvalidRequest(e)),
                };
            }
        };
        let result = async {
            let last = self.store.last_action(&ctx.address, &other).await?;
            let (i_blocked, blocked_me) = self.store.block_state(&ctx.address, &other).await?;
            Ok::<_, StoreError>((last, i_blocked, blocked_me))
        }
        .await;
        match result {
            Ok((last, i_blocked, blocked_me)) => {
                let status = status_for(&ctx.address, last.as_ref(), i_blocked, blocked_me);
                v2::GetFriendshipStatusResponse {
                    response: Some(Response::Accepted(StatusOk {
                        status: status_to_proto(status),
                        message: None,
                    })),
                }
            }
            Err(e) => v2::GetFriendshipStatusResponse {
                response: Some(Response::InternalServerError(internal(e))),
            },
        }
    }

    // ---------------------------------------------------------------- blocks

    async fn block_user(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::BlockUserPayload,
    ) -> v2::BlockUserResponse {
        use v2::block_user_response::{Ok as BlockOk, Response};
        let other = match user_address(req.user.as_ref()) {
            Ok(a) if a == ctx.address => {
                return v2::BlockUserResponse {
                    response: Some(Response::InvalidRequest(invalid(
                        "You cannot block yourself",
                    ))),
                };
            }
            Ok(a) => a,
            Err(e) => {
                return v2::BlockUserResponse {
                    response: Some(Response::InvalidRequest(e)),
                };
            }
        };
        if let Err(e) = self.limiter.check(&ctx.address, &other, Scope::Block).await {
            return v2::BlockUserResponse {
                response: Some(Response::InvalidRequest(e)),
            };
        }
        match self.store.block(&ctx.address, &other).await {
            Ok(applied) => {
                if let Some(applied) = applied {
                    self.publish_friendship(&applied).await;
                }
                self.bus
                    .publish(
                        &other,
                        Update::Block(v2::BlockUpdate {
                            address: ctx.address.clone(),
                            is_blocked: true,
                        }),
                    )
                    .await;
                v2::BlockUserResponse {
                    response: Some(Response::Ok(BlockOk {
                        profile: Some(self.profile(&other).await.blocked(Some(now_ms()))),
                    })),
                }
            }
            Err(e) => v2::BlockUserResponse {
                response: Some(Response::InternalServerError(internal(e))),
            },
        }
    }

    async fn unblock_user(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::UnblockUserPayload,
    ) -> v2::UnblockUserResponse {
        use v2::unblock_user_response::{Ok as UnblockOk, Response};
        let other = match user_address(req.user.as_ref()) {
            Ok(a) => a,
            Err(e) => {
                return v2::UnblockUserResponse {
                    response: Some(Response::InvalidRequest(e)),
                };
            }
        };
        if let Err(e) = self.limiter.check(&ctx.address, &other, Scope::Block).await {
            return v2::UnblockUserResponse {
                response: Some(Response::InvalidRequest(e)),
            };
        }
        match self.store.unblock(&ctx.address, &other).await {
            Ok(_) => {
                self.bus
                    .publish(
                        &other,
                        Update::Block(v2::BlockUpdate {
                            address: ctx.address.clone(),
                            is_blocked: false,
                        }),
                    )
                    .await;
                v2::UnblockUserResponse {
                    response: Some(Response::Ok(UnblockOk {
                        profile: Some(self.profile(&other).await.blocked(None)),
                    })),
                }
            }
            Err(e) => v2::UnblockUserResponse {
                response: Some(Response::InternalServerError(internal(e))),
            },
        }
    }

    async fn blocked_users(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetBlockedUsersPayload,
    ) -> Result<v2::GetBlockedUsersResponse, RpcError> {
        let (limit, offset) = page(req.pagination);
        let Page { items: page, total } = self
            .store
            .blocked_page(&ctx.address, limit, offset)
            .await
            .map_err(read_failed)?;
        let addresses: Vec<String> = page.iter().map(|(a, _)| a.clone()).collect();
        let profiles = self.profiles.profiles(&addresses).await;
        Ok(v2::GetBlockedUsersResponse {
            profiles: page
                .into_iter()
                .map(|(a, at)| profiles.get(&a).blocked(Some(at)))
                .collect(),
            pagination_data: Some(paginated(total, limit, offset)),
        })
    }

    async fn blocking_status(
        self: Arc<Self>,
        ctx: CallContext,
        _req: (),
    ) -> Result<v2::GetBlockingStatusResponse, RpcError> {
        let blocked = self
            .store
            .blocks(&ctx.address, Direction::Outgoing)
            .await
            .map_err(read_failed)?;
        let by = self
            .store
            .blocks(&ctx.address, Direction::Incoming)
            .await
            .map_err(read_failed)?;
        Ok(v2::GetBlockingStatusResponse {
            blocked_users: blocked.into_iter().map(|(a, _)| a).collect(),
            blocked_by_users: by.into_iter().map(|(a, _)| a).collect(),
        })
    }

    // ---------------------------------------------------------------- settings

    async fn get_settings(
        self: Arc<Self>,
        ctx: CallContext,
        _req: (),
    ) -> v2::GetSocialSettingsResponse {
        use v2::get_social_settings_response::{Ok as SettingsOk, Response};
        match self.settings_for(&ctx.address).await {
            Ok(s) => v2::GetSocialSettingsResponse {
                response: Some(Response::Ok(SettingsOk {
                    settings: Some(settings_to_proto(&s)),
                })),
            },
            Err(e) => v2::GetSocialSettingsResponse {
                response: Some(Response::InternalServerError(internal(e))),
            },
        }
    }

    /// Fail-closed with the gatekeeper: a change to `only_friends` is sent to the gatekeeper
    /// first and stored only if that worked (other fields are still saved); a change to `all`
    /// is stored first and then sent. A gatekeeper failure is reported to the client either way.
    async fn upsert_settings(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::UpsertSocialSettingsPayload,
    ) -> v2::UpsertSocialSettingsResponse {
        use v2::upsert_social_settings_response::Response;
        if req.private_messages_privacy.is_none()
            && req.blocked_users_messages_visibility.is_none()
            && req.show_situation_reactions.is_none()
        {
            return v2::UpsertSocialSettingsResponse {
                response: Some(Response::InvalidRequest(invalid(
                    "At least one setting must be given",
                ))),
            };
        }
        let privacy = match req
            .private_messages_privacy
            .map(v2::PrivateMessagePrivacySetting::try_from)
        {
            None => None,
            Some(Ok(v2::PrivateMessagePrivacySetting::All)) => Some(Privacy::All),
            Some(Ok(v2::PrivateMessagePrivacySetting::OnlyFriends)) => Some(Privacy::OnlyFriends),
            Some(Err(_)) => {
                return v2::UpsertSocialSettingsResponse {
                    response: Some(Response::InvalidRequest(invalid(
                        "unknown private_messages_privacy",
                    ))),
                };
            }
        };
        let visibility = match req
            .blocked_users_messages_visibility
            .map(v2::BlockedUsersMessagesVisibilitySetting::try_from)
        {
            None => None,
            Some(Ok(v2::BlockedUsersMessagesVisibilitySetting::ShowMessages)) => {
                Some(BlockedMessagesVisibility::ShowMessages)
            }
            Some(Ok(v2::BlockedUsersMessagesVisibilitySetting::DoNotShowMessages)) => {
                Some(BlockedMessagesVisibility::DoNotShowMessages)
            }
            Some(Err(_)) => {
                return v2::UpsertSocialSettingsResponse {
                    response: Some(Response::InvalidRequest(invalid(
                        "unknown blocked_users_messages_visibility",
                    ))),
                };
            }
        };
        let reactions = match req
            .show_situation_reactions
            .map(v2::SituationReactionsVisibility::try_from)
        {
            None => None,
            Some(Ok(v2::SituationReactionsVisibility::Show)) => Some(SituationReactions::Show),
            Some(Ok(v2::SituationReactionsVisibility::Hide)) => Some(SituationReactions::Hide),
            Some(Err(_)) => {
                return v2::UpsertSocialSettingsResponse {
                    response: Some(Response::InvalidRequest(invalid(
                        "unknown show_situation_reactions",
                    ))),
                };
            }
        };
        let me = &ctx.address;
        let change = SettingsChange {
            private_messages_privacy: privacy,
            blocked_users_messages_visibility: visibility,
            show_situation_reactions: reactions,
        };
        let result: Result<social_core::SocialSettings, String> = async {
            match privacy {
                Some(Privacy::OnlyFriends) => {
                    let told = self
                        .gatekeeper
                        .privacy_changed(me, Privacy::OnlyFriends)
                        .await;
                    // Not told: the other fields are still saved, the privacy is not.
                    let change = if told.is_ok() {
                        change
                    } else {
                        SettingsChange {
                            private_messages_privacy: None,
                            ..change
                        }
                    };
                    let saved = if change.is_empty() {
                        self.store.settings(me).await
                    } else {
                        self.store.upsert_settings(me, change).await
                    }
                    .map_err(|e| e.to_string())?;
                    told.map_err(|e| e.to_string())?;
                    Ok(saved)
                }
                Some(Privacy::All) => {
                    let saved = self
                        .store
                        .upsert_settings(me, change)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.gatekeeper
                        .privacy_changed(me, Privacy::All)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(saved)
                }
                None => self
                    .store
                    .upsert_settings(me, change)
                    .await
                    .map_err(|e| e.to_string()),
            }
        }
        .await;
        // Whatever happened, something may have been written.
        self.changed(me, Invalidation::Settings).await;
        match result {
            Ok(saved) => v2::UpsertSocialSettingsResponse {
                response: Some(Response::Ok(settings_to_proto(&saved))),
            },
            Err(e) => v2::UpsertSocialSettingsResponse {
                response: Some(Response::InternalServerError(internal(e))),
            },
        }
    }

    async fn private_messages_settings(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetPrivateMessagesSettingsPayload,
    ) -> v2::GetPrivateMessagesSettingsResponse {
        use v2::get_private_messages_settings_response::{
            Ok as SettingsOk, PrivateMessagesSettings, Response,
        };
        if req.user.is_empty() || req.user.len() > MAX_SETTINGS_USERS {
            return v2::GetPrivateMessagesSettingsResponse {
                response: Some(Response::InvalidRequest(invalid(format!(
                    "between 1 and {MAX_SETTINGS_USERS} users are accepted, got {}",
                    req.user.len()
                )))),
            };
        }
        let mut addresses = Vec::with_capacity(req.user.len());
        for u in req.user {
            match normalize_address_owned(u.address) {
                Ok(a) => addresses.push(a),
                Err(bad) => {
                    return v2::GetPrivateMessagesSettingsResponse {
                        response: Some(Response::InvalidRequest(invalid(format!(
                            "invalid address {bad:?}"
                        )))),
                    };
                }
            }
        }
        let result = async {
            let settings = self.settings_of(&addresses).await?;
            let friends: Vec<bool> = match self.friend_list(&ctx.address).await? {
                Some(list) => addresses.iter().map(|a| list.contains(a)).collect(),
                None => {
                    let set = self.store.friends_among(&ctx.address, &addresses).await?;
                    addresses.iter().map(|a| set.contains(a)).collect()
                }
            };
            Ok::<_, StoreError>((settings, friends))
        }
        .await;
        match result {
            Ok((settings, friends)) => v2::GetPrivateMessagesSettingsResponse {
                response: Some(Response::Ok(SettingsOk {
                    settings: addresses
                        .into_iter()
                        .zip(settings)
                        .zip(friends)
                        .map(|((address, s), is_friend)| PrivateMessagesSettings {
                            user: Some(v2::User { address }),
                            private_messages_privacy: privacy_to_proto(s.private_messages_privacy),
                            is_friend,
                        })
                        .collect(),
                })),
            },
            Err(e) => v2::GetPrivateMessagesSettingsResponse {
                response: Some(Response::InternalServerError(internal(e))),
            },
        }
    }
}

fn settings_to_proto(s: &social_core::SocialSettings) -> v2::SocialSettings {
    v2::SocialSettings {
        private_messages_privacy: privacy_to_proto(s.private_messages_privacy),
        blocked_users_messages_visibility: visibility_to_proto(s.blocked_users_messages_visibility),
        show_situation_reactions: match s.show_situation_reactions {
            SituationReactions::Show => v2::SituationReactionsVisibility::Show as i32,
            SituationReactions::Hide => v2::SituationReactionsVisibility::Hide as i32,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found while writing the `social_request_payloads` fuzz target: `GetFriends` with `limit: 1,
    /// offset: i32::MAX` answered page −2147483648 (the page number wrapped around).
    #[test]
    fn page_numbers_do_not_wrap_for_huge_offsets() {
        let (limit, offset) = page(Some(v2::Pagination {
            limit: 1,
            offset: i32::MAX,
        }));
        let p = paginated(i64::MAX, limit, offset);
        assert_eq!(p.page, i32::MAX);
        assert_eq!(p.total, i32::MAX);
        assert_eq!(paginated(0, 0, 0).page, 1);
        assert_eq!(paginated(120, 50, 100).page, 3);
        assert_eq!(paginated(-5, 50, 0).total, 0);
    }
}
