//! Blocks: a row per (blocker, blocked); a block also ends the pair's friendship (action
//! `block`), and the last unblock of a pair deletes it so either may send a request again.

use pchat_core::now_ms;
use social_core::{Action, FriendshipError};
use sqlx::Row;

use crate::{Applied, Direction, Page, Reader, Result, Store, StoreError};

impl Store {
    /// `blocker` blocks `blocked`: a block row, and the end of any friendship (action `block`).
    /// Returns the recorded friendship action, if the pair had a friendship row.
    pub async fn block(&self, blocker: &str, blocked: &str) -> Result<Option<Applied>> {
        if blocker == blocked {
            return Err(FriendshipError::SelfRequest.into());
        }
        self.retrying(|| async {
            sqlx::query(
                "INSERT INTO blocks (blocker_address, blocked_address, blocked_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (blocker_address, blocked_address) DO NOTHING",
            )
            .bind(blocker.to_owned())
            .bind(blocked.to_owned())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
            Ok(Some(()))
        })
        .await?;
        if self.last_action(blocker, blocked).await?.is_none() {
            return Ok(None);
        }
        self.apply_action(blocker, blocked, Action::Block, None)
            .await
            .map(Some)
    }

    /// Removes `blocker`'s block of `blocked`. When the pair's last action was that block and no
    /// block remains, a `delete` follows so that either may send a request again.
    pub async fn unblock(&self, blocker: &str, blocked: &str) -> Result<bool> {
        let removed = self
            .retrying(|| async {
                let done = sqlx::query(
                    "DELETE FROM blocks WHERE blocker_address = $1 AND blocked_address = $2",
                )
                .bind(blocker.to_owned())
                .bind(blocked.to_owned())
                .execute(&self.pool)
                .await?;
                Ok(Some(done.rows_affected() > 0))
            })
            .await?;
        let (i_blocked, blocked_me) = self.block_state(blocker, blocked).await?;
        let last = self.last_action(blocker, blocked).await?;
        if !i_blocked && !blocked_me && last.is_some_and(|l| l.action == Action::Block) {
            match self
                .retrying(|| self.try_apply(blocker, blocked, Action::Delete, None, true))
                .await
            {
                // Someone else moved the pair on since: nothing to delete.
                Ok(_) | Err(StoreError::Rejected(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

impl Reader {
    /// (`me` blocked `other`, `other` blocked `me`).
    pub async fn block_state(&self, me: &str, other: &str) -> Result<(bool, bool)> {
        let rows = sqlx::query(
            "SELECT blocker_address FROM blocks WHERE (blocker_address = $1 AND blocked_address = $2) \
             OR (blocker_address = $2 AND blocked_address = $1)",
        )
        .bind(me.to_owned())
        .bind(other.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let mut state = (false, false);
        for r in rows {
            let blocker: String = r.try_get(0)?;
            if blocker == me {
                state.0 = true;
            } else {
                state.1 = true;
            }
        }
        Ok(state)
    }

    /// A page of the users `address` blocked, newest first, with the time, and the total.
    pub async fn blocked_page(
        &self,
        address: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Page<(String, i64)>> {
        self.page_with_total(
                "SELECT blocked_address, blocked_at, COUNT(*) OVER () FROM blocks WHERE blocker_address = $1 \
                 ORDER BY blocked_at DESC, blocked_address LIMIT $2 OFFSET $3",
                2,
                "SELECT COUNT(*) FROM blocks WHERE blocker_address = $1",
                address,
                limit,
                offset,
            )
            .await?
            .try_map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    }

    /// Users `address` blocked ([`Direction::Outgoing`]) or who blocked `address`
    /// ([`Direction::Incoming`]), with the time, newest first.
    pub async fn blocks(&self, address: &str, direction: Direction) -> Result<Vec<(String, i64)>> {
        let sql = match direction {
            Direction::Outgoing => {
                "SELECT blocked_address, blocked_at FROM blocks WHERE blocker_address = $1 ORDER BY blocked_at DESC, blocked_address"
            }
            Direction::Incoming => {
                "SELECT blocker_address, blocked_at FROM blocks WHERE blocked_address = $1 ORDER BY blocked_at DESC, blocker_address"
            }
        };
        sqlx::query(sql)
            .bind(address.to_owned())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
