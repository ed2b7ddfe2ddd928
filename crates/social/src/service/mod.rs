//! The SocialService procedures: decode the request, apply the domain rules through the data
//! ([`crate::data::Data`]: the store and its cache), publish updates, encode the response.
//! Business errors travel inside the response's `oneof` (`reply` builds those cases, so a
//! handler uses `?`).
//!
//! One module per concern: `convert` (wire ↔ domain), `reads` (the cached reads: settings,
//! friend lists, online friends), `friendships`, `blocks`, `settings` and `presence`
//! (connectivity across instances). This module holds the shared state ([`Social`]) and the
//! dispatch of every procedure of the proto.

mod blocks;
mod convert;
mod friendships;
mod presence;
mod reads;
mod reply;
mod settings;

use std::future::Future;
use std::sync::Arc;

use dcl_rpc_server::{CallContext, Module, Payload, Procedure, RpcError};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use prost::Message;
use social_proto::v2;
use social_store::{Direction, Store};

use crate::bus::{Bus, Update};
use crate::cache::ReadCache;
use crate::data::Data;
use crate::gatekeeper::GatekeeperNotifier;
use crate::presence::Presence;
use crate::profiles::{Profile, ProfileSource};
use crate::ratelimit::FriendshipLimiter;
use reply::{Answer, read_failed};

/// Most addresses in one GetPrivateMessagesSettings call.
pub const MAX_SETTINGS_USERS: usize = 50;
/// Page size when the request has none.
pub const DEFAULT_PAGE: i64 = 50;
/// Largest page accepted.
pub const MAX_PAGE: i64 = 1000;

/// The service state shared by every connection.
pub struct Social {
    /// The store and its cache: reads, and writes that invalidate what they change.
    pub data: Data,
    /// Updates for connected users (the data publishes its invalidations on the same bus).
    pub bus: Bus,
    pub gatekeeper: Arc<dyn GatekeeperNotifier>,
    pub profiles: Arc<dyn ProfileSource>,
    presence: Presence,
    /// Limits on friendship actions, blocks and unblocks (default: in memory, default limits).
    pub limiter: FriendshipLimiter,
}

/// Wraps a typed unary handler as a procedure: its error becomes the response's error case,
/// or a dcl-rpc remote error for a response without one ([`reply::Answer`]).
fn unary<Req, Resp, E, F, Fut>(social: &Arc<Social>, f: F) -> Procedure
where
    Req: Message + Default + 'static,
    Resp: Message + 'static,
    E: Answer<Resp> + 'static,
    F: Fn(Arc<Social>, CallContext, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
{
    let social = social.clone();
    let f = Arc::new(f);
    Procedure::unary(move |ctx, payload: Payload| {
        let (social, f) = (social.clone(), f.clone());
        async move {
            let req = Req::decode(payload.as_slice())
                .map_err(|e| RpcError::new(format!("invalid request payload: {e}")))?;
            let resp = f(social, ctx, req).await.or_else(E::answer)?;
            Ok(resp.encode_to_vec())
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
            data: Data::new(store, cache, bus.clone()),
            bus,
            gatekeeper,
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
        self.data.spawn_cache_listener();
    }

    /// The profile shown for one address.
    async fn profile(&self, address: &str) -> Profile {
        self.profiles
            .profiles(std::slice::from_ref(&address.to_owned()))
            .await
            .get(address)
    }

    /// The `SocialService` module with every procedure of the proto, in order.
    pub fn module(self: &Arc<Self>) -> Module {
        let s = self;
        let mut procedures: Vec<(String, Procedure)> = Vec::new();
        for name in social_proto::SOCIAL_SERVICE_PROCEDURES {
            let p = match *name {
                "GetFriends" => unary(s, Self::get_friends),
                "GetMutualFriends" => unary(s, Self::get_mutual_friends),
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
                "GetBlockedUsers" => unary(s, Self::blocked_users),
                "GetBlockingStatus" => unary(s, Self::blocking_status),
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
}
