//! A [`ContractWalletValidator`] that asks a Catalyst's lambdas:
//! `POST {lambdas}/crypto/validate-signature` with `{authChain, timestamp}`, answered by
//! `{valid, ownerAddress}`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::crypto::Address;
use crate::error::AuthError;
use crate::link::AuthLink;
use crate::verify::ContractWalletValidator;

/// Validates EIP-1654 chains through a Catalyst.
#[derive(Debug, Clone)]
pub struct CatalystValidator {
    url: String,
    client: reqwest::Client,
}

impl CatalystValidator {
    /// `lambdas_url` is the Catalyst lambdas base, e.g. `https://peer.decentraland.org/lambdas`.
    pub fn new(lambdas_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let url = format!(
            "{}/crypto/validate-signature",
            lambdas_url.trim_end_matches('/')
        );
        Ok(CatalystValidator { url, client })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    auth_chain: &'a [AuthLink],
    timestamp: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    valid: bool,
    owner_address: Option<String>,
    error: Option<String>,
}

#[async_trait]
impl ContractWalletValidator for CatalystValidator {
    async fn validate(&self, chain: &[AuthLink], timestamp_ms: i64) -> Result<Address, AuthError> {
        let resp = self
            .client
            .post(&self.url)
            .json(&Request {
                auth_chain: chain,
                timestamp: timestamp_ms,
            })
            .send()
            .await
            .map_err(|e| AuthError::ValidatorUnavailable(e.to_string()))?;
        if resp.status().is_server_error() {
            return Err(AuthError::ValidatorUnavailable(format!(
                "status {}",
                resp.status()
            )));
        }
        let body: Response = resp
            .json()
            .await
            .map_err(|e| AuthError::ValidatorUnavailable(e.to_string()))?;
        if !body.valid {
            return Err(AuthError::ContractWalletRejected(
                body.error
                    .unwrap_or_else(|| "the Catalyst answered valid=false".into()),
            ));
        }
        body.owner_address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| AuthError::ContractWalletRejected("no valid ownerAddress".into()))
    }
}
