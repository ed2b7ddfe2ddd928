//! Auth-chain verification throughput on one core.
//!
//! `cargo bench -p authchain --bench verify`
//!
//! - `verify_3_link_uncached`: SIGNER → ECDSA_EPHEMERAL → ECDSA_SIGNED_ENTITY, two signature
//!   recoveries per request (every request from a new session).
//! - `verify_3_link_cached`: the same chain with the delegation cache warm (repeated requests
//!   from one session: one recovery).
//! - `parse_and_verify_signed_fetch`: header parsing plus the uncached verification.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use authchain::signed_fetch::{PayloadFormat, payload_v6};
use authchain::{Identity, SignedHeaders, Verifier, Wallet, now_ms};

fn bench(c: &mut Criterion) {
    let owner = Wallet::random();
    let id = Identity::new(&owner, chrono::Utc::now() + chrono::Duration::hours(1));
    let ts = now_ms().to_string();
    let payload = payload_v6(
        "GET",
        "/private-messages/token",
        &ts,
        r#"{"signer":"dcl:explorer"}"#,
    );
    let chain = id.sign(&payload);
    let candidates = [(PayloadFormat::V6, payload.clone())];
    let now = now_ms();

    let plain = Verifier::new();
    c.bench_function("verify_3_link_uncached", |b| {
        b.iter(|| {
            plain
                .verify_ecdsa_chain(black_box(&chain), &candidates, now)
                .expect("valid")
        })
    });

    let cached = Verifier::new().with_delegation_cache(1024);
    c.bench_function("verify_3_link_cached", |b| {
        b.iter(|| {
            cached
                .verify_ecdsa_chain(black_box(&chain), &candidates, now)
                .expect("valid")
        })
    });

    let headers = id.signed_fetch_headers(
        "GET",
        "/private-messages/token",
        now,
        r#"{"signer":"dcl:explorer"}"#,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    c.bench_function("parse_and_verify_signed_fetch", |b| {
        b.iter(|| {
            let parsed = SignedHeaders::parse(|n| {
                headers
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.as_str())
            })
            .expect("parses");
            rt.block_on(plain.verify_request(&parsed, "GET", "/private-messages/token", now, None))
                .expect("valid")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
