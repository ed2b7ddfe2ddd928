//! ADR-44 auth chains and signed fetch, without network I/O.
//!
//! A Decentraland user proves who they are with an *auth chain*: the owner wallet (`SIGNER`)
//! signs a short-lived delegation to an ephemeral key (`ECDSA_EPHEMERAL`), and the ephemeral
//! key signs the request (`ECDSA_SIGNED_ENTITY`). Over HTTP the links travel in the headers
//! `x-identity-auth-chain-N`, with `x-identity-timestamp` and `x-identity-metadata`
//! ("signed fetch").
//!
//! Layout:
//! - [`crypto`]: keys, addresses, EIP-191 signing and recovery (libsecp256k1).
//! - [`link`]: link types and the ephemeral delegation text.
//! - [`jsdate`]: the delegation's `Expiration:` date, read like JavaScript's `Date.parse`.
//! - [`signed_fetch`]: header names, the two request-string formats, header parsing.
//! - [`identity`]: creating chains and signed-fetch headers.
//! - [`verify`]: the [`Verifier`] (time window, delegation cache, metadata rules, and the
//!   [`ContractWalletValidator`] boundary for EIP-1654 wallets).
//! - `catalyst` (feature `catalyst`): a validator that asks a Catalyst over HTTP.
//!
//! Every error is an [`AuthError`], whose [`AuthError::status`] is the HTTP status to answer.

pub mod crypto;
pub mod error;
pub mod identity;
pub mod jsdate;
pub mod link;
pub mod signed_fetch;
pub mod verify;

#[cfg(feature = "catalyst")]
pub mod catalyst;

pub use crypto::{Address, Wallet, is_valid_address};
pub use error::{AuthError, CryptoError, EphemeralPayloadError, MetadataRuleError};
pub use identity::Identity;
pub use link::{AuthLink, LinkType};
pub use signed_fetch::{PayloadFormat, SignedHeaders};
pub use verify::{
    ContractWalletValidator, DEFAULT_WINDOW, MetadataRule, VerifiedRequest, Verifier,
    explorer_signer_rule, not_scene_signer_rule,
};

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
