//! Profiles (name, picture) shown next to addresses in friend lists, requests and updates.
//! They are decoration, not identity: without a Catalyst, or when it fails, a profile is
//! derived from the address (the address as name, no picture).
//!
//! With `CATALYST_LAMBDAS_URL`, names come from the Catalyst's lambdas: `POST {url}/profiles`
//! with `{"ids": [...]}` answers a JSON array of profiles, each with `avatars[0]` holding
//! `userId`, `name`, `hasClaimedName` and `avatar.snapshots.face256`. Answers are cached for
//! [`PROFILE_TTL`], and a slow or failing Catalyst costs a request at most [`LAMBDAS_TIMEOUT`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use social_proto::v2;

/// How long a Catalyst answer is kept.
pub const PROFILE_TTL: Duration = Duration::from_secs(600);
/// How long "the Catalyst has no profile for this address" is kept (a new user may create one).
pub const MISSING_TTL: Duration = Duration::from_secs(60);
/// Longest wait for the Catalyst.
pub const LAMBDAS_TIMEOUT: Duration = Duration::from_secs(3);
/// Most ids sent in one request to the Catalyst.
pub const LAMBDAS_BATCH: usize = 100;

/// What the service shows for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub address: String,
    pub name: String,
    pub has_claimed_name: bool,
    pub picture_url: String,
}

impl Profile {
    /// The profile of an address nobody described: the address as name.
    pub fn derived(address: &str) -> Profile {
        Profile {
            address: address.to_owned(),
            name: address.to_owned(),
            has_claimed_name: false,
            picture_url: String::new(),
        }
    }

    pub fn friend(&self) -> v2::FriendProfile {
        v2::FriendProfile {
            address: self.address.clone(),
            name: self.name.clone(),
            has_claimed_name: self.has_claimed_name,
            profile_picture_url: self.picture_url.clone(),
            name_color: None,
        }
    }

    pub fn blocked(&self, blocked_at: Option<i64>) -> v2::BlockedUserProfile {
        v2::BlockedUserProfile {
            address: self.address.clone(),
            name: self.name.clone(),
            has_claimed_name: self.has_claimed_name,
            profile_picture_url: self.picture_url.clone(),
            blocked_at,
            name_color: None,
        }
    }
}

/// Profiles found for some addresses (the others are derived).
#[derive(Debug, Default)]
pub struct Profiles(HashMap<String, Profile>);

impl Profiles {
    pub fn get(&self, address: &str) -> Profile {
        self.0
            .get(address)
            .cloned()
            .unwrap_or_else(|| Profile::derived(address))
    }
}

/// Where profiles come from.
#[async_trait]
pub trait ProfileSource: Send + Sync {
    /// Profiles for some of `addresses` (lower-case); never fails (missing ones are derived).
    async fn profiles(&self, addresses: &[String]) -> Profiles;
}

/// No Catalyst: every profile is derived from its address.
pub struct DerivedProfiles;

#[async_trait]
impl ProfileSource for DerivedProfiles {
    async fn profiles(&self, _addresses: &[String]) -> Profiles {
        Profiles::default()
    }
}

/// Errors configuring the lambdas client.
#[derive(Debug, thiserror::Error)]
pub enum LambdasError {
    #[error("CATALYST_LAMBDAS_URL {0:?} is not an http(s) URL")]
    BadUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Why one profiles request to the lambdas failed (logged; the addresses are shown instead).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("the Catalyst answered {0}")]
    Status(reqwest::StatusCode),
    #[error("unexpected answer: {0}")]
    Body(#[from] serde_json::Error),
}

/// Profiles from a Catalyst's lambdas, cached.
pub struct LambdasProfiles {
    url: String,
    http: reqwest::Client,
    cache: quick_cache::sync::Cache<String, (Instant, Option<Profile>)>,
}

#[derive(Deserialize)]
struct LambdasProfile {
    #[serde(default)]
    avatars: Vec<LambdasAvatar>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LambdasAvatar {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    eth_address: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    unclaimed_name: Option<String>,
    #[serde(default)]
    has_claimed_name: bool,
    #[serde(default)]
    avatar: Option<LambdasAvatarBody>,
}

#[derive(Deserialize)]
struct LambdasAvatarBody {
    #[serde(default)]
    snapshots: Option<LambdasSnapshots>,
}

#[derive(Deserialize)]
struct LambdasSnapshots {
    #[serde(default)]
    face256: Option<String>,
}

impl LambdasProfiles {
    /// `url` is the lambdas base, e.g. `https://peer.decentraland.org/lambdas`.
    pub fn new(url: &str) -> Result<Self, LambdasError> {
        let url = url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(LambdasError::BadUrl(url));
        }
        let http = reqwest::Client::builder()
            .timeout(LAMBDAS_TIMEOUT)
            .build()
            .map_err(|e| LambdasError::Client(e.to_string()))?;
        Ok(LambdasProfiles {
            url,
            http,
            cache: quick_cache::sync::Cache::new(100_000),
        })
    }

    async fn fetch(&self, ids: &[String]) -> Result<Vec<Profile>, FetchError> {
        let response = self
            .http
            .post(format!("{}/profiles", self.url))
            .json(&serde_json::json!({ "ids": ids }))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        let body = response.bytes().await?;
        let profiles: Vec<LambdasProfile> = serde_json::from_slice(&body)?;
        Ok(profiles.into_iter().filter_map(parse).collect())
    }
}

/// A profile from the lambdas' JSON, if it names an address.
fn parse(p: LambdasProfile) -> Option<Profile> {
    let avatar = p.avatars.into_iter().next()?;
    let address = avatar
        .user_id
        .or(avatar.eth_address)
        .and_then(|a| pchat_core::normalize_address_owned(a).ok())?;
    let name = avatar
        .name
        .filter(|n| !n.trim().is_empty())
        .or(avatar.unclaimed_name.filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| address.clone());
    let picture_url = avatar
        .avatar
        .and_then(|a| a.snapshots)
        .and_then(|s| s.face256)
        .unwrap_or_default();
    Some(Profile {
        address,
        name,
        has_claimed_name: avatar.has_claimed_name,
        picture_url,
    })
}

#[async_trait]
impl ProfileSource for LambdasProfiles {
    async fn profiles(&self, addresses: &[String]) -> Profiles {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for a in addresses {
            match self.cache.get(a) {
                Some((at, p))
                    if at.elapsed()
                        < if p.is_some() {
                            PROFILE_TTL
                        } else {
                            MISSING_TTL
                        } =>
                {
                    if let Some(p) = p {
                        found.insert(a.clone(), p);
                    }
                }
                _ if !missing.contains(a) => missing.push(a.clone()),
                _ => {}
            }
        }
        for batch in missing.chunks(LAMBDAS_BATCH) {
            match self.fetch(batch).await {
                Ok(profiles) => {
                    let now = Instant::now();
                    let mut by_address: HashMap<String, Profile> = profiles
                        .into_iter()
                        .map(|p| (p.address.clone(), p))
                        .collect();
                    for a in batch {
                        // Remember "no profile" too, so that unknown users are not asked for
                        // again and again.
                        let p = by_address.remove(a);
                        self.cache.insert(a.clone(), (now, p.clone()));
                        if let Some(p) = p {
                            found.insert(a.clone(), p);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Catalyst profiles unavailable; showing addresses")
                }
            }
        }
        Profiles(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_json_becomes_profiles() {
        let json = r#"[
          {"avatars":[{"userId":"0xAbCdEf0123456789abcdef0123456789ABCDEF01","name":"alice#ef01",
            "hasClaimedName":false,"avatar":{"snapshots":{"face256":"https://x/face.png","body":"b"}}}],
           "timestamp":1},
          {"avatars":[{"ethAddress":"0x1111111111111111111111111111111111111111","name":"",
            "unclaimedName":"bob","hasClaimedName":false}]},
          {"avatars":[]},
          {"avatars":[{"userId":"not an address","name":"x"}]}
        ]"#;
        let parsed: Vec<LambdasProfile> = serde_json::from_str(json).expect("json");
        let profiles: Vec<Profile> = parsed.into_iter().filter_map(parse).collect();
        assert_eq!(
            profiles,
            vec![
                Profile {
                    address: "0xabcdef0123456789abcdef0123456789abcdef01".into(),
                    name: "alice#ef01".into(),
                    has_claimed_name: false,
                    picture_url: "https://x/face.png".into(),
                },
                Profile {
                    address: "0x1111111111111111111111111111111111111111".into(),
                    name: "bob".into(),
                    has_claimed_name: false,
                    picture_url: String::new(),
                },
            ]
        );
    }

    #[test]
    fn missing_profiles_are_derived() {
        let p = Profiles::default().get("0xabc");
        assert_eq!(p, Profile::derived("0xabc"));
        assert_eq!(p.friend().name, "0xabc");
        assert_eq!(p.blocked(Some(5)).blocked_at, Some(5));
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(LambdasProfiles::new("ftp://x").is_err());
        assert!(LambdasProfiles::new("http://127.0.0.1:1/lambdas/").is_ok());
    }
}
