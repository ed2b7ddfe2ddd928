//! The social data: the store, its read-through cache and the cache's invalidation, behind one
//! type ([`Data`]) so that a write cannot forget to invalidate (the rule is on [`Data`]; the
//! read side's rules are in [`crate::cache`]).

use std::collections::HashSet;
use std::sync::Arc;

use social_core::{Action, SettingsChange, SocialSettings};
use social_store::{Applied, Page, Reader, Store, StoreError};

use crate::bus::{Bus, Update};
use crate::cache::{FriendList, Invalidation, MAX_CACHED_FRIENDS, ReadCache};

type Result<T> = std::result::Result<T, StoreError>;

/// The store with its cache; every write invalidates what it changed on every instance.
///
/// The rule: every change is followed, after it is committed, by [`ReadCache::invalidate`] on
/// this instance and by an [`Update::Invalidate`](crate::bus::Update) on the bus, so every
/// instance drops the entry (the bus delivers to this instance as well; dropping twice is
/// harmless). `Data` owns the [`Store`] and offers only writes that do both, so the service
/// cannot reach a write of the store that skips them. Reads that the cache serves (settings,
/// friend lists) load through it with its generation check; the other reads go to the store's
/// [`Reader`] ([`Data::reader`]), which cannot write.
pub struct Data {
    store: Store,
    cache: Arc<ReadCache>,
    /// Where invalidations are published (the same bus the service publishes updates on).
    bus: Bus,
}

impl Data {
    pub fn new(store: Store, cache: Arc<ReadCache>, bus: Bus) -> Self {
        Data { store, cache, bus }
    }

    /// The reads the cache does not serve (requests, blocks, mutual friends, a pair's state):
    /// the store's [`Reader`], which cannot write.
    pub fn reader(&self) -> &Reader {
        self.store.reader()
    }

    /// The cache (its statistics; dropping entries is always safe).
    pub fn cache(&self) -> &ReadCache {
        &self.cache
    }

    /// Drops cache entries on this instance when the bus says so (another instance wrote, or
    /// the bus may have lost messages). Runs until the bus closes.
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

    /// An accept, a delete or a block changes both users' friend lists.
    async fn friendship_changed(&self, applied: &Applied) {
        if matches!(
            applied.action,
            Action::Accept | Action::Delete | Action::Block
        ) {
            self.changed(&applied.acting_user, Invalidation::Friends)
                .await;
            self.changed(&applied.other, Invalidation::Friends).await;
        }
    }

    // ---------------------------------------------------------------- writes

    /// Validates and records `acting`'s `action` toward `other` ([`Store::apply_action`]).
    pub async fn apply_action(
        &self,
        acting: &str,
        other: &str,
        action: Action,
        message: Option<&str>,
    ) -> Result<Applied> {
        let applied = self
            .store
            .apply_action(acting, other, action, message)
            .await?;
        self.friendship_changed(&applied).await;
        Ok(applied)
    }

    /// `blocker` blocks `blocked` ([`Store::block`]); a friendship it ends leaves both lists.
    pub async fn block(&self, blocker: &str, blocked: &str) -> Result<Option<Applied>> {
        let applied = self.store.block(blocker, blocked).await?;
        if let Some(applied) = &applied {
            self.friendship_changed(applied).await;
        }
        Ok(applied)
    }

    /// Removes a block ([`Store::unblock`]). Nothing cached changes: blocks are not cached, and
    /// the `delete` that may follow concerns a pair the block already took off both friend
    /// lists.
    pub async fn unblock(&self, blocker: &str, blocked: &str) -> Result<bool> {
        self.store.unblock(blocker, blocked).await
    }

    /// Changes the given fields of `address`'s settings and answers the result; an empty change
    /// writes nothing and answers the stored settings. The entry is invalidated whatever the
    /// outcome: a failed statement may still have been committed.
    pub async fn upsert_settings(
        &self,
        address: &str,
        change: SettingsChange,
    ) -> Result<SocialSettings> {
        let saved = if change.is_empty() {
            self.store.settings(address).await
        } else {
            self.store.upsert_settings(address, change).await
        };
        self.changed(address, Invalidation::Settings).await;
        saved
    }

    // ---------------------------------------------------------------- cached reads

    /// One user's settings (defaults if the user never changed them); a failed read is an
    /// error.
    pub async fn settings(&self, address: &str) -> Result<SocialSettings> {
        let mut all = self
            .settings_of(std::slice::from_ref(&address.to_owned()))
            .await?;
        all.pop()
            .ok_or_else(|| StoreError::Corrupt("no settings answered for one address".into()))
    }

    /// Settings of each address, in order (defaults for users without a row). A failed read
    /// is an error, never defaults.
    pub async fn settings_of(&self, addresses: &[String]) -> Result<Vec<SocialSettings>> {
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
    async fn friend_list(&self, address: &str) -> Result<Option<Arc<FriendList>>> {
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

    /// A page of `address`'s friends (sorted by address) and the total: from the cached list
    /// when there is one, else from the database.
    pub async fn friends(&self, address: &str, limit: i64, offset: i64) -> Result<Page<String>> {
        match self.friend_list(address).await? {
            Some(list) => {
                let all = list.as_slice();
                let start = usize::try_from(offset).unwrap_or(0).min(all.len());
                let end = start
                    .saturating_add(usize::try_from(limit).unwrap_or(0))
                    .min(all.len());
                Ok(Page::new(all[start..end].to_vec(), all.len() as i64))
            }
            None => self.store.friends(address, limit, offset).await,
        }
    }

    /// Whether each of `others` is a friend of `address`, in order.
    pub async fn are_friends(&self, address: &str, others: &[String]) -> Result<Vec<bool>> {
        Ok(match self.friend_list(address).await? {
            Some(list) => others.iter().map(|a| list.contains(a)).collect(),
            None => {
                let set: HashSet<String> = self.store.friends_among(address, others).await?;
                others.iter().map(|a| set.contains(a)).collect()
            }
        })
    }
}
