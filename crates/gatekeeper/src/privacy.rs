//! Where a user's privacy setting comes from: the social service, with a remembered last value
//! and a fallback to `all` so that chat keeps working when the social service cannot answer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pchat_core::Privacy;
use quick_cache::sync::Cache;
use serde::Deserialize;

/// Why a privacy lookup failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("privacy lookup failed: {0}")]
pub struct PrivacyError(pub String);

/// The boundary to the social service.
#[async_trait]
pub trait PrivacySource: Send + Sync {
    /// The privacy setting of a lower-case address.
    async fn privacy(&self, address: &str) -> Result<Privacy, PrivacyError>;
}

/// `GET {base}/v1/users/{address}/privacy-settings` on the social service.
#[derive(Debug, Clone)]
pub struct SocialServicePrivacy {
    base: String,
    client: reqwest::Client,
}

impl SocialServicePrivacy {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, PrivacyError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| PrivacyError(e.to_string()))?;
        Ok(SocialServicePrivacy {
            base: base_url.trim_end_matches('/').to_owned(),
            client,
        })
    }
}

#[derive(Deserialize)]
struct PrivacyBody {
    private_messages_privacy: String,
}

#[async_trait]
impl PrivacySource for SocialServicePrivacy {
    async fn privacy(&self, address: &str) -> Result<Privacy, PrivacyError> {
        let url = format!("{}/v1/users/{address}/privacy-settings", self.base);
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| PrivacyError(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(PrivacyError(format!(
                "social service answered {}",
                resp.status()
            )));
        }
        let body: PrivacyBody = resp.json().await.map_err(|e| PrivacyError(e.to_string()))?;
        body.private_messages_privacy
            .parse()
            .map_err(|e: pchat_core::InvalidPrivacy| {
                PrivacyError(format!("{e}: {:?}", body.private_messages_privacy))
            })
    }
}

/// Where a resolved privacy value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivacyOrigin {
    /// The social service answered.
    Source,
    /// The social service failed; the last value it gave for this user was used.
    LastKnown,
    /// The social service failed and nothing was known: `all`.
    Default,
    /// No social service is configured: `all`.
    Unconfigured,
}

/// Resolves privacy with fallbacks.
pub struct PrivacyResolver {
    source: Option<Arc<dyn PrivacySource>>,
    last_known: Cache<String, Privacy>,
}

impl PrivacyResolver {
    /// `remember` bounds how many users' last values are kept.
    pub fn new(source: Option<Arc<dyn PrivacySource>>, remember: usize) -> Self {
        PrivacyResolver {
            source,
            last_known: Cache::new(remember.max(1)),
        }
    }

    /// The privacy of `address` and where it came from.
    pub async fn resolve(&self, address: &str) -> (Privacy, PrivacyOrigin) {
        let Some(source) = &self.source else {
            return (Privacy::All, PrivacyOrigin::Unconfigured);
        };
        match source.privacy(address).await {
            Ok(p) => {
                self.last_known.insert(address.to_owned(), p);
                (p, PrivacyOrigin::Source)
            }
            Err(e) => match self.last_known.get(address) {
                Some(p) => {
                    tracing::warn!(%address, error = %e, privacy = %p, "social service failed; using the last known privacy");
                    (p, PrivacyOrigin::LastKnown)
                }
                None => {
                    tracing::warn!(%address, error = %e, "social service failed; falling back to privacy 'all'");
                    (Privacy::All, PrivacyOrigin::Default)
                }
            },
        }
    }

    /// Records a value learnt elsewhere (a PATCH from the social service).
    pub fn remember(&self, address: &str, privacy: Privacy) {
        self.last_known.insert(address.to_owned(), privacy);
    }
}
