//! The deny list: wallets refused a token. Loaded from `DENYLIST_JSON_URL` (http(s) URL, file://
//! URL or path) as `{"users":[{"wallet":"0x…"}]}` and refreshed in the background; a failed
//! refresh keeps the last good list.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize;

/// The current deny list (lower-case addresses).
#[derive(Default)]
pub struct DenyList {
    wallets: ArcSwap<HashSet<String>>,
}

impl DenyList {
    pub fn contains(&self, address: &str) -> bool {
        self.wallets.load().contains(address)
    }

    pub fn len(&self) -> usize {
        self.wallets.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn replace(&self, wallets: HashSet<String>) {
        self.wallets.store(Arc::new(wallets));
    }
}

#[derive(Deserialize)]
struct Document {
    users: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    wallet: String,
}

/// Errors loading the deny list.
#[derive(Debug, thiserror::Error)]
pub enum DenyListError {
    #[error("cannot fetch the deny list: {0}")]
    Fetch(String),
    #[error(
        "the deny list is not valid JSON of the form {{\"users\":[{{\"wallet\":\"0x…\"}}]}}: {0}"
    )]
    Parse(String),
}

/// Parses a deny-list document into lower-case addresses (invalid entries are skipped).
pub fn parse(text: &str) -> Result<HashSet<String>, DenyListError> {
    let doc: Document =
        serde_json::from_str(text).map_err(|e| DenyListError::Parse(e.to_string()))?;
    Ok(doc
        .users
        .into_iter()
        .filter_map(|e| pchat_core::normalize_address(e.wallet.trim()).ok())
        .collect())
}

/// Where the deny list is read from.
#[derive(Debug, Clone)]
pub enum DenyListSource {
    Http {
        url: String,
        client: reqwest::Client,
    },
    File(std::path::PathBuf),
}

impl DenyListSource {
    pub fn new(location: &str) -> Result<Self, DenyListError> {
        if location.starts_with("http://") || location.starts_with("https://") {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| DenyListError::Fetch(e.to_string()))?;
            Ok(DenyListSource::Http {
                url: location.to_owned(),
                client,
            })
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            Ok(DenyListSource::File(path.into()))
        }
    }

    pub async fn load(&self) -> Result<HashSet<String>, DenyListError> {
        let text = match self {
            DenyListSource::Http { url, client } => {
                let resp = client
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| DenyListError::Fetch(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(DenyListError::Fetch(format!(
                        "{url} answered {}",
                        resp.status()
                    )));
                }
                resp.text()
                    .await
                    .map_err(|e| DenyListError::Fetch(e.to_string()))?
            }
            DenyListSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| DenyListError::Fetch(format!("{}: {e}", path.display())))?,
        };
        parse(&text)
    }
}

/// Loads the list now and then every `every`; retries every 5 s until the first success.
/// The task ends when the [`DenyList`] is dropped.
pub fn spawn_refresh(
    list: &Arc<DenyList>,
    source: DenyListSource,
    every: Duration,
    on_refresh: impl Fn(Result<usize, &DenyListError>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(list);
    tokio::spawn(async move {
        let mut loaded_once = false;
        loop {
            let result = source.load().await;
            let Some(list) = weak.upgrade() else { return };
            match result {
                Ok(wallets) => {
                    let n = wallets.len();
                    list.replace(wallets);
                    loaded_once = true;
                    on_refresh(Ok(n));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deny list refresh failed; keeping the previous list");
                    on_refresh(Err(&e));
                }
            }
            drop(list);
            let wait = if loaded_once {
                every
            } else {
                every.min(Duration::from_secs(5))
            };
            tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let set = parse(r#"{"users":[{"wallet":"0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"},{"wallet":"bad"}]}"#)
            .expect("parses");
        assert_eq!(set.len(), 1);
        assert!(set.contains("0xabcdef0123456789abcdef0123456789abcdef01"));
        assert!(parse("{}").is_err());
        assert!(parse("nope").is_err());
    }
}
