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
//!
//! The methods of [`Store`] are written in one module per concern: settings, friendships
//! ([`Store::apply_action`] and the friend and request lists), blocks ([`Store::block`],
//! [`Store::unblock`]), the retry ([`Store::retrying`]) and pages (a list comes back as a
//! [`Page`], its items and the total). Lists that run both ways (requests, blocks) take a
//! [`Direction`]. The reads are methods of [`Reader`] (which a [`Store`] dereferences to), so
//! a `&Reader` can be handed out without handing out the writes.

mod blocks;
mod friendships;
mod page;
mod retry;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use social_core::FriendshipError;
use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

pub use friendships::{Applied, PendingRequest};
pub use page::Page;
pub use pchat_core::Privacy;
pub use retry::{MAX_ATTEMPTS, is_retryable};

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

/// Which way a list between `address` and the others runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Toward `address`: the requests it received, the users who blocked it.
    Incoming,
    /// From `address`: the requests it sent, the users it blocked.
    Outgoing,
}

/// The store's reads, none of which writes: a caller that must pair every write with
/// something (the social service's cache invalidation) can hand out a `&Reader` and keep the
/// [`Store`] to itself. A [`Store`] dereferences to its reader, so `store.friends(…)` works.
#[derive(Debug, Clone)]
pub struct Reader {
    pool: AnyPool,
}

/// The social store: the reads of its [`Reader`], and the writes.
#[derive(Debug, Clone)]
pub struct Store {
    reader: Reader,
    pool: AnyPool,
    backend: Backend,
    /// Changes to one pair take turns within this process (a pair maps to one of these by
    /// hash), so they do not keep losing their compare-and-set to each other; across
    /// processes the compare-and-set and its retries still decide.
    pair_turns: Arc<[tokio::sync::Mutex<()>]>,
}

/// How many locks the pairs are spread over (a pair's change holds one for two statements).
const PAIR_TURNS: usize = 256;

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
            reader: Reader { pool: pool.clone() },
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

    /// The reads alone.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }
}

impl std::ops::Deref for Store {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}
