//! The signed-fetch vectors of `tests/vectors/authchain.json`, generated with the official npm
//! packages by `interop/gen-authchain-vectors.mjs` (which also records how each expected verdict
//! was obtained): every vector must give exactly `expected.crypto`, and
//! `expected.gatekeeper_token` with the explorer-signer rule.

use std::path::PathBuf;

use authchain::{SignedHeaders, Verifier, explorer_signer_rule};
use serde_json::Value;

/// The vectors live in this crate, so the tests need nothing outside the repository.
fn vectors_path() -> PathBuf {
    // Cargo gives the crate's directory at run time; the compiled-in path is a fallback (a build
    // cache shared between checkouts can hand us a binary compiled elsewhere).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("tests/vectors/authchain.json")
}

fn load() -> Value {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
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

/// The cases every regeneration must keep (the generator may add more).
const REQUIRED: &[&str] = &[
    "P1_main",
    "P2_uppercase_metadata_v6",
    "P3_uppercase_metadata_legacy",
    "P4_two_link_chain",
    "P5_v_is_0_or_1",
    "P6_lowercase_addresses",
    "P7_no_metadata_header",
    "P8_uppercase_method_and_path_at_verifier",
    "P9_social_ws_handshake",
    "N1_tampered_signature",
    "N2_expired_ephemeral",
    "N3_wrong_path",
    "N4_stale_timestamp",
    "N5_future_timestamp",
    "N6_metadata_recased_after_signing",
    "N7_scene_signer",
    "N8_query_string_signed",
    "N9_single_link",
    "N10_malformed_link_json",
    "N11_non_numeric_timestamp",
    "N12_high_s_signature",
    "N13_ephemeral_signed_by_other_key",
    "N14_final_signed_by_owner_not_ephemeral",
    "N15_signer_not_first",
    "C1_contract_wallet_without_validator",
    "E1_expiration_date_only",
    "E7_expiration_no_offset",
    "E11_expiration_equals_clock",
    "E13_expiration_invalid_text",
    "E16_expiration_slashes",
];

/// The file is consistent: an expected verdict differs from the official verifier's only
/// where the vector declares (and explains) a deliberate deviation.
#[test]
fn expected_verdicts_follow_the_reference_unless_declared() {
    let doc = load();
    for v in doc["vectors"].as_array().expect("vectors") {
        let name = v["name"].as_str().unwrap_or("?");
        match v["derivation"].as_str() {
            Some("reference") => {
                for col in ["crypto", "gatekeeper_token"] {
                    assert_eq!(v["expected"][col], v["reference"][col], "{name}: {col}");
                }
            }
            Some("deviation") => assert!(
                v["deviation"].as_str().is_some_and(|why| !why.is_empty()),
                "{name}: a deviation must say why"
            ),
            other => panic!("{name}: unknown derivation {other:?}"),
        }
    }
}

#[tokio::test]
async fn all_vectors_give_the_expected_verdicts() {
    let doc = load();
    let vectors = doc["vectors"].as_array().expect("vectors");
    let names: Vec<&str> = vectors.iter().filter_map(|v| v["name"].as_str()).collect();
    for required in REQUIRED {
        assert!(names.contains(required), "vector {required} is missing");
    }
    let owner = doc["keys"]["owner"]["address"]
        .as_str()
        .expect("owner")
        .to_lowercase();
    // Once without and once with the delegation cache: the verdicts must not change. Every
    // mismatch is collected, so that a failure lists all the vectors that disagree.
    let mut wrong = Vec::new();
    for (label, verifier) in [
        ("no cache", Verifier::new()),
        ("cache", Verifier::new().with_delegation_cache(64)),
    ] {
        for _pass in 0..2 {
            for v in vectors {
                let name = v["name"].as_str().unwrap_or("?");
                let crypto = run(&verifier, v, false).await;
                if verdict(crypto.clone()) != v["expected"]["crypto"] {
                    wrong.push(format!(
                        "{name} ({label}): crypto {crypto:?}, expected {}",
                        v["expected"]["crypto"]
                    ));
                }
                if let Ok(addr) = &crypto {
                    assert_eq!(addr, &owner, "{name}: identity is the lower-case signer");
                }
                let gk = run(&verifier, v, true).await;
                if verdict(gk.clone()) != v["expected"]["gatekeeper_token"] {
                    wrong.push(format!(
                        "{name} ({label}): gatekeeper {gk:?}, expected {}",
                        v["expected"]["gatekeeper_token"]
                    ));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
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
