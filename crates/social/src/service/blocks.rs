//! Blocks: BlockUser and UnblockUser (written through [`crate::data::Data`], then the blocked
//! user is told on the bus), the blocked users' page and the blocking status.

use std::sync::Arc;

use dcl_rpc_server::{CallContext, RpcError};
use pchat_core::now_ms;
use social_proto::v2;
use social_store::{Direction, Page};

use super::Social;
use super::convert::{page, paginated, user_address};
use super::reply::{Refusal, invalid, read_failed};
use crate::bus::Update;
use crate::ratelimit::Scope;

impl Social {
    /// Tells `other` that `me` blocked (or unblocked) them.
    async fn publish_block(&self, me: &str, other: &str, is_blocked: bool) {
        self.bus
            .publish(
                other,
                Update::Block(v2::BlockUpdate {
                    address: me.to_owned(),
                    is_blocked,
                }),
            )
            .await;
    }

    pub(super) async fn block_user(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::BlockUserPayload,
    ) -> Result<v2::BlockUserResponse, Refusal> {
        use v2::block_user_response::{Ok as BlockOk, Response};
        let other = user_address(req.user.as_ref())?;
        if other == ctx.address {
            return Err(invalid("You cannot block yourself").into());
        }
        self.limiter
            .check(&ctx.address, &other, Scope::Block)
            .await?;
        if let Some(applied) = self.data.block(&ctx.address, &other).await? {
            self.publish_friendship(&applied).await;
        }
        self.publish_block(&ctx.address, &other, true).await;
        Ok(v2::BlockUserResponse {
            response: Some(Response::Ok(BlockOk {
                profile: Some(self.profile(&other).await.blocked(Some(now_ms()))),
            })),
        })
    }

    pub(super) async fn unblock_user(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::UnblockUserPayload,
    ) -> Result<v2::UnblockUserResponse, Refusal> {
        use v2::unblock_user_response::{Ok as UnblockOk, Response};
        let other = user_address(req.user.as_ref())?;
        self.limiter
            .check(&ctx.address, &other, Scope::Block)
            .await?;
        self.data.unblock(&ctx.address, &other).await?;
        self.publish_block(&ctx.address, &other, false).await;
        Ok(v2::UnblockUserResponse {
            response: Some(Response::Ok(UnblockOk {
                profile: Some(self.profile(&other).await.blocked(None)),
            })),
        })
    }

    pub(super) async fn blocked_users(
        self: Arc<Self>,
        ctx: CallContext,
        req: v2::GetBlockedUsersPayload,
    ) -> Result<v2::GetBlockedUsersResponse, RpcError> {
        let (limit, offset) = page(req.pagination);
        let Page { items: page, total } = self
            .data
            .reader()
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

    pub(super) async fn blocking_status(
        self: Arc<Self>,
        ctx: CallContext,
        _req: (),
    ) -> Result<v2::GetBlockingStatusResponse, RpcError> {
        let blocked = self
            .data
            .reader()
            .blocks(&ctx.address, Direction::Outgoing)
            .await
            .map_err(read_failed)?;
        let by = self
            .data
            .reader()
            .blocks(&ctx.address, Direction::Incoming)
            .await
            .map_err(read_failed)?;
        Ok(v2::GetBlockingStatusResponse {
            blocked_users: blocked.into_iter().map(|(a, _)| a).collect(),
            blocked_by_users: by.into_iter().map(|(a, _)| a).collect(),
        })
    }
}
