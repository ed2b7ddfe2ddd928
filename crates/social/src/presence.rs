//! Who is online: a user is online while they hold at least one authenticated connection to
//! any instance of the service.
//!
//! Each instance counts its own connections per user. With Redis, an instance also records
//! "user U has connections here" in the hash `pchat:social:presence:<U>` (one field per
//! instance) and keeps its own liveness key `pchat:social:instance:<id>` alive (a 30 s expiry,
//! refreshed every 10 s). A user's first connection on an instance announces "online" only if no
//! other live instance has them; their last connection on an instance announces "offline" only
//! if no other live instance still has them. Both checks run as one Lua script, so Redis orders
//! them, and an instance handles one user's changes one at a time, in order.
//!
//! If an instance dies without closing its connections, its liveness key expires and its users
//! stop counting as online there within 30 s (fields of dead instances are removed lazily); their
//! friends are not sent an "offline" for them. If Redis is unreachable, the instance decides on
//! its own connections alone (and logs it).

use std::collections::HashMap;
use std::time::Duration;

/// Key prefixes.
const PRESENCE_KEY: &str = "pchat:social:presence:";
const INSTANCE_KEY: &str = "pchat:social:instance:";
/// Liveness key expiry and refresh period.
const INSTANCE_TTL_SECS: u64 = 30;
const HEARTBEAT: Duration = Duration::from_secs(10);

/// KEYS[1] = the user's presence hash, ARGV[1] = this instance, ARGV[2] = "join" | "leave",
/// ARGV[3] = the liveness key prefix. Returns how many other live instances have the user.
const SCRIPT: &str = r#"
if ARGV[2] == 'join' then
  redis.call('HSET', KEYS[1], ARGV[1], '1')
else
  redis.call('HDEL', KEYS[1], ARGV[1])
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

/// Users asked about in one script run.
const ONLINE_BATCH: usize = 500;

/// Errors connecting to Redis.
#[derive(Debug, thiserror::Error)]
#[error("Redis: {0}")]
pub struct PresenceError(String);

struct Shared {
    conn: redis::aio::MultiplexedConnection,
    instance: String,
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
    /// Presence shared with the other instances through Redis at `url`.
    pub async fn with_redis(url: &str) -> Result<Presence, PresenceError> {
        let client = redis::Client::open(url).map_err(|e| PresenceError(e.to_string()))?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| PresenceError(e.to_string()))?;
        let instance = format!("{:016x}", rand::random::<u64>());
        let key = format!("{INSTANCE_KEY}{instance}");
        alive(&mut conn, &key)
            .await
            .map_err(|e| PresenceError(e.to_string()))?;
        let mut beat = conn.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if let Err(e) = alive(&mut beat, &key).await {
                    tracing::warn!(error = %e, "cannot refresh this instance's liveness in Redis");
                }
            }
        });
        Ok(Presence {
            local: tokio::sync::Mutex::new(HashMap::new()),
            shared: Some(Shared { conn, instance }),
        })
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
            .arg(1)
            .arg(format!("{PRESENCE_KEY}{address}"))
            .arg(&shared.instance)
            .arg(op)
            .arg(INSTANCE_KEY)
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

async fn alive(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(key)
        .arg(1)
        .arg("EX")
        .arg(INSTANCE_TTL_SECS)
        .query_async(conn)
        .await
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
