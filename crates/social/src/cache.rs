//! Read-through caches for the two hot reads: a user's social settings and a user's friend list
//! (GetPrivateMessagesSettings, GetFriends, the gatekeeper's privacy lookup, presence).
//!
//! Correctness rules:
//! - Every change is followed, after it is committed, by an invalidation on this instance and
//!   on the bus: [`crate::data::Data`] owns the store and offers only writes that do it (its
//!   doc states the rule), so no write can skip it.
//! - A value loaded from the database is kept only if no invalidation happened while it was
//!   being loaded (a generation counter, checked and inserted under a shared lock that
//!   invalidations take exclusively), so a slow read can never re-insert what a write replaced.
//! - If the bus may have lost messages (Redis reconnected, this instance's receiver lagged),
//!   everything is dropped. If a publish to Redis fails, other instances keep their entry until
//!   it expires: the TTL (`SOCIAL_CACHE_TTL_SECONDS`) bounds that staleness.
//! - Friend lists longer than [`MAX_CACHED_FRIENDS`] are not cached (the callers then ask the
//!   database for just what they need).
//!
//! `quick_cache` provides the bounded, sharded maps; expiry is a load time kept with each value.

use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use social_core::SocialSettings;

/// Longest friend list kept in the cache.
pub const MAX_CACHED_FRIENDS: usize = 5_000;
/// Users whose settings are kept (about 100 bytes each).
pub const SETTINGS_CAPACITY: usize = 200_000;
/// Friend addresses kept across all lists (about 70 bytes each).
pub const FRIENDS_CAPACITY: u64 = 1_000_000;

/// What a change invalidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// The user's friend list.
    Friends,
    /// The user's settings.
    Settings,
    /// Every entry of every user (the address is ignored).
    All,
}

impl Invalidation {
    pub fn to_byte(self) -> u8 {
        match self {
            Invalidation::Friends => 1,
            Invalidation::Settings => 2,
            Invalidation::All => 3,
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Invalidation::Friends),
            2 => Some(Invalidation::Settings),
            3 => Some(Invalidation::All),
            _ => None,
        }
    }
}

/// A user's friends, sorted (the order GetFriends pages in).
#[derive(Debug)]
pub struct FriendList {
    loaded: Instant,
    sorted: Vec<String>,
    /// False for a user with more than [`MAX_CACHED_FRIENDS`] friends: the entry only
    /// remembers that (so the next call does not load them again), `sorted` is empty.
    complete: bool,
}

impl FriendList {
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    pub fn as_slice(&self) -> &[String] {
        &self.sorted
    }

    pub fn contains(&self, address: &str) -> bool {
        self.sorted
            .binary_search_by(|f| f.as_str().cmp(address))
            .is_ok()
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

#[derive(Clone)]
struct FriendWeight;

impl quick_cache::Weighter<String, Arc<FriendList>> for FriendWeight {
    fn weight(&self, _key: &String, val: &Arc<FriendList>) -> u64 {
        val.sorted.len() as u64 + 1
    }
}

/// Hit and miss counts, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// The caches. A TTL of zero turns caching off.
pub struct ReadCache {
    ttl: Duration,
    settings: quick_cache::sync::Cache<String, (Instant, SocialSettings)>,
    friends: quick_cache::sync::Cache<String, Arc<FriendList>, FriendWeight>,
    generation: AtomicU64,
    gate: RwLock<()>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ReadCache {
    /// `settings_capacity` users' settings and friend lists of `friends_capacity` addresses in
    /// total, each entry kept at most `ttl`.
    pub fn new(ttl: Duration, settings_capacity: usize, friends_capacity: u64) -> Self {
        ReadCache {
            ttl,
            settings: quick_cache::sync::Cache::new(settings_capacity.max(1)),
            friends: quick_cache::sync::Cache::with_weighter(
                (friends_capacity as usize / 16).max(1),
                friends_capacity.max(1),
                FriendWeight,
            ),
            generation: AtomicU64::new(0),
            gate: RwLock::new(()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A cache that keeps nothing.
    pub fn disabled() -> Self {
        Self::new(Duration::ZERO, 1, 1)
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The generation to pass to the `put_*` methods: read it before loading from the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn fresh(&self, loaded: Instant, now: Instant) -> bool {
        now.saturating_duration_since(loaded) < self.ttl
    }

    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn settings(&self, address: &str) -> Option<SocialSettings> {
        self.settings_many(std::slice::from_ref(&address))
            .pop()
            .flatten()
    }

    /// The cached settings of each address, in order (one clock read for all).
    pub fn settings_many<A: AsRef<str>>(&self, addresses: &[A]) -> Vec<Option<SocialSettings>> {
        if !self.enabled() {
            return vec![None; addresses.len()];
        }
        let now = Instant::now();
        let found: Vec<Option<SocialSettings>> = addresses
            .iter()
            .map(|a| {
                self.settings
                    .get(a.as_ref())
                    .filter(|(loaded, _)| self.fresh(*loaded, now))
                    .map(|(_, s)| s)
            })
            .collect();
        let hits = found.iter().filter(|f| f.is_some()).count() as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses
            .fetch_add(found.len() as u64 - hits, Ordering::Relaxed);
        found
    }

    pub fn friends(&self, address: &str) -> Option<Arc<FriendList>> {
        if !self.enabled() {
            return None;
        }
        let found = self
            .friends
            .get(address)
            .filter(|list| self.fresh(list.loaded, Instant::now()));
        self.count(found.is_some());
        found
    }

    /// Runs `insert` only if nothing was invalidated since `generation`.
    fn put_if_current(&self, generation: u64, insert: impl FnOnce()) {
        if !self.enabled() {
            return;
        }
        let Ok(_shared) = self.gate.read() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) == generation {
            insert();
        }
    }

    /// Keeps settings loaded at `generation` (a user without a row has the defaults).
    pub fn put_settings(&self, generation: u64, address: &str, settings: SocialSettings) {
        self.put_if_current(generation, || {
            self.settings
                .insert(address.to_owned(), (Instant::now(), settings));
        });
    }

    /// Keeps a friend list loaded at `generation` (`friends` need not be sorted; `total` is
    /// how many friends the user has). A user with more than [`MAX_CACHED_FRIENDS`] gets an
    /// incomplete, empty entry. Returns what was (or would have been) kept.
    pub fn put_friends(
        &self,
        generation: u64,
        address: &str,
        mut friends: Vec<String>,
        total: usize,
    ) -> Arc<FriendList> {
        let complete = total <= MAX_CACHED_FRIENDS && friends.len() >= total;
        if complete {
            friends.sort_unstable();
            friends.dedup();
        } else {
            friends = Vec::new();
        }
        let list = Arc::new(FriendList {
            loaded: Instant::now(),
            sorted: friends,
            complete,
        });
        self.put_if_current(generation, || {
            self.friends.insert(address.to_owned(), list.clone());
        });
        list
    }

    /// Drops what `what` names for `address` (or everything).
    pub fn invalidate(&self, address: &str, what: Invalidation) {
        let _exclusive = self.gate.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        match what {
            Invalidation::Friends => {
                self.friends.remove(address);
            }
            Invalidation::Settings => {
                self.settings.remove(address);
            }
            Invalidation::All => {
                self.friends.clear();
                self.settings.clear();
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pchat_core::Privacy;

    fn only_friends() -> SocialSettings {
        SocialSettings {
            private_messages_privacy: Privacy::OnlyFriends,
            ..SocialSettings::default()
        }
    }

    #[test]
    fn keeps_and_drops_settings() {
        let c = ReadCache::new(Duration::from_secs(60), 100, 1000);
        assert_eq!(c.settings("0xa"), None);
        c.put_settings(c.generation(), "0xa", only_friends());
        assert_eq!(c.settings("0xa"), Some(only_friends()));
        c.invalidate("0xa", Invalidation::Settings);
        assert_eq!(c.settings("0xa"), None);
        assert_eq!(c.stats(), CacheStats { hits: 1, misses: 2 });
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_kept() {
        let c = ReadCache::new(Duration::from_secs(60), 100, 1000);
        let before = c.generation();
        // A change to someone else still counts: the generation is global.
        c.invalidate("0xb", Invalidation::Friends);
        c.put_settings(before, "0xa", only_friends());
        let list = c.put_friends(before, "0xa", vec!["0xc".into()], 1);
        assert!(list.contains("0xc"));
        assert_eq!(c.settings("0xa"), None);
        assert!(c.friends("0xa").is_none());
    }

    #[test]
    fn friend_lists_are_sorted_searchable_and_bounded() {
        let c = ReadCache::new(Duration::from_secs(60), 100, 100_000);
        let list = c.put_friends(
            c.generation(),
            "0xa",
            vec!["0xd".into(), "0xb".into(), "0xc".into()],
            3,
        );
        assert_eq!(list.as_slice(), ["0xb", "0xc", "0xd"]);
        assert!(list.contains("0xc") && !list.contains("0xe"));
        assert!(c.friends("0xa").is_some());
        c.invalidate("0xa", Invalidation::Friends);
        assert!(c.friends("0xa").is_none());

        let long: Vec<String> = (0..=MAX_CACHED_FRIENDS).map(|i| format!("0x{i}")).collect();
        let list = c.put_friends(c.generation(), "0xbig", long, MAX_CACHED_FRIENDS + 7);
        assert!(!list.is_complete() && list.is_empty());
        let kept = c.friends("0xbig").expect("remembered as too long");
        assert!(!kept.is_complete(), "too long to cache");
    }

    #[test]
    fn expiry_and_disabling() {
        let c = ReadCache::new(Duration::from_millis(1), 100, 1000);
        c.put_settings(c.generation(), "0xa", only_friends());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.settings("0xa"), None);

        let off = ReadCache::disabled();
        off.put_settings(off.generation(), "0xa", only_friends());
        assert_eq!(off.settings("0xa"), None);
        assert!(off.friends("0xa").is_none());
    }

    #[test]
    fn all_clears_everything() {
        let c = ReadCache::new(Duration::from_secs(60), 100, 1000);
        c.put_settings(c.generation(), "0xa", only_friends());
        c.put_friends(c.generation(), "0xb", vec!["0xc".into()], 1);
        c.invalidate("", Invalidation::All);
        assert_eq!(c.settings("0xa"), None);
        assert!(c.friends("0xb").is_none());
    }

    #[test]
    fn invalidation_bytes_round_trip() {
        for i in [
            Invalidation::Friends,
            Invalidation::Settings,
            Invalidation::All,
        ] {
            assert_eq!(Invalidation::from_byte(i.to_byte()), Some(i));
        }
        assert_eq!(Invalidation::from_byte(0), None);
    }
}
