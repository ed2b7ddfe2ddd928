//! The gatekeeper against a real livekit-server, driven by the official npm packages:
//! `decentraland-crypto-fetch` / `@dcl/crypto` sign the requests and `@livekit/rtc-node` joins
//! the room with the minted token.

mod common;

use std::time::Duration;

use common::*;
use gatekeeper::Builder;
use livekit_api::services::room::RoomClient;
use serde_json::Value;
use testkit::LiveKitServer;
use testkit::node::{self, NodeProcess};

const TOKEN_PATH: &str = "/private-messages/token";
const EXPLORER: &str = r#"{"signer":"dcl:explorer"}"#;
const LIMIT: Duration = Duration::from_secs(30);

async fn official_fetch(url: &str, metadata: &str) -> Value {
    node::signed_get(url, metadata, None, LIMIT)
        .await
        .expect("signed-fetch.mjs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_join_with_our_token_and_see_privacy_updates() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let (_stub, stub_url, _stub_task) = privacy_stub().await;
    let mut c = config(&lk.ws_url(), &lk.api_key, &lk.api_secret);
    c.social_service_url = Some(stub_url);
    let gk = start(Builder::new(c)).await;
    let url = gk.url(TOKEN_PATH);

    // (a) A request signed by decentraland-crypto-fetch gets an adapter…
    let resp = official_fetch(&url, EXPLORER).await;
    assert_eq!(resp["status"], Value::from(200), "{resp}");
    let address = resp["address"].as_str().expect("address").to_owned();
    let body = json(resp["body"].as_str().expect("body"));
    let (lk_url, token) = split_adapter(body["adapter"].as_str().expect("adapter"));
    assert_eq!(lk_url, lk.ws_url());

    // …with which the official LiveKit SDK joins the room.
    let mut peer = NodeProcess::spawn("lk-participant.mjs", &[&lk_url, &token]).expect("node");
    let connected = json(
        &peer
            .wait_for("\"connected\"", LIMIT)
            .await
            .expect("connected"),
    );
    assert_eq!(connected["identity"], Value::from(address.clone()));
    assert_eq!(
        connected["metadata"],
        Value::from(r#"{"private_messages_privacy":"all"}"#)
    );

    let rooms = RoomClient::with_api_key(&lk.http_url(), &lk.api_key, &lk.api_secret);
    let participants = rooms
        .list_participants("private-messages")
        .await
        .expect("ListParticipants");
    assert_eq!(participants.len(), 1);
    assert_eq!(
        participants[0].identity, address,
        "identity is the lower-case address"
    );
    assert_eq!(
        participants[0].metadata,
        r#"{"private_messages_privacy":"all"}"#
    );
    let permission = participants[0].permission.clone().expect("permission");
    assert!(!permission.can_publish && permission.can_subscribe && permission.can_publish_data);

    // (b) PATCH to only_friends: LiveKit changes the metadata and the official SDK sees it.
    let (s, b) = patch_privacy(
        &gk.url(""),
        &address,
        r#"{"private_messages_privacy":"only_friends"}"#,
        Some(AUTH_TOKEN),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let changed = json(
        &peer
            .wait_for("\"metadata\"", LIMIT)
            .await
            .expect("metadata event"),
    );
    assert_eq!(changed["identity"], Value::from(address.clone()));
    assert_eq!(
        changed["metadata"],
        Value::from(r#"{"private_messages_privacy":"only_friends"}"#)
    );
    let participants = rooms
        .list_participants("private-messages")
        .await
        .expect("ListParticipants");
    assert_eq!(
        participants[0].metadata,
        r#"{"private_messages_privacy":"only_friends"}"#
    );

    // (c) PATCH for an identity that is not in the room.
    let absent = authchain::Wallet::random().address().to_lower_hex();
    let (s, b) = patch_privacy(
        &gk.url(""),
        &absent,
        r#"{"private_messages_privacy":"all"}"#,
        Some(AUTH_TOKEN),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        b["message"],
        Value::from("Participant is not connected to the room")
    );

    peer.kill().await;
    gk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_from_the_official_packages_are_accepted_and_tampering_is_not() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let gk = start(Builder::new(config(
        &lk.ws_url(),
        &lk.api_key,
        &lk.api_secret,
    )))
    .await;
    let url = gk.url(TOKEN_PATH);

    for format in ["legacy", "v6"] {
        let (address, headers) = official_headers(&url, EXPLORER, format).await;
        let (s, b) = get_with(&url, &headers).await;
        assert_eq!(s, 200, "{format}: {b}");
        let (_, jwt) = split_adapter(b["adapter"].as_str().expect("adapter"));
        assert!(!jwt.is_empty() && !address.is_empty());

        // Tamper with one hex digit of the final signature.
        let mut tampered = headers.clone();
        let last = tampered
            .iter_mut()
            .filter(|(k, _)| k.starts_with("x-identity-auth-chain-"))
            .max_by_key(|(k, _)| k.clone())
            .expect("links");
        let v: Value = serde_json::from_str(&last.1).expect("link json");
        let sig = v["signature"].as_str().expect("sig");
        let flipped = if &sig[10..11] == "a" { "b" } else { "a" };
        let bad_sig = format!("{}{}{}", &sig[..10], flipped, &sig[11..]);
        last.1 = last.1.replace(sig, &bad_sig);
        let (s, b) = get_with(&url, &tampered).await;
        assert_eq!(s, 401, "{format} tampered: {b}");
    }

    // A scene signer is refused with 400.
    let (_, scene) =
        official_headers(&url, r#"{"signer":"decentraland-kernel-scene"}"#, "legacy").await;
    let (s, b) = get_with(&url, &scene).await;
    assert_eq!(s, 400, "{b}");
    gk.shutdown().await;
}
