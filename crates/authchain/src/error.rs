//! Error types. [`AuthError`] is what a verifier returns; [`AuthError::status`] maps it to the
//! HTTP status the reference middleware answers (400 for malformed input, 401 for a signature,
//! expiry or time-window failure, 503 when a contract-wallet validator cannot be reached).

use thiserror::Error;

/// Errors from key, address and signature primitives.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    #[error("invalid address: expected 0x followed by 40 hex digits")]
    InvalidAddress,
    #[error("invalid private key")]
    InvalidPrivateKey,
    #[error("malformed signature: expected 0x followed by 130 hex digits with v in 0, 1, 27 or 28")]
    MalformedSignature,
    #[error("signature recovery failed")]
    RecoveryFailed,
}

/// Why a metadata rule ([`crate::MetadataRule`]) refused a request; the message is the 400's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MetadataRuleError {
    /// [`crate::explorer_signer_rule`]: the metadata `signer` is not `dcl:explorer`.
    #[error("Invalid signer: the metadata signer must be dcl:explorer")]
    NotExplorerSigner,
    /// [`crate::not_scene_signer_rule`]: the request is signed by a scene.
    #[error("Scene signers are not allowed")]
    SceneSigner,
}

/// Why an ephemeral delegation text ([`crate::link::parse_ephemeral_message`]) cannot be read;
/// the verifier answers it as an invalid signature of that link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EphemeralPayloadError {
    #[error("ephemeral payload has fewer than 3 lines")]
    TooFewLines,
    #[error("ephemeral payload has no 'Ephemeral address:' line")]
    NoAddressLine,
    #[error("ephemeral payload has no 'Expiration:' line")]
    NoExpirationLine,
    #[error("ephemeral payload has an invalid address")]
    InvalidAddress,
}

/// Why a signed request or auth chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    // ---- 400: the request is malformed ----
    #[error("Invalid Auth Chain: missing header x-identity-auth-chain-0")]
    MissingChain,
    #[error("Invalid Auth Chain: at least 2 links are required, got {0}")]
    TooFewLinks(usize),
    #[error("Invalid Auth Chain: at most {max} links are allowed")]
    TooManyLinks { max: usize },
    #[error("Invalid chain format: link {index}: {reason}")]
    MalformedLink { index: usize, reason: String },
    #[error("Invalid chain timestamp: missing x-identity-timestamp")]
    MissingTimestamp,
    #[error("Invalid chain timestamp: {0}")]
    InvalidTimestamp(String),
    #[error("Invalid metadata: {0}")]
    InvalidMetadata(String),
    #[error(transparent)]
    MetadataRule(#[from] MetadataRuleError),

    // ---- 401: the request is well formed but not authentic or not current ----
    #[error("Expired signature: timestamp is outside the {window_ms} ms window")]
    TimestampOutOfWindow { window_ms: u64 },
    #[error("Invalid signature: ERROR: Malformed authChain: {0}")]
    MalformedChain(String),
    #[error("Invalid signature: ERROR. Link type: {link_type}. {reason}")]
    InvalidSignature { link_type: String, reason: String },
    #[error("Invalid signature: ERROR. Link type: {link_type}. Ephemeral key expired")]
    ExpiredEphemeral { link_type: String },
    #[error("Invalid signature: the signed payload does not match this request")]
    PayloadMismatch,
    #[error(
        "Invalid signature: contract wallet (EIP-1654) chains are not accepted because no \
         Catalyst validate-signature URL is configured"
    )]
    ContractWalletUnsupported,
    #[error("Invalid signature: contract wallet validation failed: {0}")]
    ContractWalletRejected(String),

    // ---- 503: a dependency needed to decide is down ----
    #[error("Contract wallet validator unavailable: {0}")]
    ValidatorUnavailable(String),
}

impl AuthError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        use AuthError::*;
        match self {
            MissingChain
            | TooFewLinks(_)
            | TooManyLinks { .. }
            | MalformedLink { .. }
            | MissingTimestamp
            | InvalidTimestamp(_)
            | InvalidMetadata(_)
            | MetadataRule(_) => 400,
            TimestampOutOfWindow { .. }
            | MalformedChain(_)
            | InvalidSignature { .. }
            | ExpiredEphemeral { .. }
            | PayloadMismatch
            | ContractWalletUnsupported
            | ContractWalletRejected(_) => 401,
            ValidatorUnavailable(_) => 503,
        }
    }

    /// A short stable label for metrics (`auth_failures_total{reason=…}`).
    pub fn reason(&self) -> &'static str {
        use AuthError::*;
        match self {
            MissingChain => "missing_chain",
            TooFewLinks(_) => "too_few_links",
            TooManyLinks { .. } => "too_many_links",
            MalformedLink { .. } => "malformed_link",
            MissingTimestamp => "missing_timestamp",
            InvalidTimestamp(_) => "invalid_timestamp",
            InvalidMetadata(_) => "invalid_metadata",
            MetadataRule(_) => "metadata_rule",
            TimestampOutOfWindow { .. } => "timestamp_window",
            MalformedChain(_) => "malformed_chain",
            InvalidSignature { .. } => "invalid_signature",
            ExpiredEphemeral { .. } => "expired_ephemeral",
            PayloadMismatch => "payload_mismatch",
            ContractWalletUnsupported => "contract_wallet_unsupported",
            ContractWalletRejected(_) => "contract_wallet_rejected",
            ValidatorUnavailable(_) => "validator_unavailable",
        }
    }
}
