//! Friendships: the compare-and-set change of a pair (validated with [`social_core::validate`]
//! against the row it read), its history, and the friend and request lists.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use pchat_core::now_ms;
use social_core::{Action, FriendshipError, LastAction};
use sqlx::Row;

use crate::{
    Backend, Direction, PAIR_TURNS, Page, Reader, Result, Store, StoreError, new_id, ordered,
    placeholders,
};

/// A friendship request waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub id: String,
    /// The other user (the requester for received requests, the requested for sent ones).
    pub address: String,
    pub message: Option<String>,
    pub created_at: i64,
}

/// A recorded action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub friendship_id: String,
    pub action: Action,
    pub acting_user: String,
    pub other: String,
    pub message: Option<String>,
    pub created_at: i64,
}

impl Store {
    /// Validates and records `acting`'s `action` toward `other`, atomically.
    pub async fn apply_action(
        &self,
        acting: &str,
        other: &str,
        action: Action,
        message: Option<&str>,
    ) -> Result<Applied> {
        self.retrying(|| self.try_apply(acting, other, action, message, false))
            .await
    }

    /// One attempt; `Ok(None)` means a concurrent change won and the caller should retry.
    ///
    /// The pair is read (with the blocks between the two users), the rules are checked, and
    /// the change is written only if the pair is still as read: an insert that loses to a
    /// concurrent insert, or an update conditioned on the version. On SQLite the read and the
    /// two writes share a transaction. On PostgreSQL the write of the pair and of its history
    /// row is one statement (a data-modifying `WITH`), which is atomic by itself, so an action
    /// costs two statements and no `BEGIN`/`COMMIT`.
    pub(crate) async fn try_apply(
        &self,
        acting: &str,
        other: &str,
        action: Action,
        message: Option<&str>,
        skip_block_check: bool,
    ) -> Result<Option<Applied>> {
        let (a, b) = ordered(acting, other);
        let _turn = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (a, b).hash(&mut h);
            self.pair_turns[(h.finish() % PAIR_TURNS as u64) as usize]
                .lock()
                .await
        };
        let mut conn = match self.backend {
            // The write lock now (waiting up to the busy timeout), not at the first write: a
            // deferred transaction whose read went stale fails its write with SQLITE_BUSY.
            Backend::Sqlite => PairConn::Tx(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => PairConn::Pooled(self.pool.acquire().await?),
        };
        let row = sqlx::query(
            "SELECT f.id, f.last_action, f.last_acting_user, f.version, \
               CAST(CASE WHEN EXISTS (SELECT 1 FROM blocks WHERE (blocker_address = $3 AND blocked_address = $4) \
                 OR (blocker_address = $4 AND blocked_address = $3)) THEN 1 ELSE 0 END AS BIGINT) \
             FROM (SELECT 1 AS one) o LEFT JOIN friendships f ON f.user_a = $1 AND f.user_b = $2",
        )
        .bind(a.to_owned())
        .bind(b.to_owned())
        .bind(acting.to_owned())
        .bind(other.to_owned())
        .fetch_one(conn.get())
        .await?;
        let blocked: i64 = row.try_get(4)?;
        if blocked != 0 && !skip_block_check && !matches!(action, Action::Block | Action::Delete) {
            return Err(FriendshipError::Blocked.into());
        }
        let existing = match row.try_get::<Option<String>, _>(0)? {
            Some(id) => {
                let last: String = row.try_get(1)?;
                let acting_user: String = row.try_get(2)?;
                let version: i64 = row.try_get(3)?;
                let last = LastAction {
                    action: last
                        .parse()
                        .map_err(|_| StoreError::Corrupt(last.clone()))?,
                    acting_user,
                };
                Some((id, last, version))
            }
            None => None,
        };
        social_core::validate(acting, other, action, existing.as_ref().map(|(_, l, _)| l))?;
        let now = now_ms();
        let active: i64 = if action.makes_friends() { 1 } else { 0 };
        let message = if action == Action::Request {
            message.map(str::to_owned)
        } else {
            None
        };
        let action_id = new_id();
        let pg = self.backend == Backend::Postgres;
        // On PostgreSQL the pair statement becomes a `WITH` feeding the history insert; the
        // history row's parameters come after the pair statement's.
        let with_history = |pair: &str, first: usize| {
            format!(
                "WITH f AS ({pair} RETURNING id) INSERT INTO friendship_actions \
                 (id, friendship_id, action, acting_user, message, created_at) \
                 SELECT ${}, id, ${}, ${}, ${}, ${} FROM f",
                first,
                first + 1,
                first + 2,
                first + 3,
                first + 4
            )
        };
        let (id, written) = match existing {
            None => {
                let id = new_id();
                let pair = "INSERT INTO friendships (id, user_a, user_b, address_requester, address_requested, is_active, \
                     last_action, last_acting_user, last_message, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10) ON CONFLICT (user_a, user_b) DO NOTHING";
                let sql = if pg {
                    with_history(pair, 11)
                } else {
                    pair.to_owned()
                };
                let q = sqlx::query(&sql)
                    .bind(id.clone())
                    .bind(a.to_owned())
                    .bind(b.to_owned())
                    .bind(acting.to_owned())
                    .bind(other.to_owned())
                    .bind(active)
                    .bind(action.as_str())
                    .bind(acting.to_owned())
                    .bind(message.clone())
                    .bind(now);
                let q = if pg {
                    with_history_binds(q, &action_id, action, acting, &message, now)
                } else {
                    q
                };
                (id, q.execute(conn.get()).await?.rows_affected())
            }
            Some((id, _, version)) => {
                let (pair, first) = if action == Action::Request {
                    (
                        "UPDATE friendships SET is_active = $1, last_action = $2, last_acting_user = $3, last_message = $4, \
                         address_requester = $3, address_requested = $5, version = version + 1, updated_at = $6 \
                         WHERE id = $7 AND version = $8",
                        9,
                    )
                } else {
                    (
                        "UPDATE friendships SET is_active = $1, last_action = $2, last_acting_user = $3, \
                         version = version + 1, updated_at = $4 WHERE id = $5 AND version = $6",
                        7,
                    )
                };
                let sql = if pg {
                    with_history(pair, first)
                } else {
                    pair.to_owned()
                };
                let mut q = sqlx::query(&sql)
                    .bind(active)
                    .bind(action.as_str())
                    .bind(acting.to_owned());
                if action == Action::Request {
                    q = q.bind(message.clone()).bind(other.to_owned());
                }
                let q = q.bind(now).bind(id.clone()).bind(version);
                let q = if pg {
                    with_history_binds(q, &action_id, action, acting, &message, now)
                } else {
                    q
                };
                (id, q.execute(conn.get()).await?.rows_affected())
            }
        };
        if written == 0 {
            conn.rollback().await?;
            return Ok(None);
        }
        if let PairConn::Tx(mut tx) = conn {
            sqlx::query(
                "INSERT INTO friendship_actions (id, friendship_id, action, acting_user, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(action_id)
            .bind(id.clone())
            .bind(action.as_str())
            .bind(acting.to_owned())
            .bind(message.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(Some(Applied {
            friendship_id: id,
            action,
            acting_user: acting.to_owned(),
            other: other.to_owned(),
            message,
            created_at: now,
        }))
    }
}

impl Reader {
    /// The last action between two users.
    pub async fn last_action(&self, x: &str, y: &str) -> Result<Option<LastAction>> {
        let (a, b) = ordered(x, y);
        let row = sqlx::query("SELECT last_action, last_acting_user FROM friendships WHERE user_a = $1 AND user_b = $2")
            .bind(a.to_owned())
            .bind(b.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let action: String = r.try_get(0)?;
            Ok(LastAction {
                action: action
                    .parse()
                    .map_err(|_| StoreError::Corrupt(action.clone()))?,
                acting_user: r.try_get(1)?,
            })
        })
        .transpose()
    }

    /// The history of a pair, oldest first: (action, acting user).
    pub async fn history(&self, x: &str, y: &str) -> Result<Vec<(Action, String)>> {
        let (a, b) = ordered(x, y);
        let rows = sqlx::query(
            "SELECT fa.action, fa.acting_user FROM friendship_actions fa JOIN friendships f ON f.id = fa.friendship_id \
             WHERE f.user_a = $1 AND f.user_b = $2 ORDER BY fa.created_at, fa.id",
        )
        .bind(a.to_owned())
        .bind(b.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let action: String = r.try_get(0)?;
                Ok((
                    action
                        .parse()
                        .map_err(|_| StoreError::Corrupt(action.clone()))?,
                    r.try_get(1)?,
                ))
            })
            .collect()
    }

    /// A page of `address`'s friends (sorted by address) and the total.
    pub async fn friends(&self, address: &str, limit: i64, offset: i64) -> Result<Page<String>> {
        self.page_with_total(
                "SELECT other, COUNT(*) OVER () FROM ( \
                   SELECT user_b AS other FROM friendships WHERE user_a = $1 AND is_active = 1 \
                   UNION ALL SELECT user_a AS other FROM friendships WHERE user_b = $1 AND is_active = 1 \
                 ) f ORDER BY other LIMIT $2 OFFSET $3",
                1,
                "SELECT (SELECT COUNT(*) FROM friendships WHERE user_a = $1 AND is_active = 1) + \
                        (SELECT COUNT(*) FROM friendships WHERE user_b = $1 AND is_active = 1)",
                address,
                limit,
                offset,
            )
            .await?
            .try_map(|r| Ok(r.try_get(0)?))
    }

    /// Which of `others` are friends of `address`.
    pub async fn friends_among(&self, address: &str, others: &[String]) -> Result<HashSet<String>> {
        if others.is_empty() {
            return Ok(HashSet::new());
        }
        let list = placeholders(2, others.len());
        let sql = format!(
            "SELECT user_b FROM friendships WHERE user_a = $1 AND is_active = 1 AND user_b IN ({list}) \
             UNION ALL SELECT user_a FROM friendships WHERE user_b = $1 AND is_active = 1 AND user_a IN ({list})"
        );
        let mut q = sqlx::query(&sql).bind(address.to_owned());
        for o in others {
            q = q.bind(o.clone());
        }
        q.fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    /// A page of the friends two users share, and the total.
    pub async fn mutual_friends(
        &self,
        x: &str,
        y: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Page<String>> {
        let friends_of = |n: usize| {
            format!(
                "SELECT user_b AS f FROM friendships WHERE user_a = ${n} AND is_active = 1 \
                 UNION ALL SELECT user_a AS f FROM friendships WHERE user_b = ${n} AND is_active = 1"
            )
        };
        let base = format!(
            "SELECT x.f FROM ({}) x JOIN ({}) y ON x.f = y.f",
            friends_of(1),
            friends_of(2)
        );
        let rows = sqlx::query(&format!("{base} ORDER BY x.f LIMIT $3 OFFSET $4"))
            .bind(x.to_owned())
            .bind(y.to_owned())
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM ({base}) m"))
            .bind(x.to_owned())
            .bind(y.to_owned())
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Page::new(rows, total).try_map(|r| Ok(r.try_get(0)?))
    }

    /// Requests waiting for `address`'s answer ([`Direction::Incoming`]) or that `address` sent
    /// ([`Direction::Outgoing`]), newest first.
    pub async fn pending_requests(
        &self,
        address: &str,
        direction: Direction,
        limit: i64,
        offset: i64,
    ) -> Result<Page<PendingRequest>> {
        let (cmp, other_col) = match direction {
            Direction::Incoming => ("<>", "last_acting_user"),
            Direction::Outgoing => ("=", "address_requested"),
        };
        let filter = format!(
            "(user_a = $1 OR user_b = $1) AND last_action = 'request' AND last_acting_user {cmp} $1"
        );
        let rows = sqlx::query(&format!(
            "SELECT id, {other_col}, last_message, updated_at FROM friendships WHERE {filter} \
             ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3"
        ))
        .bind(address.to_owned())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM friendships WHERE {filter}"))
            .bind(address.to_owned())
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Page::new(rows, total).try_map(|r| {
            Ok(PendingRequest {
                id: r.try_get(0)?,
                address: r.try_get(1)?,
                message: r.try_get(2)?,
                created_at: r.try_get(3)?,
            })
        })
    }
}

/// Where a friendship change runs: a transaction (SQLite) or one pooled connection whose
/// write is a single statement (PostgreSQL).
enum PairConn {
    Tx(sqlx::Transaction<'static, sqlx::Any>),
    Pooled(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl PairConn {
    fn get(&mut self) -> &mut sqlx::AnyConnection {
        match self {
            PairConn::Tx(tx) => tx,
            PairConn::Pooled(c) => c,
        }
    }

    async fn rollback(self) -> Result<()> {
        if let PairConn::Tx(tx) = self {
            tx.rollback().await?;
        }
        Ok(())
    }
}

/// The history row's parameters, after the pair statement's (PostgreSQL's single statement).
fn with_history_binds<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    action_id: &str,
    action: Action,
    acting: &str,
    message: &Option<String>,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(action_id.to_owned())
        .bind(action.as_str())
        .bind(acting.to_owned())
        .bind(message.clone())
        .bind(now)
}
