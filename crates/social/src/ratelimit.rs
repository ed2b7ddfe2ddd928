//! Rate limits on friendship actions and blocks: an abuse control, not an authorization one.
//!
//! What the reference social service (decentraland/social-service-ea: the friends component,
//! its Redis adapter and the UpsertFriendship/BlockUser/UnblockUser handlers) does, and so do we:
//! - Every UpsertFriendship action (request, accept, reject, cancel, delete), BlockUser and
//!   UnblockUser consumes one unit from two counters before anything is read or written: one per
//!   actor (shared by all three procedures), then one per pair. The actor counter is spent
//!   first; when it is over its limit the pair counter is not touched.
//! - The pair counter of a friendship action is the unordered pair (both users spend the same
//!   budget); that of a block or unblock is per direction (blocker → blocked), kept apart from
//!   the friendship one, so that one user cannot use up the budget the other needs to block back.
//! - Fixed windows: a counter's window opens at its first hit and lasts
//!   `FRIENDSHIP_RATE_LIMIT_WINDOW_SECONDS` (60); every attempt counts, also a refused one (Redis
//!   `INCR`, with the expiry set only when the count is 1, in one script). An action is allowed
//!   while the count is at most the limit: `FRIENDSHIP_RATE_LIMIT_PER_ACTOR` (30),
//!   `FRIENDSHIP_RATE_LIMIT_PER_PAIR` (10).
//! - Refused actions are answered in the response's `invalidRequest` case, with a message saying
//!   there were too many friendship or block actions (for all three procedures).
//! - If Redis fails, the action is allowed (fail open), logged, and counted
//!   (`social_friendship_rate_limiter_unavailable_total` here).
//!
//! As there, requests refused as malformed before the check (no action, a bad address, a
//! message too long, blocking oneself) spend nothing. Ours differ in: a limit of 0 turns that
//! limit off (the reference would refuse everything); a friendship request to oneself spends one
//! unit (our store refuses it after the check; the reference's handler before).
//!
//! Storage: with `REDIS_URL` the counters live in Redis (keys `pchat:social:rate:…`, each
//! expiring with its window), so every instance counts against the same limits. Without it they
//! live in this process, in a bounded map of at most [`MEMORY_COUNTERS`] counters (about 100
//! bytes each, ~10 MB at most); when it is full, the least used counters are forgotten first,
//! which can only let an action through, never refuse one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use social_proto::InvalidRequest;

/// Defaults, as in the reference.
pub const DEFAULT_WINDOW_SECS: u64 = 60;
pub const DEFAULT_PER_ACTOR: u64 = 30;
pub const DEFAULT_PER_PAIR: u64 = 10;

/// Most counters kept in memory without Redis.
pub const MEMORY_COUNTERS: usize = 100_000;

/// What a refused action is told (in `invalidRequest`).
pub const LIMITED_MESSAGE: &str = "Too many friendship or block actions: try again later";

/// Longest wait for Redis (connecting or answering) before failing open.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// After a Redis failure, actions fail open at once for this long before reconnecting.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);
const KEY_PREFIX: &str = "pchat:social:rate:";

/// KEYS[1] = the counter, ARGV[1] = the window in milliseconds. Returns the new count.
const HIT_SCRIPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"#;

/// The limits (0 turns a limit off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub window: Duration,
    pub per_actor: u64,
    pub per_pair: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: Duration::from_secs(DEFAULT_WINDOW_SECS),
            per_actor: DEFAULT_PER_ACTOR,
            per_pair: DEFAULT_PER_PAIR,
        }
    }
}

/// Which pair counter an action spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// UpsertFriendship: the unordered pair.
    Friendship,
    /// BlockUser / UnblockUser: the ordered pair, actor → target.
    Block,
}

/// The actor's counter.
pub fn actor_key(actor: &str) -> String {
    format!("{KEY_PREFIX}actor:{actor}")
}

/// The pair's counter for `scope`.
pub fn pair_key(actor: &str, target: &str, scope: Scope) -> String {
    match scope {
        Scope::Friendship => {
            let (a, b) = if actor <= target {
                (actor, target)
            } else {
                (target, actor)
            };
            format!("{KEY_PREFIX}pair:{a}:{b}")
        }
        Scope::Block => format!("{KEY_PREFIX}block:{actor}:{target}"),
    }
}

/// A counter store failed (the limiter then lets the action through).
#[derive(Debug, thiserror::Error)]
#[error("rate-limit counters unavailable: {0}")]
pub struct CounterError(String);

/// Where the counters are kept.
#[async_trait]
pub trait Counters: Send + Sync {
    /// Adds one to `key` in its current window (opened by its first hit, lasting `window`) and
    /// returns the count.
    async fn hit(&self, key: &str, window: Duration) -> Result<u64, CounterError>;
}

/// Counters in this process, bounded (see the module doc).
pub struct MemoryCounters {
    windows: std::sync::Mutex<quick_cache::unsync::Cache<String, (Instant, u64)>>,
}

impl MemoryCounters {
    pub fn new(capacity: usize) -> Self {
        MemoryCounters {
            windows: std::sync::Mutex::new(quick_cache::unsync::Cache::new(capacity.max(1))),
        }
    }

    /// Counters held now.
    pub fn len(&self) -> usize {
        self.windows.lock().map(|w| w.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Counters for MemoryCounters {
    async fn hit(&self, key: &str, window: Duration) -> Result<u64, CounterError> {
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .map_err(|_| CounterError("memory counters poisoned".into()))?;
        match windows.get_mut(key) {
            Some(mut entry) => {
                let (opened, count) = &mut *entry;
                if now.duration_since(*opened) >= window {
                    *opened = now;
                    *count = 0;
                }
                *count = count.saturating_add(1);
                Ok(*count)
            }
            None => {
                windows.insert(key.to_owned(), (now, 1));
                Ok(1)
            }
        }
    }
}

/// Counters in Redis, shared by every instance. Connects lazily; after a failure, fails at once
/// for [`REDIS_RETRY_AFTER`] and then connects again. (`redis`'s `ConnectionManager` would
/// reconnect too, but makes callers wait through its retries; a limiter that fails open must
/// answer at once, so this keeps one multiplexed connection and drops it on any error.)
pub struct RedisCounters {
    client: redis::Client,
    state: std::sync::Mutex<RedisState>,
}

#[derive(Default)]
struct RedisState {
    conn: Option<redis::aio::MultiplexedConnection>,
    retry_at: Option<Instant>,
}

impl RedisCounters {
    /// Counters at `url` (checked here; connected on first use).
    pub fn new(url: &str) -> Result<Self, CounterError> {
        let client = redis::Client::open(url).map_err(|e| CounterError(e.to_string()))?;
        Ok(RedisCounters {
            client,
            state: std::sync::Mutex::new(RedisState::default()),
        })
    }

    fn fail(&self, e: impl std::fmt::Display) -> CounterError {
        if let Ok(mut s) = self.state.lock() {
            s.conn = None;
            s.retry_at = Some(Instant::now() + REDIS_RETRY_AFTER);
        }
        CounterError(e.to_string())
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, CounterError> {
        {
            let mut s = self
                .state
                .lock()
                .map_err(|_| CounterError("Redis state poisoned".into()))?;
            if let Some(conn) = &s.conn {
                return Ok(conn.clone());
            }
            if s.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(CounterError(
                    "Redis failed recently; not retrying yet".into(),
                ));
            }
            // One caller connects; the others fail open meanwhile.
            s.retry_at = Some(Instant::now() + REDIS_RETRY_AFTER);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.fail(e))?;
        if let Ok(mut s) = self.state.lock() {
            s.conn = Some(conn.clone());
            s.retry_at = None;
        }
        Ok(conn)
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn hit(&self, key: &str, window: Duration) -> Result<u64, CounterError> {
        let mut conn = self.connection().await?;
        let count: redis::RedisResult<u64> = redis::cmd("EVAL")
            .arg(HIT_SCRIPT)
            .arg(1)
            .arg(key)
            .arg(window.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await;
        count.map_err(|e| self.fail(e))
    }
}

/// The friendship and block limiter.
pub struct FriendshipLimiter {
    limits: Limits,
    counters: Arc<dyn Counters>,
    limited: AtomicU64,
    unavailable: AtomicU64,
}

impl Default for FriendshipLimiter {
    /// The default limits, in memory.
    fn default() -> Self {
        Self::in_memory(Limits::default())
    }
}

impl FriendshipLimiter {
    pub fn new(limits: Limits, counters: Arc<dyn Counters>) -> Self {
        FriendshipLimiter {
            limits,
            counters,
            limited: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
        }
    }

    pub fn in_memory(limits: Limits) -> Self {
        Self::new(limits, Arc::new(MemoryCounters::new(MEMORY_COUNTERS)))
    }

    /// Counters in Redis at `url`, shared by every instance using it.
    pub fn with_redis(url: &str, limits: Limits) -> Result<Self, CounterError> {
        Ok(Self::new(limits, Arc::new(RedisCounters::new(url)?)))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Actions refused so far.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Actions let through because the counters could not be reached.
    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// Spends one unit of `key`; true if within `limit` (or the counters failed).
    async fn spend(&self, key: &str, limit: u64) -> bool {
        if limit == 0 {
            return true;
        }
        match self.counters.hit(key, self.limits.window).await {
            Ok(count) => count <= limit,
            Err(e) => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, key, "friendship rate limiter unavailable; allowing the action");
                true
            }
        }
    }

    /// Spends one action of `actor` on `target`: the actor's counter, then (if that allowed
    /// it) the pair's. `Err` carries the answer for the client.
    pub async fn check(
        &self,
        actor: &str,
        target: &str,
        scope: Scope,
    ) -> Result<(), InvalidRequest> {
        let allowed = self.spend(&actor_key(actor), self.limits.per_actor).await
            && self
                .spend(&pair_key(actor, target, scope), self.limits.per_pair)
                .await;
        if allowed {
            Ok(())
        } else {
            self.limited.fetch_add(1, Ordering::Relaxed);
            tracing::info!(actor, target, ?scope, "friendship action rate limited");
            Err(InvalidRequest {
                message: Some(LIMITED_MESSAGE.into()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(window_ms: u64, per_actor: u64, per_pair: u64) -> Limits {
        Limits {
            window: Duration::from_millis(window_ms),
            per_actor,
            per_pair,
        }
    }

    async fn allowed(l: &FriendshipLimiter, actor: &str, target: &str, scope: Scope) -> bool {
        l.check(actor, target, scope).await.is_ok()
    }

    #[test]
    fn friendship_pairs_are_unordered_and_block_pairs_directed() {
        assert_eq!(
            pair_key("0xa", "0xb", Scope::Friendship),
            pair_key("0xb", "0xa", Scope::Friendship)
        );
        assert_ne!(
            pair_key("0xa", "0xb", Scope::Block),
            pair_key("0xb", "0xa", Scope::Block)
        );
        assert_ne!(
            pair_key("0xa", "0xb", Scope::Block),
            pair_key("0xa", "0xb", Scope::Friendship)
        );
    }

    #[tokio::test]
    async fn the_pair_limit_is_shared_by_both_users_for_friendship_actions() {
        let l = FriendshipLimiter::in_memory(limits(60_000, 100, 3));
        assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        assert!(allowed(&l, "0xb", "0xa", Scope::Friendship).await);
        assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        assert!(!allowed(&l, "0xb", "0xa", Scope::Friendship).await);
        let refused = l.check("0xa", "0xb", Scope::Friendship).await.unwrap_err();
        assert_eq!(refused.message.as_deref(), Some(LIMITED_MESSAGE));
        // Other pairs and the blocks of this pair are untouched.
        assert!(allowed(&l, "0xa", "0xc", Scope::Friendship).await);
        assert!(allowed(&l, "0xa", "0xb", Scope::Block).await);
        assert_eq!(l.limited(), 2);
    }

    #[tokio::test]
    async fn block_limits_are_per_direction() {
        let l = FriendshipLimiter::in_memory(limits(60_000, 100, 2));
        assert!(allowed(&l, "0xa", "0xb", Scope::Block).await);
        assert!(allowed(&l, "0xa", "0xb", Scope::Block).await);
        assert!(!allowed(&l, "0xa", "0xb", Scope::Block).await);
        // B can still block A back.
        assert!(allowed(&l, "0xb", "0xa", Scope::Block).await);
        assert!(allowed(&l, "0xb", "0xa", Scope::Block).await);
        assert!(!allowed(&l, "0xb", "0xa", Scope::Block).await);
    }

    #[tokio::test]
    async fn the_actor_limit_spans_targets_and_procedures_and_is_spent_first() {
        let l = FriendshipLimiter::in_memory(limits(60_000, 3, 1));
        assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        assert!(allowed(&l, "0xa", "0xc", Scope::Block).await);
        assert!(allowed(&l, "0xa", "0xd", Scope::Friendship).await);
        // Over the actor limit: refused, and the (fresh) pair counter is not spent.
        assert!(!allowed(&l, "0xa", "0xe", Scope::Friendship).await);
        assert!(allowed(&l, "0xe", "0xa", Scope::Friendship).await);
        // Other actors are not affected.
        assert!(allowed(&l, "0xb", "0xc", Scope::Friendship).await);
    }

    #[tokio::test]
    async fn windows_are_fixed_from_the_first_hit_and_refusals_count() {
        let l = FriendshipLimiter::in_memory(limits(300, 100, 2));
        assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        assert!(!allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        // The window opened at the first hit: it ends ~300 ms after it, not after the last.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        assert!(!allowed(&l, "0xa", "0xb", Scope::Friendship).await);
    }

    #[tokio::test]
    async fn a_zero_limit_is_off() {
        let l = FriendshipLimiter::in_memory(limits(60_000, 0, 0));
        for _ in 0..100 {
            assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        }
    }

    #[tokio::test]
    async fn memory_counters_stay_bounded() {
        let c = MemoryCounters::new(100);
        for i in 0..10_000 {
            c.hit(&format!("k{i}"), Duration::from_secs(60))
                .await
                .expect("memory");
        }
        assert!(c.len() <= 100, "{} counters kept", c.len());
    }

    struct Broken;

    #[async_trait]
    impl Counters for Broken {
        async fn hit(&self, _: &str, _: Duration) -> Result<u64, CounterError> {
            Err(CounterError("down".into()))
        }
    }

    #[tokio::test]
    async fn failing_counters_let_actions_through_and_are_counted() {
        let l = FriendshipLimiter::new(limits(60_000, 1, 1), Arc::new(Broken));
        for _ in 0..5 {
            assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        }
        assert_eq!(l.unavailable(), 10);
        assert_eq!(l.limited(), 0);
    }

    #[tokio::test]
    async fn unreachable_redis_fails_open_at_once() {
        // Nothing listens on port 1.
        let l = FriendshipLimiter::with_redis("redis://127.0.0.1:1/", limits(60_000, 1, 1))
            .expect("valid url");
        let started = Instant::now();
        for _ in 0..5 {
            assert!(allowed(&l, "0xa", "0xb", Scope::Friendship).await);
        }
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(l.unavailable() >= 5);
        assert!(FriendshipLimiter::with_redis("not a url", Limits::default()).is_err());
    }
}
