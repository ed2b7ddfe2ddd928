//! The shared signed-fetch vectors (`shared/vectors/authchain.json`, made with the official npm
//! packages): every vector must give exactly `expected.crypto`, and `expected.gatekeeper_token`
//! with the explorer-signer rule.

use std::path::PathBuf;

use authchain::{SignedHeaders, Verifier, explorer_signer_rule};
use serde_json::Value;

fn vectors_path() -> PathBuf {
    if let Ok(dir) = std::env::var("PCHAT_SHARED_DIR") {
        return PathBuf::from(dir).join("vectors/authchain.json");
    }
    // Cargo gives the crate's directory at run time; the compiled-in path is a fallback (a build
    // cache shared between checkouts can hand us a binary compiled elsewhere).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../../../shared/vectors/authchain.json")
}

fn load() -> Value {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (set PCHAT_SHARED_DIR)", path.display()));
    serde_json::from_str(&text).expect("vectors are JSON")
}

/// "ok" or the HTTP status, as the vectors write it.
fn verdict(r: Result<String, u16>) -> Value {
    match r {
        Ok(_) => Value::from("ok"),
        Err(status) => Value::from(status),
    }
}

async fn run(verifier: &Verifier, v: &Value, with_rule: bool) -> Result<String, u16> {
    let req = &v["request"];
    let headers = req["headers"].as_object().expect("headers");
    let parsed = SignedHeaders::parse(|name| headers.get(name).and_then(Value::as_str))
        .map_err(|e| e.status())?;
    let now = v["verify_at_ms"].as_i64().expect("verify_at_ms");
    let rule: Option<&authchain::MetadataRule> = if with_rule {
        Some(&explorer_signer_rule)
    } else {
        None
    };
    verifier
        .verify_request(
            &parsed,
            req["method"].as_str().expect("method"),
            req["path"].as_str().expect("path"),
            now,
            rule,
        )
        .await
        .map(|ok| ok.address)
        .map_err(|e| e.status())
}

#[tokio::test]
async fn all_vectors_give_the_expected_verdicts() {
    let doc = load();
    let vectors = doc["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 24);
    let owner = doc["keys"]["owner"]["address"]
        .as_str()
        .expect("owner")
        .to_lowercase();
    // Once without and once with the delegation cache: the verdicts must not change.
    for verifier in [Verifier::new(), Verifier::new().with_delegation_cache(64)] {
        for _pass in 0..2 {
            for v in vectors {
                let name = v["name"].as_str().unwrap_or("?");
                let crypto = run(&verifier, v, false).await;
                assert_eq!(
                    verdict(crypto.clone()),
                    v["expected"]["crypto"],
                    "{name}: crypto"
                );
                if let Ok(addr) = &crypto {
                    assert_eq!(addr, &owner, "{name}: identity is the lower-case signer");
                }
                let gk = run(&verifier, v, true).await;
                assert_eq!(
                    verdict(gk),
                    v["expected"]["gatekeeper_token"],
                    "{name}: gatekeeper"
                );
            }
        }
    }
}

#[test]
fn primitives_match_the_official_packages() {
    let doc = load();
    let p = &doc["primitives"];
    let k = &doc["keys"];
    let msg = p["ephemeral_message"].as_str().expect("msg");
    assert_eq!(
        format!("0x{}", hex::encode(authchain::crypto::eip191_hash(msg))),
        p["ephemeral_message_eip191_hash"].as_str().expect("hash")
    );
    let owner = authchain::Wallet::from_hex(k["owner"]["private_key"].as_str().expect("pk"))
        .expect("owner key");
    assert_eq!(
        owner.address().to_checksum(),
        k["owner"]["address"].as_str().expect("addr")
    );
    // RFC 6979 signing is deterministic: we must produce the official signature byte for byte.
    assert_eq!(
        owner.personal_sign(msg),
        p["ephemeral_signature_by_owner"].as_str().expect("sig")
    );
    let eph = authchain::Wallet::from_hex(k["ephemeral"]["private_key"].as_str().expect("pk"))
        .expect("ephemeral key");
    let fin = p["final_payload"].as_str().expect("final");
    assert_eq!(
        eph.personal_sign(fin),
        p["final_signature_by_ephemeral"].as_str().expect("sig")
    );
    // And an Identity built from the same keys reproduces the official chain.
    let exp = chrono::DateTime::parse_from_rfc3339(k["ephemeral_expiration"].as_str().expect("e"))
        .expect("date")
        .to_utc();
    let id = authchain::Identity::with_ephemeral(&owner, eph, exp);
    let chain = id.sign(fin);
    let p1 = &doc["vectors"][0]["request"]["headers"];
    for (i, link) in chain.iter().enumerate() {
        assert_eq!(
            link.to_json(),
            p1[format!("x-identity-auth-chain-{i}")]
                .as_str()
                .expect("h")
        );
    }
}
