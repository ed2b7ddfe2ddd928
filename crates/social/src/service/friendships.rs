//! Friendships: the friend lists, requests, the friendship actions (UpsertFriendship) and the
//! status of a pair. An action is written through [`crate::data::Data`] (which invalidates the
//! friend lists it changes), then the other user is told on the bus.

use std::sync::Arc;

use dcl_rpc_server::{CallContext, RpcError};
use social_core::{Action, FriendshipError, status_for};
use social_proto::{InvalidFriendshipAction, v2};
use social_store::{Applied, Direction, Page, StoreError};

use super::Social;
use super::convert::{page, paginated, status_to_proto, user_address};
use super::reply::{Internal, Refusal, invalid};
use crate::bus::Update;
use crate::ratelimit::Scope;

/// Longest message a friendship request may carry, in bytes.
const MAX_REQUEST_MESSAGE: usize = 2000;

impl Social {
    pub(super) async fn get_friends(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetFriendsPayload,
    ) -> Result<v2::PaginatedFriendsProfilesResponse, RpcError> {
        let (limit, offset) = page(req.pagination);
        let result = self.data.friends(&ctx.address, limit, offset).await;
        self.friends_page(result, limit, offset).await
    }

    pub(super) async fn get_mutual_friends(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetMutualFriendsPayload,
    ) -> Result<v2::PaginatedFriendsProfilesResponse, RpcError> {
        let (limit, offset) = page(req.pagination);
        // The response has no error arm: bad input is a remote error, not "no mutual friends".
        let other = user_address(req.user.as_ref())
            .map_err(|e| RpcError::new(e.message.unwrap_or_else(|| "invalid user".into())))?;
        let result = self
            .data
            .reader()
            .mutual_friends(&ctx.address, &other, limit, offset)
            .await;
        self.friends_page(result, limit, offset).await
    }

    pub(super) async fn requests(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetFriendshipRequestsPayload,
        direction: Direction,
    ) -> Result<v2::PaginatedFriendshipRequestsResponse, Internal> {
        use v2::paginated_friendship_requests_response::Response;
        let (limit, offset) = page(req.pagination);
        let Page { items: list, total } = self
            .data
            .reader()
            .pending_requests(&ctx.address, direction, limit, offset)
            .await?;
        let addresses: Vec<String> = list.iter().map(|r| r.address.clone()).collect();
        let profiles = self.profiles.profiles(&addresses).await;
        Ok(v2::PaginatedFriendshipRequestsResponse {
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
        })
    }

    pub(super) async fn upsert_friendship(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::UpsertFriendshipPayload,
    ) -> Result<v2::UpsertFriendshipResponse, Refusal> {
        use v2::upsert_friendship_payload::Action as A;
        use v2::upsert_friendship_response::{Accepted, Response};
        let (action, user, message) = match req.action {
            Some(A::Request(r)) => (Action::Request, r.user, r.message),
            Some(A::Accept(r)) => (Action::Accept, r.user, None),
            Some(A::Reject(r)) => (Action::Reject, r.user, None),
            Some(A::Delete(r)) => (Action::Delete, r.user, None),
            Some(A::Cancel(r)) => (Action::Cancel, r.user, None),
            None => return Err(invalid("missing action").into()),
        };
        let other = user_address(user.as_ref())?;
        if message
            .as_ref()
            .is_some_and(|m| m.len() > MAX_REQUEST_MESSAGE)
        {
            return Err(invalid("message too long").into());
        }
        self.limiter
            .check(&ctx.address, &other, Scope::Friendship)
            .await?;
        let applied = match self
            .data
            .apply_action(&ctx.address, &other, action, message.as_deref())
            .await
        {
            Ok(applied) => applied,
            Err(StoreError::Rejected(FriendshipError::SelfRequest)) => {
                return Err(invalid("You cannot send a friendship request to yourself").into());
            }
            Err(StoreError::Rejected(e)) => {
                return Ok(v2::UpsertFriendshipResponse {
                    response: Some(Response::InvalidFriendshipAction(InvalidFriendshipAction {
                        message: Some(e.to_string()),
                    })),
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.publish_friendship(&applied).await;
        Ok(v2::UpsertFriendshipResponse {
            response: Some(Response::Accepted(Accepted {
                id: applied.friendship_id,
                created_at: applied.created_at,
                friend: Some(self.profile(&other).await.friend()),
                message: applied.message,
            })),
        })
    }

    /// Tells the other user about a friendship action (the data has already invalidated the
    /// friend lists it changed).
    pub(super) async fn publish_friendship(&self, applied: &Applied) {
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

    pub(super) async fn friendship_status(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetFriendshipStatusPayload,
    ) -> Result<v2::GetFriendshipStatusResponse, Refusal> {
        use v2::get_friendship_status_response::{Ok as StatusOk, Response};
        let other = user_address(req.user.as_ref())?;
        let reader = self.data.reader();
        let last = reader.last_action(&ctx.address, &other).await?;
        let (i_blocked, blocked_me) = reader.block_state(&ctx.address, &other).await?;
        let status = status_for(&ctx.address, last.as_ref(), i_blocked, blocked_me);
        Ok(v2::GetFriendshipStatusResponse {
            response: Some(Response::Accepted(StatusOk {
                status: status_to_proto(status),
                message: None,
            })),
        })
    }
}
