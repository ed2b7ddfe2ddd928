//! Signed-fetch headers and auth chains: arbitrary header values go through
//! `SignedHeaders::parse`, then verification at a fixed clock with three verifiers (plain, with
//! the delegation cache, with a contract-wallet validator). Errors are fine; panics are not, and a
//! request that verifies must name the chain's SIGNER.
//!
//! Input: lines `name=value`. Names are header names (`x-identity-auth-chain-0`, …,
//! `x-identity-timestamp`, `x-identity-metadata`), `:method` / `:path` (default `get` and `/`), or
//! `+e` / `+s`: a link made by the target, ECDSA_EPHEMERAL / ECDSA_SIGNED_ENTITY with the value as
//! payload (a backslash followed by `n` in it stands for a newline), signed by fixed wallet k-1 for link k (link 0 is
//! then the SIGNER of wallet 0). The
//! generated links let the fuzzer reach the expiration parsing and the checks behind valid
//! signatures.
#![no_main]

use private_chat_fuzz::{FUZZ_NOW_MS, fixed_wallet, parse_lines, poll_ready};

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use authchain::signed_fetch::chain_header_name;
use authchain::{
    Address, AuthError, AuthLink, ContractWalletValidator, LinkType, SignedHeaders, Verifier,
    explorer_signer_rule,
};
use libfuzzer_sys::fuzz_target;

/// Accepts a chain when it has an odd number of links, naming the SIGNER; refuses it otherwise.
struct FakeContractWallets;

#[async_trait]
impl ContractWalletValidator for FakeContractWallets {
    async fn validate(&self, chain: &[AuthLink], _timestamp_ms: i64) -> Result<Address, AuthError> {
        let signer = chain
            .first()
            .and_then(|l| l.payload.parse::<Address>().ok())
            .ok_or_else(|| AuthError::ContractWalletRejected("no signer".into()))?;
        if chain.len() % 2 == 1 {
            Ok(signer)
        } else {
            Err(AuthError::ContractWalletRejected("even".into()))
        }
    }
}

struct Verifiers {
    plain: Verifier,
    cached: Verifier,
    contract: Verifier,
}

fn verifiers() -> &'static Verifiers {
    static V: OnceLock<Verifiers> = OnceLock::new();
    V.get_or_init(|| Verifiers {
        plain: Verifier::new(),
        cached: Verifier::new().with_delegation_cache(64),
        contract: Verifier::new().with_contract_wallet_validator(Arc::new(FakeContractWallets)),
    })
}

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("signed_fetch_headers"),
    |data: &[u8]| {
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut generated: Vec<AuthLink> = Vec::new();
    let mut method = "get".to_owned();
    let mut path = "/".to_owned();
    for (name, value) in parse_lines(data) {
        match name {
            "+e" | "+s" => {
                if generated.len() >= 12 {
                    continue;
                }
                let kind = if name == "+e" {
                    LinkType::EcdsaEphemeral
                } else {
                    LinkType::EcdsaSignedEntity
                };
                // Link k (k ≥ 1) is signed by wallet k-1.
                let signer = fixed_wallet(generated.len());
                let value = value.replace("\\n", "\n");
                let signature = signer.personal_sign(&value);
                generated.push(AuthLink::new(kind, value, signature));
            }
            ":method" => method = value.to_owned(),
            ":path" => path = value.to_owned(),
            _ => {
                headers.insert(name.to_ascii_lowercase(), value.to_owned());
            }
        }
    }
    if !generated.is_empty() {
        let signer = AuthLink::new(LinkType::Signer, fixed_wallet(0).address().to_checksum(), "");
        for (i, link) in std::iter::once(signer).chain(generated).enumerate() {
            headers.insert(chain_header_name(i), link.to_json());
        }
    }

    let parsed = match SignedHeaders::parse(|n| headers.get(n).map(String::as_str)) {
        Ok(p) => p,
        Err(e) => {
            let _ = (e.status(), e.reason(), e.to_string());
            return;
        }
    };
    let v = verifiers();
    let rule = &explorer_signer_rule;
    for verifier in [&v.plain, &v.cached, &v.contract] {
        for r in [None, Some(rule as &authchain::MetadataRule)] {
            let result = poll_ready(verifier.verify_request(&parsed, &method, &path, FUZZ_NOW_MS, r));
            match result {
                Ok(ok) => {
                    let signer: Address = parsed.chain[0]
                        .payload
                        .parse()
                        .expect("a verified chain starts with a SIGNER address");
                    assert_eq!(ok.address, signer.to_lower_hex(), "verified as someone else");
                    assert!(
                        (FUZZ_NOW_MS - parsed.timestamp_ms).abs() <= verifier.window_ms(),
                        "verified outside the window"
                    );
                }
                Err(e) => {
                    let status = e.status();
                    assert!((400..600).contains(&status), "status {status} for {e}");
                    let _ = (e.reason(), e.to_string());
                }
            }
        }
    }
});
