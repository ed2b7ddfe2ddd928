//! Creating auth chains: an owner wallet delegates to an ephemeral key, which signs requests.

use chrono::{DateTime, Utc};

use crate::crypto::{Address, Wallet};
use crate::link::{AuthLink, LinkType, ephemeral_message};
use crate::signed_fetch::{METADATA_HEADER, TIMESTAMP_HEADER, chain_header_name, payload_v6};

/// An owner wallet plus a delegated ephemeral key, ready to sign requests.
#[derive(Debug, Clone)]
pub struct Identity {
    owner: Address,
    ephemeral: Wallet,
    expiration: DateTime<Utc>,
    /// SIGNER and ECDSA_EPHEMERAL links, shared by every chain this identity signs.
    prefix: [AuthLink; 2],
}

impl Identity {
    /// Delegates from `owner` to a fresh ephemeral key valid until `expiration`.
    pub fn new(owner: &Wallet, expiration: DateTime<Utc>) -> Self {
        Self::with_ephemeral(owner, Wallet::random(), expiration)
    }

    /// Delegates from `owner` to the given ephemeral key.
    pub fn with_ephemeral(owner: &Wallet, ephemeral: Wallet, expiration: DateTime<Utc>) -> Self {
        let text = ephemeral_message(&ephemeral.address(), expiration);
        let signature = owner.personal_sign(&text);
        let prefix = [
            AuthLink::new(LinkType::Signer, owner.address().to_checksum(), ""),
            AuthLink::new(LinkType::EcdsaEphemeral, text, signature),
        ];
        Identity {
            owner: owner.address(),
            ephemeral,
            expiration,
            prefix,
        }
    }

    /// The owner address.
    pub fn address(&self) -> Address {
        self.owner
    }

    pub fn expiration(&self) -> DateTime<Utc> {
        self.expiration
    }

    /// A full chain whose final link signs `payload` with the ephemeral key.
    pub fn sign(&self, payload: &str) -> Vec<AuthLink> {
        let mut chain = self.prefix.to_vec();
        chain.push(AuthLink::new(
            LinkType::EcdsaSignedEntity,
            payload,
            self.ephemeral.personal_sign(payload),
        ));
        chain
    }

    /// Signed-fetch headers for a request, in the current (v6) format. `metadata` is the
    /// compact JSON sent in `x-identity-metadata` (use `"{}"` for none).
    pub fn signed_fetch_headers(
        &self,
        method: &str,
        path: &str,
        timestamp_ms: i64,
        metadata: &str,
    ) -> Vec<(String, String)> {
        let ts = timestamp_ms.to_string();
        let chain = self.sign(&payload_v6(method, path, &ts, metadata));
        let mut headers: Vec<(String, String)> = chain
            .iter()
            .enumerate()
            .map(|(i, link)| (chain_header_name(i), link.to_json()))
            .collect();
        headers.push((TIMESTAMP_HEADER.to_owned(), ts));
        headers.push((METADATA_HEADER.to_owned(), metadata.to_owned()));
        headers
    }
}

/// A chain signed directly by the owner (no ephemeral key): SIGNER + ECDSA_SIGNED_ENTITY.
pub fn sign_direct(owner: &Wallet, payload: &str) -> Vec<AuthLink> {
    vec![
        AuthLink::new(LinkType::Signer, owner.address().to_checksum(), ""),
        AuthLink::new(
            LinkType::EcdsaSignedEntity,
            payload,
            owner.personal_sign(payload),
        ),
    ]
}
