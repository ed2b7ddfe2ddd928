//! The end-to-end encryption session key (docs/e2ee.md) through the gatekeeper, against a real
//! livekit-server, with requests signed by the official npm packages: a key in the signed
//! metadata becomes the participant attribute `chat_key` that the official LiveKit SDK shows
//! the other participants; a request without one gets today's token; a key the signature does
//! not cover, or one that is not 64 lower-case hex digits, is refused and counted.

mod common;

use std::time::Duration;

use common::*;
use gatekeeper::Builder;
use livekit_api::services::room::RoomClient;
use serde_json::Value;
use testkit::LiveKitServer;
use testkit::node::NodeProcess;

const TOKEN_PATH: &str = "/private-messages/token";
const LIMIT: Duration = Duration::from_secs(30);
const KEY_A: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const KEY_B: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";

fn with_key(key: &str) -> String {
    serde_json::json!({ "signer": "dcl:explorer", "chat_key": key }).to_string()
}

/// Replaces the metadata header after signing (what someone on the path could do).
fn set_metadata(headers: &mut [(String, String)], metadata: &str) {
    let meta = headers
        .iter_mut()
        .find(|(k, _)| k == "x-identity-metadata")
        .expect("metadata header");
    meta.1 = metadata.to_owned();
}

async fn metrics(gk: &TestGatekeeper) -> String {
    reqwest::get(gk.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_key_becomes_the_chat_key_attribute_every_participant_sees() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let (_stub, stub_url, _stub_task) = privacy_stub().await;
    let mut c = config(&lk.ws_url(), &lk.api_key, &lk.api_secret);
    c.social_service_url = Some(stub_url);
    let gk = start(Builder::new(c)).await;
    let url = gk.url(TOKEN_PATH);

    // Both signature formats of the official packages carry the key.
    let mut tokens = Vec::new();
    for (format, key) in [("legacy", KEY_A), ("v6", KEY_B)] {
        let (address, headers) = official_headers(&url, &with_key(key), format).await;
        let (s, b) = get_with(&url, &headers).await;
        assert_eq!(s, 200, "{format}: {b}");
        let (lk_url, jwt) = split_adapter(b["adapter"].as_str().expect("adapter"));
        let c = claims(&lk, &jwt);
        assert_eq!(c["attributes"], serde_json::json!({ "chat_key": key }));
        assert_eq!(c["metadata"], r#"{"private_messages_privacy":"all"}"#);
        assert_eq!(
            c["video"]["canUpdateOwnMetadata"],
            Value::Bool(false),
            "a client must not be able to change its own chat_key"
        );
        tokens.push((address, lk_url, jwt));
    }

    // Without a key: today's token, no attributes at all.
    let (_, headers) = official_headers(&url, r#"{"signer":"dcl:explorer"}"#, "legacy").await;
    let (s, b) = get_with(&url, &headers).await;
    assert_eq!(s, 200, "{b}");
    let (_, jwt) = split_adapter(b["adapter"].as_str().expect("adapter"));
    assert_eq!(claims(&lk, &jwt).get("attributes"), None);

    // The official LiveKit SDK: B sees A's key, A sees B's.
    let (addr_a, url_a, jwt_a) = tokens[0].clone();
    let (addr_b, url_b, jwt_b) = tokens[1].clone();
    let mut a = NodeProcess::spawn("lk-participant.mjs", &[&url_a, &jwt_a]).expect("node a");
    let me_a = json(&a.wait_for("\"connected\"", LIMIT).await.expect("a joins"));
    assert_eq!(me_a["attributes"]["chat_key"], KEY_A);
    let mut b = NodeProcess::spawn("lk-participant.mjs", &[&url_b, &jwt_b]).expect("node b");
    let me_b = json(&b.wait_for("\"connected\"", LIMIT).await.expect("b joins"));
    let a_seen_by_b = me_b["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["identity"] == addr_a.as_str())
        .cloned()
        .expect("b sees a");
    assert_eq!(a_seen_by_b["attributes"]["chat_key"], KEY_A);
    let b_seen_by_a = json(&a.wait_for("\"joined\"", LIMIT).await.expect("a sees b"));
    assert_eq!(b_seen_by_a["identity"], addr_b.as_str());
    assert_eq!(b_seen_by_a["attributes"]["chat_key"], KEY_B);

    // A privacy change rewrites the metadata and leaves the key alone.
    let (s, body) = set_privacy(&gk, &addr_a, "only_friends").await;
    assert_eq!(s, 204, "{body}");
    let changed = json(&b.wait_for("\"metadata\"", LIMIT).await.expect("metadata"));
    assert_eq!(changed["identity"], addr_a.as_str());
    let rooms = RoomClient::with_api_key(&lk.http_url(), &lk.api_key, &lk.api_secret);
    let listed = rooms
        .list_participants("private-messages")
        .await
        .expect("ListParticipants");
    let a_info = listed
        .iter()
        .find(|p| p.identity == addr_a)
        .expect("a listed");
    assert_eq!(
        a_info.metadata,
        r#"{"private_messages_privacy":"only_friends"}"#
    );
    assert_eq!(
        a_info.attributes.get("chat_key").map(String::as_str),
        Some(KEY_A)
    );

    let m = metrics(&gk).await;
    assert_eq!(
        counter(&m, "gatekeeper_tokens_with_chat_key_total"),
        2,
        "{m}"
    );
    a.kill().await;
    b.kill().await;
    gk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_signature_does_not_cover_or_a_malformed_key_is_refused_and_counted() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let gk = start(Builder::new(config(
        &lk.ws_url(),
        &lk.api_key,
        &lk.api_secret,
    )))
    .await;
    let url = gk.url(TOKEN_PATH);

    // Signed without a key, the key added to the metadata header afterwards: the signed
    // payload no longer matches, in either format.
    for format in ["legacy", "v6"] {
        let (_, mut headers) = official_headers(&url, r#"{"signer":"dcl:explorer"}"#, format).await;
        set_metadata(&mut headers, &with_key(KEY_A));
        let (s, b) = get_with(&url, &headers).await;
        assert_eq!(s, 401, "{format}: {b}");

        // A signed key swapped for another one after signing: refused too.
        let (_, mut headers) = official_headers(&url, &with_key(KEY_A), format).await;
        set_metadata(&mut headers, &with_key(KEY_B));
        let (s, b) = get_with(&url, &headers).await;
        assert_eq!(s, 401, "{format} swapped key: {b}");
    }

    // Signed, but not a key: 400 with the reason.
    let upper = KEY_A.to_uppercase();
    let short = &KEY_A[..40];
    let zero = "0".repeat(64);
    for (bad, reason) in [
        (with_key(&upper), "lower-case hex"),
        (with_key(short), "64 hex digits"),
        (with_key(&zero), "all zeros"),
        (
            r#"{"signer":"dcl:explorer","chat_key":42}"#.to_owned(),
            "must be a string",
        ),
    ] {
        let (_, headers) = official_headers(&url, &bad, "v6").await;
        let (s, b) = get_with(&url, &headers).await;
        assert_eq!(s, 400, "{bad}: {b}");
        let message = b["message"].as_str().unwrap_or("");
        assert!(message.contains(reason), "{bad}: {b}");
    }

    let m = metrics(&gk).await;
    assert_eq!(counter(&m, "gatekeeper_bad_chat_keys_total"), 4, "{m}");
    let auth_failures: u64 = m
        .lines()
        .filter(|l| l.starts_with("gatekeeper_auth_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(auth_failures, 4, "{m}");
    assert_eq!(
        counter(&m, "gatekeeper_tokens_with_chat_key_total"),
        0,
        "{m}"
    );
    gk.shutdown().await;
}
