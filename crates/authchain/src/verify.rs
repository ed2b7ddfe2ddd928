//! Verification of auth chains and signed requests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use quick_cache::sync::Cache;
use serde_json::{Map, Value};

use crate::crypto::{Address, recover_personal};
use crate::error::{AuthError, MetadataRuleError};
use crate::link::{AuthLink, LinkType, delegation_text, parse_ephemeral_message};
use crate::signed_fetch::{PayloadFormat, SignedHeaders};

/// The default signed-fetch time window (both directions).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Validates chains that contain contract-wallet (EIP-1654) links, which cannot be checked with
/// ECDSA recovery alone: the reference asks a Catalyst's `/crypto/validate-signature`.
#[async_trait]
pub trait ContractWalletValidator: Send + Sync {
    /// Returns the owner address when the whole chain is valid at `timestamp_ms`.
    ///
    /// Errors: [`AuthError::ContractWalletRejected`] when the validator says no,
    /// [`AuthError::ValidatorUnavailable`] when it cannot be asked.
    async fn validate(&self, chain: &[AuthLink], timestamp_ms: i64) -> Result<Address, AuthError>;
}

/// A rule over the request metadata; an `Err` becomes [`AuthError::MetadataRule`], a 400 with
/// the error's message.
pub type MetadataRule = dyn Fn(&Map<String, Value>) -> Result<(), MetadataRuleError> + Send + Sync;

/// The rule of `GET /private-messages/token`: the metadata `signer` must be `dcl:explorer`.
pub fn explorer_signer_rule(metadata: &Map<String, Value>) -> Result<(), MetadataRuleError> {
    match metadata.get("signer").and_then(Value::as_str) {
        Some("dcl:explorer") => Ok(()),
        _ => Err(MetadataRuleError::NotExplorerSigner),
    }
}

/// The rule of the social service: scene-signed requests are refused.
pub fn not_scene_signer_rule(metadata: &Map<String, Value>) -> Result<(), MetadataRuleError> {
    match metadata.get("signer").and_then(Value::as_str) {
        Some("decentraland-kernel-scene") => Err(MetadataRuleError::SceneSigner),
        _ => Ok(()),
    }
}

/// A signed request that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedRequest {
    /// The owner (SIGNER) address, lower case.
    pub address: String,
    pub metadata: Map<String, Value>,
    /// The request-string format the final signature was made over.
    pub format: PayloadFormat,
}

/// Memo of verified ephemeral delegations, so that repeated requests from one session pay one
/// signature recovery instead of two. Keyed by (authority, payload, signature); the expiration
/// is still checked against the clock on every use.
type DelegationCache = Cache<(Address, String, String), (Address, Option<i64>)>;

/// Verifies auth chains and signed-fetch requests.
pub struct Verifier {
    window_ms: i64,
    cache: Option<DelegationCache>,
    contract_wallets: Option<Arc<dyn ContractWalletValidator>>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("window_ms", &self.window_ms)
            .field("cache", &self.cache.as_ref().map(|c| c.capacity()))
            .field("contract_wallets", &self.contract_wallets.is_some())
            .finish()
    }
}

impl Verifier {
    /// A verifier with the default 60 s window, no delegation cache and no contract-wallet
    /// validator.
    pub fn new() -> Self {
        Verifier {
            window_ms: DEFAULT_WINDOW.as_millis() as i64,
            cache: None,
            contract_wallets: None,
        }
    }

    /// Sets the time window (applied both to the past and to the future).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window_ms = window.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// Remembers up to `capacity` verified ephemeral delegations.
    pub fn with_delegation_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Cache::new(capacity));
        self
    }

    /// Accepts contract-wallet chains by asking `validator`.
    pub fn with_contract_wallet_validator(mut self, v: Arc<dyn ContractWalletValidator>) -> Self {
        self.contract_wallets = Some(v);
        self
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Verifies a parsed signed-fetch request for `method` and `path` (URL path only) at
    /// `now_ms`, then applies `rule` to the metadata.
    pub async fn verify_request(
        &self,
        headers: &SignedHeaders,
        method: &str,
        path: &str,
        now_ms: i64,
        rule: Option<&MetadataRule>,
    ) -> Result<VerifiedRequest, AuthError> {
        if (now_ms - headers.timestamp_ms).abs() > self.window_ms {
            return Err(AuthError::TimestampOutOfWindow {
                window_ms: self.window_ms as u64,
            });
        }
        let candidates = headers.payload_candidates(method, path);
        let (owner, format) = self
            .verify_chain(&headers.chain, &candidates, now_ms, headers.timestamp_ms)
            .await?;
        if let Some(rule) = rule {
            rule(&headers.metadata).map_err(AuthError::MetadataRule)?;
        }
        Ok(VerifiedRequest {
            address: owner.to_lower_hex(),
            metadata: headers.metadata.clone(),
            format,
        })
    }

    /// Verifies a chain whose final link must carry one of `candidates` as payload. Returns the
    /// owner and which candidate matched.
    pub async fn verify_chain(
        &self,
        chain: &[AuthLink],
        candidates: &[(PayloadFormat, String)],
        now_ms: i64,
        timestamp_ms: i64,
    ) -> Result<(Address, PayloadFormat), AuthError> {
        let uses_contract_wallet = chain
            .iter()
            .any(|l| l.link_type().is_some_and(LinkType::is_contract_wallet));
        if !uses_contract_wallet {
            return self.verify_ecdsa_chain(chain, candidates, now_ms);
        }
        let validator = self
            .contract_wallets
            .as_ref()
            .ok_or(AuthError::ContractWalletUnsupported)?;
        let (signer, last) = signer_and_last(chain)?;
        let format = matching_format(&last.payload, candidates)?;
        let owner = validator.validate(chain, timestamp_ms).await?;
        if owner != signer {
            return Err(AuthError::ContractWalletRejected(format!(
                "validator answered owner {owner}, chain signer is {signer}"
            )));
        }
        Ok((signer, format))
    }

    /// Verifies a chain made only of ECDSA links, without I/O.
    pub fn verify_ecdsa_chain(
        &self,
        chain: &[AuthLink],
        candidates: &[(PayloadFormat, String)],
        now_ms: i64,
    ) -> Result<(Address, PayloadFormat), AuthError> {
        let (signer, last) = signer_and_last(chain)?;
        let format = matching_format(&last.payload, candidates)?;
        let mut authority = signer;
        for link in &chain[1..chain.len() - 1] {
            if link.link_type() != Some(LinkType::EcdsaEphemeral) {
                return Err(AuthError::MalformedChain(format!(
                    "unexpected link type {} in the middle of the chain",
                    link.kind
                )));
            }
            let (ephemeral, expires_at_ms) = self.delegation(authority, link)?;
            // Valid while the expiration is strictly later than now, as in the reference; a date
            // JavaScript cannot read (or that we refuse, see `jsdate`) fails like there.
            match expires_at_ms {
                None => {
                    return Err(AuthError::InvalidSignature {
                        link_type: link.kind.clone(),
                        reason: "Invalid expiration date in ephemeral payload".into(),
                    });
                }
                Some(exp) if exp <= now_ms => {
                    return Err(AuthError::ExpiredEphemeral {
                        link_type: link.kind.clone(),
                    });
                }
                Some(_) => {}
            }
            authority = ephemeral;
        }
        if last.link_type() != Some(LinkType::EcdsaSignedEntity) {
            return Err(AuthError::MalformedChain(format!(
                "the last link must be ECDSA_SIGNED_ENTITY, got {}",
                last.kind
            )));
        }
        check_signed_by(last, &last.payload, authority)?;
        Ok((signer, format))
    }

    /// Checks that `authority` signed the delegation in `link`; returns the delegate and its
    /// expiration.
    fn delegation(
        &self,
        authority: Address,
        link: &AuthLink,
    ) -> Result<(Address, Option<i64>), AuthError> {
        let key = (authority, link.payload.clone(), link.signature.clone());
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            return Ok(hit);
        }
        // Like the reference: carriage returns are removed before reading and before recovery.
        let text = delegation_text(&link.payload);
        let parsed = parse_ephemeral_message(&text).map_err(|e| AuthError::InvalidSignature {
            link_type: link.kind.clone(),
            reason: e.to_string(),
        })?;
        check_signed_by(link, &text, authority)?;
        let value = (parsed.address, parsed.expires_at_ms);
        if let Some(cache) = &self.cache {
            cache.insert(key, value);
        }
        Ok(value)
    }
}

/// The SIGNER address (first link) and the last link.
fn signer_and_last(chain: &[AuthLink]) -> Result<(Address, &AuthLink), AuthError> {
    if chain.len() < 2 {
        return Err(AuthError::TooFewLinks(chain.len()));
    }
    let first = &chain[0];
    if first.link_type() != Some(LinkType::Signer) {
        return Err(AuthError::MalformedChain(
            "the first link must be SIGNER".into(),
        ));
    }
    let signer: Address = first
        .payload
        .parse()
        .map_err(|_| AuthError::MalformedChain("the SIGNER payload is not an address".into()))?;
    let last = chain.last().ok_or(AuthError::TooFewLinks(0))?;
    Ok((signer, last))
}

fn matching_format(
    payload: &str,
    candidates: &[(PayloadFormat, String)],
) -> Result<PayloadFormat, AuthError> {
    candidates
        .iter()
        .find(|(_, expected)| expected == payload)
        .map(|(format, _)| *format)
        .ok_or(AuthError::PayloadMismatch)
}

fn check_signed_by(link: &AuthLink, message: &str, expected: Address) -> Result<(), AuthError> {
    let actual =
        recover_personal(message, &link.signature).map_err(|e| AuthError::InvalidSignature {
            link_type: link.kind.clone(),
            reason: e.to_string(),
        })?;
    if actual != expected {
        return Err(AuthError::InvalidSignature {
            link_type: link.kind.clone(),
            reason: format!("Invalid signer address. Expected: {expected}. Actual: {actual}."),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(signer: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("signer".into(), Value::String(signer.into()));
        m
    }

    #[test]
    fn metadata_rules_refuse_with_their_own_error() {
        assert_eq!(explorer_signer_rule(&metadata("dcl:explorer")), Ok(()));
        assert_eq!(
            explorer_signer_rule(&metadata("decentraland-kernel-scene")),
            Err(MetadataRuleError::NotExplorerSigner)
        );
        assert_eq!(
            explorer_signer_rule(&Map::new()),
            Err(MetadataRuleError::NotExplorerSigner)
        );
        assert_eq!(not_scene_signer_rule(&metadata("dcl:explorer")), Ok(()));
        assert_eq!(
            not_scene_signer_rule(&metadata("decentraland-kernel-scene")),
            Err(MetadataRuleError::SceneSigner)
        );
        // The 400's message is the rule's, word for word.
        let e = AuthError::from(MetadataRuleError::NotExplorerSigner);
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.to_string(),
            "Invalid signer: the metadata signer must be dcl:explorer"
        );
    }
}
