//! Persistence for the social service on PostgreSQL or SQLite, through sqlx's `Any` driver so
//! that one set of queries serves both (the schema sticks to types both share: TEXT, BIGINT).
//!
//! Concurrency: every change to a pair is a compare-and-set on the pair row's `version` (or an
//! insert that loses to a concurrent insert), retried after re-reading and re-validating with
//! [`social_core::validate`]. So two users requesting each other at once, or an accept racing a
//! cancel, end in one consistent state on both databases.
//!
//! SQLite (the default store) allows one writer at a time: connections use WAL (readers do not
//! wait for the writer) and wait up to [`SQLITE_BUSY_TIMEOUT`] for the write lock, and a change
//! to a pair takes the write lock when its transaction begins (`BEGIN IMMEDIATE`), so the read
//! it validates against cannot go stale before its write. Every write goes through one retry
//! helper ([`Store::retrying`]) that tries again, after a short random pause and at most
//! [`MAX_ATTEMPTS`] times, only what the database itself calls retryable by its error code
//! ([`is_retryable`]); any other error is returned at once.

use pchat_core::now_ms;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use social_core::{
    Action, BlockedMessagesVisibility, FriendshipError, LastAction, SettingsChange,
    SituationReactions, SocialSettings,
};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

pub use pchat_core::Privacy;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rejected(#[from] FriendshipError),
    #[error("too many concurrent changes to the same friendship; try again")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid DATABASE_URL {0:?}: expected postgres://… or sqlite://…")]
    BadUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

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

/// The social store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Changes to one pair take turns within this process (a pair maps to one of these by
    /// hash), so they do not keep losing their compare-and-set to each other; across
    /// processes the compare-and-set and its retries still decide.
    pair_turns: Arc<[tokio::sync::Mutex<()>]>,
}

/// How many locks the pairs are spread over (a pair's change holds one for two statements).
const PAIR_TURNS: usize = 256;

/// Most tries of one write (a lost compare-and-set, or a retryable database error).
pub const MAX_ATTEMPTS: usize = 12;
/// How long a SQLite connection waits for another connection's write lock before it fails
/// with SQLITE_BUSY (then retried, see [`is_retryable`]).
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ordered<'a>(x: &'a str, y: &'a str) -> (&'a str, &'a str) {
    if x <= y { (x, y) } else { (y, x) }
}

/// `$start, $start+1, …` for `n` values.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Connects to `url` (`postgres://…`, `sqlite://path`, `sqlite::memory:` is refused because
    /// each pooled connection would see its own database) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") && !url.contains(":memory:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings a connection before handing it out by default: one extra round trip per
            // query. A broken connection instead fails the query that uses it (and is dropped),
            // which the callers already answer as an internal error.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(&format!(
                            "PRAGMA busy_timeout = {}",
                            SQLITE_BUSY_TIMEOUT.as_millis()
                        ))
                        .execute(&mut *conn)
                        .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            pair_turns: (0..PAIR_TURNS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    // ---------------------------------------------------------------- settings

    /// A user's settings (defaults when the user has none).
    pub async fn settings(&self, address: &str) -> Result<SocialSettings> {
        Ok(self
            .settings_many(&[address.to_owned()])
            .await?
            .remove(address)
            .unwrap_or_default())
    }

    /// Settings of several users; users without a row are absent from the map.
    pub async fn settings_many(
        &self,
        addresses: &[String],
    ) -> Result<HashMap<String, SocialSettings>> {
        if addresses.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT address, private_messages_privacy, blocked_users_messages_visibility, show_situation_reactions \
             FROM social_settings WHERE address IN ({})",
            placeholders(1, addresses.len())
        );
        let mut q = sqlx::query(&sql);
        for a in addresses {
            q = q.bind(a.clone());
        }
        let mut out = HashMap::new();
        for row in q.fetch_all(&self.pool).await? {
            let address: String = row.try_get(0)?;
            out.insert(address, settings_row(&row, 1)?);
        }
        Ok(out)
    }

    /// Changes the given fields of a user's settings in one statement (concurrent changes to
    /// different fields all stick) and returns the result.
    pub async fn upsert_settings(
        &self,
        address: &str,
        change: SettingsChange,
    ) -> Result<SocialSettings> {
        self.retrying(|| async { self.try_upsert_settings(address, change).await.map(Some) })
            .await
    }

    async fn try_upsert_settings(
        &self,
        address: &str,
        change: SettingsChange,
    ) -> Result<SocialSettings> {
        let row = sqlx::query(
            "INSERT INTO social_settings (address, private_messages_privacy, blocked_users_messages_visibility, show_situation_reactions) \
             VALUES ($1, COALESCE($2, $5), COALESCE($3, $6), COALESCE($4, $7)) ON CONFLICT (address) DO UPDATE SET \
             private_messages_privacy = COALESCE($2, social_settings.private_messages_privacy), \
             blocked_users_messages_visibility = COALESCE($3, social_settings.blocked_users_messages_visibility), \
             show_situation_reactions = COALESCE($4, social_settings.show_situation_reactions) \
             RETURNING private_messages_privacy, blocked_users_messages_visibility, show_situation_reactions",
        )
        .bind(address.to_owned())
        .bind(change.private_messages_privacy.map(|p| p.as_str()))
        .bind(change.blocked_users_messages_visibility.map(|v| v.as_str()))
        .bind(change.show_situation_reactions.map(|r| r.as_str()))
        .bind(Privacy::default().as_str())
        .bind(BlockedMessagesVisibility::default().as_str())
        .bind(SituationReactions::default().as_str())
        .fetch_one(&self.pool)
        .await?;
        settings_row(&row, 0)
    }

    // ---------------------------------------------------------------- friendships

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

    /// Runs `attempt` until it answers: `Ok(Some(_))` is the result, `Ok(None)` (a concurrent
    /// change won a compare-and-set) and a retryable database error ([`is_retryable`]) are
    /// tried again after a short random pause that grows with each try, at most
    /// [`MAX_ATTEMPTS`] times in all ([`StoreError::Conflict`] after that, or the last error);
    /// any other error is returned at once.
    pub async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        for n in 0..MAX_ATTEMPTS {
            match attempt().await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(StoreError::Database(e))
                    if n + 1 < MAX_ATTEMPTS && is_retryable(self.backend, &e) =>
                {
                    tracing::debug!(error = %e, attempt = n + 1, "retrying a database write");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(
                2 + rand::random::<u64>() % (5 * (n as u64 + 1)),
            ))
            .await;
        }
        Err(StoreError::Conflict)
    }

    /// One attempt; `Ok(None)` means a concurrent change won and the caller should retry.
    ///
    /// The pair is read (with the blocks between the two users), the rules are checked, and
    /// the change is written only if the pair is still as read: an insert that loses to a
    /// concurrent insert, or an update conditioned on the version. On SQLite the read and the
    /// two writes share a transaction. On PostgreSQL the write of the pair and of its history
    /// row is one statement (a data-modifying `WITH`), which is atomic by itself, so an action
    /// costs two statements and no `BEGIN`/`COMMIT`.
    async fn try_apply(
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
    pub async fn friends(
        &self,
        address: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<String>, i64)> {
        let (rows, total) = self
            .page_with_total(
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
            .await?;
        Ok((
            rows.into_iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?,
            total,
        ))
    }

    /// One round trip for a page whose column `total_column` is `COUNT(*) OVER ()` (the
    /// total on every row); past the last page, where there is no row, `count_sql` gives it.
    /// Both statements take the address as `$1`; the page takes `LIMIT $2 OFFSET $3`.
    async fn page_with_total(
        &self,
        page_sql: &str,
        total_column: usize,
        count_sql: &str,
        address: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<sqlx::any::AnyRow>, i64)> {
        let rows = sqlx::query(page_sql)
            .bind(address.to_owned())
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = match rows.first() {
            Some(r) => r.try_get(total_column)?,
            None if offset == 0 => 0,
            None => sqlx::query(count_sql)
                .bind(address.to_owned())
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        };
        Ok((rows, total))
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
    ) -> Result<(Vec<String>, i64)> {
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
        Ok((
            rows.into_iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?,
            total,
        ))
    }

    /// Requests waiting for `address`'s answer (`received`) or that `address` sent, newest first.
    pub async fn pending_requests(
        &self,
        address: &str,
        received: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<PendingRequest>, i64)> {
        let (cmp, other_col) = if received {
            ("<>", "last_acting_user")
        } else {
            ("=", "address_requested")
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
        let requests = rows
            .into_iter()
            .map(|r| {
                Ok(PendingRequest {
                    id: r.try_get(0)?,
                    address: r.try_get(1)?,
                    message: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((requests, total))
    }

    // ---------------------------------------------------------------- blocks

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
    ) -> Result<(Vec<(String, i64)>, i64)> {
        let (rows, total) = self
            .page_with_total(
                "SELECT blocked_address, blocked_at, COUNT(*) OVER () FROM blocks WHERE blocker_address = $1 \
                 ORDER BY blocked_at DESC, blocked_address LIMIT $2 OFFSET $3",
                2,
                "SELECT COUNT(*) FROM blocks WHERE blocker_address = $1",
                address,
                limit,
                offset,
            )
            .await?;
        let page = rows
            .into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((page, total))
    }

    /// Users `address` blocked (`outgoing`) or who blocked `address`, with the time.
    pub async fn blocks(&self, address: &str, outgoing: bool) -> Result<Vec<(String, i64)>> {
        let sql = if outgoing {
            "SELECT blocked_address, blocked_at FROM blocks WHERE blocker_address = $1 ORDER BY blocked_at DESC, blocked_address"
        } else {
            "SELECT blocker_address, blocked_at FROM blocks WHERE blocked_address = $1 ORDER BY blocked_at DESC, blocker_address"
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

/// Settings from the three columns starting at `first`.
fn settings_row(row: &sqlx::any::AnyRow, first: usize) -> Result<SocialSettings> {
    let privacy: String = row.try_get(first)?;
    let visibility: String = row.try_get(first + 1)?;
    let reactions: String = row.try_get(first + 2)?;
    Ok(SocialSettings {
        private_messages_privacy: privacy
            .parse()
            .map_err(|_| StoreError::Corrupt(privacy.clone()))?,
        blocked_users_messages_visibility: visibility.parse().map_err(StoreError::Corrupt)?,
        show_situation_reactions: reactions.parse().map_err(StoreError::Corrupt)?,
    })
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

/// Whether the database says `e` is worth another try, by its error code (never its text):
/// on PostgreSQL a serialization failure or a deadlock (SQLSTATE `40001`, `40P01`); on SQLite
/// a busy or locked database (primary result codes 5 `SQLITE_BUSY` and 6 `SQLITE_LOCKED`, with
/// their extended codes such as 261 `SQLITE_BUSY_RECOVERY`, 517 `SQLITE_BUSY_SNAPSHOT` or 262
/// `SQLITE_LOCKED_SHAREDCACHE`: the primary code is the low byte). Connection failures are
/// not retried here: during an outage the caller answers an error at once.
pub fn is_retryable(backend: Backend, e: &sqlx::Error) -> bool {
    let Some(code) = e.as_database_error().and_then(|d| d.code()) else {
        return false;
    };
    match backend {
        Backend::Postgres => matches!(code.as_ref(), "40001" | "40P01"),
        Backend::Sqlite => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
    }
}
