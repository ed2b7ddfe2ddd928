//! The one retry of every write: a lost compare-and-set or an error the database calls
//! retryable is tried again after a short random pause, a bounded number of times.

use std::time::Duration;

use crate::{Backend, Result, Store, StoreError};

/// Most tries of one write (a lost compare-and-set, or a retryable database error).
pub const MAX_ATTEMPTS: usize = 12;

/// The pause before try `n + 2` (after `n + 1` failed): 2 ms plus a random part below
/// `5 × (n + 1)` ms, so writers that collided do not collide again in step, and the pauses of
/// all [`MAX_ATTEMPTS`] tries stay well under half a second.
fn backoff(n: usize) -> Duration {
    Duration::from_millis(2 + rand::random::<u64>() % (5 * (n as u64 + 1)))
}

impl Store {
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
            if n + 1 < MAX_ATTEMPTS {
                tokio::time::sleep(backoff(n)).await;
            }
        }
        Err(StoreError::Conflict)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_short_bounded_and_grow() {
        for n in 0..MAX_ATTEMPTS {
            let p = backoff(n);
            assert!(p >= Duration::from_millis(2), "{p:?}");
            assert!(p < Duration::from_millis(2 + 5 * (n as u64 + 1)), "{p:?}");
        }
        let worst: u64 = (0..MAX_ATTEMPTS as u64).map(|n| 2 + 5 * (n + 1)).sum();
        assert!(worst < 500, "{worst} ms in all");
    }
}
