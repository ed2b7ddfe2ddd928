//! The whole privacy path with real parts: an official client changes its setting on our social
//! service (dcl-rpc), the social service tells our gatekeeper, the gatekeeper updates LiveKit,
//! and the official LiveKit SDK sees the participant's new metadata; the next token carries it.
//! (The system is `e2e_tests::System`: its social service is on PostgreSQL when
//! `PCHAT_TEST_DATABASE_URL` is set, on SQLite otherwise.)

use e2e_tests::{LIMIT, System};
use serde_json::Value;
use testkit::node::{self, NodeProcess};

fn claims_metadata(adapter: &str) -> String {
    use base64::Engine;
    let jwt = adapter.split("access_token=").nth(1).expect("token");
    let payload = jwt.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    claims["metadata"].as_str().expect("metadata").to_owned()
}

async fn fetch_token(gk: &str, key: &str) -> Value {
    let url = format!("{gk}/private-messages/token");
    let resp = node::signed_get(&url, r#"{"signer":"dcl:explorer"}"#, Some(key), LIMIT)
        .await
        .expect("signed fetch");
    assert_eq!(resp["status"], Value::from(200), "{resp}");
    serde_json::from_str(resp["body"].as_str().expect("body")).expect("json body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privacy_change_reaches_livekit_through_social_and_gatekeeper() {
    let system = System::start().await;
    let (gk_url, social_ws) = (&system.gatekeeper, &system.social_ws);

    let owner = authchain::Wallet::random();
    let key = owner.secret_hex();
    let address = owner.address().to_lower_hex();

    // Join with a token from the gatekeeper: privacy "all" (no settings yet).
    let body = fetch_token(gk_url, &key).await;
    let adapter = body["adapter"].as_str().expect("adapter").to_owned();
    assert_eq!(
        claims_metadata(&adapter),
        r#"{"private_messages_privacy":"all"}"#
    );
    let rest = adapter.strip_prefix("livekit:").expect("prefix");
    let (url, query) = rest.split_once('?').expect("query");
    let mut peer = NodeProcess::spawn(
        "lk-participant.mjs",
        &[url, query.trim_start_matches("access_token=")],
    )
    .expect("sdk");
    peer.wait_for("\"connected\"", LIMIT)
        .await
        .expect("connected");

    // The official client switches to only_friends on the social service.
    let out = node::run(
        "social-client.mjs",
        &[social_ws, "set-privacy", &key, "only_friends"],
        LIMIT,
    )
    .await
    .expect("set-privacy");
    assert!(out.contains("\"response\":\"ok\""), "{out}");

    // LiveKit metadata follows, seen by the official SDK.
    let line = peer
        .wait_for("\"metadata\"", LIMIT)
        .await
        .expect("metadata event");
    let v: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["identity"], Value::from(address.clone()));
    assert_eq!(
        v["metadata"],
        Value::from(r#"{"private_messages_privacy":"only_friends"}"#)
    );

    // And the next token carries the stored value.
    let body = fetch_token(gk_url, &key).await;
    assert_eq!(
        claims_metadata(body["adapter"].as_str().expect("adapter")),
        r#"{"private_messages_privacy":"only_friends"}"#
    );
    peer.kill().await;
}
