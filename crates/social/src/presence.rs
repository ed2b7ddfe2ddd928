//! Who is online: a user is online while they hold at least one authenticated connection to
//! any instance of the service.
//!
//! Each instance counts its own connections per user. With Redis, an instance also records
//! "user U has connections here" in the hash `pchat:social:presence:<U>` (one field per
//! instance) and in its own set `pchat:social:instance-users:<id>`, and keeps its liveness key
//! `pchat:social:instance:<id>` alive (expiry `SOCIAL_PRESENCE_TTL_SECONDS`, default 30,
//! refreshed three times per period). A user's first connection on an instance announces
//! "online" only if no other live instance has them; their last connection on an instance
//! announces "offline" only if no other live instance still has them. Each check runs as one Lua
//! script, so Redis orders them, and an instance handles one user's changes one at a time.
//!
//! If an instance dies without closing its connections, its liveness key expires; the next
//! [`Presence::upkeep`] on any instance (one script, so exactly one instance does it) removes
//! the dead instance and reports its users who are now online nowhere, and the service announces
//! them offline to their friends. An instance that was taken for dead (say Redis was out of
//! reach for longer than the TTL) registers its users again and reports those it brings back
//! online. If Redis is unreachable, an instance decides on its own connections alone (and logs
//! it).

use std::collections::HashMap;
use std::time::Duration;

/// Keys and key prefixes.
const PRESENCE_KEY: &str = "pchat:social:presence:";
const INSTANCE_KEY: &str = "pchat:social:instance:";
const INSTANCE_USERS_KEY: &str = "pchat:social:instance-users:";
const INSTANCES: &str = "pchat:social:instances";

/// KEYS[1] = the user's presence hash, KEYS[2] = this instance's user set, ARGV[1] = this
/// instance, ARGV[2] = "join" | "leave", ARGV[3] = the liveness key prefix, ARGV[4] = the user.
/// Returns how many other live instances have the user.
const SCRIPT: &str = r#"
if ARGV[2] == 'join' then
  redis.call('HSET', KEYS[1], ARGV[1], '1')
  redis.call('SADD', KEYS[2], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[4])
end
local others = 0
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  if id ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[3] .. id) == 1 then
      others = others + 1
    else
      redis.call('HDEL', KEYS[1], id)
    end
  end
end
return others
"#;

/// KEYS = users' presence hashes, ARGV[1] = the liveness key prefix. Returns 1 or 0 per key:
/// whether a live instance (this one included) has that user.
const ONLINE_SCRIPT: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = 0
  for _, id in ipairs(redis.call('HKEYS', key)) do
    if redis.call('EXISTS', ARGV[1] .. id) == 1 then
      out[i] = 1
      break
    end
  end
end
return out
"#;

/// KEYS[1] = this instance's liveness key, KEYS[2] = the set of instances; ARGV[1] = this
/// instance, ARGV[2] = the TTL in seconds. Returns 1 if the liveness key was still there.
const HEARTBEAT_SCRIPT: &str = r#"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return existed
"#;

/// KEYS[1] = the set of instances; ARGV[1] = liveness prefix, ARGV[2] = instance-users prefix,
/// ARGV[3] = presence prefix. Removes dead instances; returns their users now online nowhere.
const SWEEP_SCRIPT: &str = r#"
local offline = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    for _, user in ipairs(redis.call('SMEMBERS', ARGV[2] .. id)) do
      local key = ARGV[3] .. user
      redis.call('HDEL', key, id)
      local live = false
      for _, other in ipairs(redis.call('HKEYS', key)) do
        if redis.call('EXISTS', ARGV[1] .. other) == 1 then
          live = true
          break
        end
      end
      if not live then
        table.insert(offline, user)
      end
    end
    redis.call('DEL', ARGV[2] .. id)
    redis.call('SREM', KEYS[1], id)
  end
end
return offline
"#;

/// What one [`Presence::upkeep`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// Users of dead instances who are online nowhere now.
    pub offline: Vec<String>,
    /// This instance's users it brought back after being taken for dead.
    pub online: Vec<String>,
}

/// Users asked about in one script run.
const ONLINE_BATCH: usize = 500;

/// Errors connecting to Redis.
#[derive(Debug, thiserror::Error)]
#[error("Redis: {0}")]
pub struct PresenceError(String);

struct Shared {
    conn: redis::aio::MultiplexedConnection,
    instance: String,
    ttl: Duration,
}

/// Connection counts, local or shared through Redis.
pub struct Presence {
    local: tokio::sync::Mutex<HashMap<String, usize>>,
    shared: Option<Shared>,
}

impl Default for Presence {
    fn default() -> Self {
        Presence {
            local: tokio::sync::Mutex::new(HashMap::new()),
            shared: None,
        }
    }
}

impl Presence {
    /// Presence shared with the other instances through Redis at `url`; this instance counts
    /// as alive for `ttl` after each [`Presence::upkeep`] (call it every `ttl / 3`).
    pub async fn with_redis(url: &str, ttl: Duration) -> Result<Presence, PresenceError> {
        let client = redis::Client::open(url).map_err(|e| PresenceError(e.to_string()))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| PresenceError(e.to_string()))?;
        let presence = Presence {
            local: tokio::sync::Mutex::new(HashMap::new()),
            shared: Some(Shared {
                conn,
                instance: format!("{:016x}", rand::random::<u64>()),
                ttl: ttl.max(Duration::from_secs(1)),
            }),
        };
        presence
            .heartbeat()
            .await
            .map_err(|e| PresenceError(e.to_string()))?;
        Ok(presence)
    }

    /// How often to call [`Presence::upkeep`] (`None` without Redis).
    pub fn upkeep_period(&self) -> Option<Duration> {
        self.shared.as_ref().map(|s| s.ttl / 3)
    }

    /// Keeps this instance alive and removes dead ones (see the module doc).
    pub async fn upkeep(&self) -> Upkeep {
        let mut out = Upkeep::default();
        let Some(shared) = &self.shared else {
            return out;
        };
        match self.heartbeat().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("this instance was taken for dead; registering its users again");
                let local = self.local.lock().await;
                for address in local.keys() {
                    if self.others(address, "join").await == 0 {
                        out.online.push(address.clone());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot refresh this instance's liveness in Redis");
                return out;
            }
        }
        let mut conn = shared.conn.clone();
        let swept: redis::RedisResult<Vec<String>> = redis::cmd("EVAL")
            .arg(SWEEP_SCRIPT)
            .arg(1)
            .arg(INSTANCES)
            .arg(INSTANCE_KEY)
            .arg(INSTANCE_USERS_KEY)
            .arg(PRESENCE_KEY)
            .query_async(&mut conn)
            .await;
        match swept {
            Ok(users) => out.offline = users,
            Err(e) => tracing::warn!(error = %e, "cannot sweep dead instances"),
        }
        out
    }

    /// Refreshes this instance's liveness; false if it had expired.
    async fn heartbeat(&self) -> redis::RedisResult<bool> {
        let Some(shared) = &self.shared else {
            return Ok(true);
        };
        let mut conn = shared.conn.clone();
        let existed: i64 = redis::cmd("EVAL")
            .arg(HEARTBEAT_SCRIPT)
            .arg(2)
            .arg(format!("{INSTANCE_KEY}{}", shared.instance))
            .arg(INSTANCES)
            .arg(&shared.instance)
            .arg(shared.ttl.as_secs().max(1))
            .query_async(&mut conn)
            .await?;
        Ok(existed == 1)
    }

    /// A connection of `address` opened; true if that made the user online.
    pub async fn joined(&self, address: &str) -> bool {
        let mut local = self.local.lock().await;
        let n = local.entry(address.to_owned()).or_insert(0);
        *n += 1;
        if *n > 1 {
            return false;
        }
        self.others(address, "join").await == 0
    }

    /// A connection of `address` closed; true if that made the user offline.
    pub async fn left(&self, address: &str) -> bool {
        let mut local = self.local.lock().await;
        match local.get_mut(address) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                local.remove(address);
                self.others(address, "leave").await == 0
            }
            None => false,
        }
    }

    /// Whether `address` has a connection to this instance.
    pub async fn here(&self, address: &str) -> bool {
        self.local.lock().await.contains_key(address)
    }

    /// Which of `addresses` are online: connected here, or (with Redis) to a live instance.
    pub async fn online_among(&self, addresses: &[String]) -> Vec<bool> {
        let mut out: Vec<bool> = {
            let local = self.local.lock().await;
            addresses.iter().map(|a| local.contains_key(a)).collect()
        };
        let Some(shared) = &self.shared else {
            return out;
        };
        let mut conn = shared.conn.clone();
        for (chunk_index, chunk) in addresses.chunks(ONLINE_BATCH).enumerate() {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(ONLINE_SCRIPT).arg(chunk.len());
            for a in chunk {
                cmd.arg(format!("{PRESENCE_KEY}{a}"));
            }
            cmd.arg(INSTANCE_KEY);
            let result: redis::RedisResult<Vec<i64>> = cmd.query_async(&mut conn).await;
            match result {
                Ok(flags) => {
                    for (i, flag) in flags.into_iter().enumerate() {
                        if let Some(slot) = out.get_mut(chunk_index * ONLINE_BATCH + i) {
                            *slot |= flag == 1;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Redis presence unavailable; reporting this instance's connections");
                    break;
                }
            }
        }
        out
    }

    /// Other live instances holding `address` after recording `op` (0 without Redis or when
    /// Redis fails).
    async fn others(&self, address: &str, op: &str) -> i64 {
        let Some(shared) = &self.shared else {
            return 0;
        };
        let mut conn = shared.conn.clone();
        let result: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(2)
            .arg(format!("{PRESENCE_KEY}{address}"))
            .arg(format!("{INSTANCE_USERS_KEY}{}", shared.instance))
            .arg(&shared.instance)
            .arg(op)
            .arg(INSTANCE_KEY)
            .arg(address)
            .query_async(&mut conn)
            .await;
        match result {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "Redis presence unavailable; deciding on this instance's connections");
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_counts_make_first_and_last_connections_count() {
        let p = Presence::default();
        assert!(p.joined("0xa").await);
        assert!(!p.joined("0xa").await);
        assert!(p.here("0xa").await);
        assert!(!p.left("0xa").await);
        assert!(p.left("0xa").await);
        assert!(!p.here("0xa").await);
        assert!(
            !p.left("0xa").await,
            "an unknown user leaving changes nothing"
        );
    }
}
