//! The HTTP API with fakes at the LiveKit and social-service boundaries: error statuses and
//! bodies, limits, the deny list, privacy fallbacks and the minted token's claims.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use gatekeeper::Builder;
use gatekeeper::livekit::{RoomService, RoomServiceError};
use gatekeeper::privacy::{PrivacyError, PrivacySource};
use pchat_core::Privacy;
use serde_json::Value;

const KEY: &str = "APIfake";
const SECRET: &str = "fake-secret-that-is-long-enough-0123456789";
const TOKEN_PATH: &str = "/private-messages/token";
const EXPLORER: &str = r#"{"signer":"dcl:explorer"}"#;

#[derive(Default)]
struct FakeRooms {
    calls: Mutex<Vec<(String, String, String)>>,
    answer: Mutex<Option<RoomServiceError>>,
}

#[async_trait]
impl RoomService for FakeRooms {
    async fn update_participant_metadata(
        &self,
        room: &str,
        identity: &str,
        metadata: &str,
    ) -> Result<(), RoomServiceError> {
        self.calls
            .lock()
            .expect("lock")
            .push((room.into(), identity.into(), metadata.into()));
        match self.answer.lock().expect("lock").clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A privacy source that answers `only_friends` until told to fail.
#[derive(Default)]
struct FlakyPrivacy {
    failing: AtomicBool,
}

#[async_trait]
impl PrivacySource for FlakyPrivacy {
    async fn privacy(&self, _address: &str) -> Result<Privacy, PrivacyError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(PrivacyError("down".into()))
        } else {
            Ok(Privacy::OnlyFriends)
        }
    }
}

async fn app() -> (TestGatekeeper, Arc<FakeRooms>) {
    let rooms = Arc::new(FakeRooms::default());
    let gk =
        start(Builder::new(config("ws://127.0.0.1:1", KEY, SECRET)).room_service(rooms.clone()))
            .await;
    (gk, rooms)
}

fn message(v: &Value) -> &str {
    assert_eq!(v["ok"], Value::Bool(false), "error body shape: {v}");
    v["message"].as_str().expect("message")
}

#[tokio::test]
async fn token_carries_exactly_the_reference_claims() {
    let (gk, _) = app().await;
    let (address, headers) = signed_headers("GET", TOKEN_PATH, EXPLORER);
    let (status, body) = get_with(&gk.url(TOKEN_PATH), &headers).await;
    assert_eq!(status, 200, "{body}");
    let (url, jwt) = split_adapter(body["adapter"].as_str().expect("adapter"));
    assert_eq!(url, "ws://127.0.0.1:1");

    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[KEY]);
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Value>(
        &jwt,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .expect("valid HS256 token signed with the API secret");
    assert_eq!(data.header.alg, jsonwebtoken::Algorithm::HS256);
    let c = data.claims;
    assert_eq!(
        c["sub"],
        Value::from(address.clone()),
        "identity is the lower-case address"
    );
    assert_eq!(c["iss"], Value::from(KEY));
    assert_eq!(
        c["metadata"],
        Value::from(r#"{"private_messages_privacy":"all"}"#)
    );
    let ttl = c["exp"].as_i64().expect("exp") - c["nbf"].as_i64().expect("nbf");
    assert!((295..=305).contains(&ttl), "ttl {ttl}");
    let v = &c["video"];
    assert_eq!(v["roomJoin"], Value::Bool(true));
    assert_eq!(v["room"], Value::from("private-messages"));
    assert_eq!(v["canPublish"], Value::Bool(false));
    assert_eq!(v["canSubscribe"], Value::Bool(true));
    assert_eq!(v["canPublishData"], Value::Bool(true));
    assert_eq!(v["canUpdateOwnMetadata"], Value::Bool(false));
    assert!(v.get("hidden").is_none() || v["hidden"] == Value::Bool(false));
    assert!(v.get("roomAdmin").is_none() || v["roomAdmin"] == Value::Bool(false));
    gk.shutdown().await;
}

#[tokio::test]
async fn malformed_signed_fetch_requests_get_400_or_401_never_a_panic() {
    let (gk, _) = app().await;
    let url = gk.url(TOKEN_PATH);
    let (_, good) = signed_headers("GET", TOKEN_PATH, EXPLORER);
    let with = |name: &str, value: Option<String>| -> Vec<(String, String)> {
        let mut h: Vec<_> = good.iter().filter(|(k, _)| k != name).cloned().collect();
        if let Some(v) = value {
            h.push((name.to_owned(), v));
        }
        h
    };

    // No headers at all.
    let (s, b) = get_with(&url, &[]).await;
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).contains("auth-chain-0"));
    // Missing timestamp / non-numeric timestamp.
    let (s, b) = get_with(&url, &with("x-identity-timestamp", None)).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = get_with(&url, &with("x-identity-timestamp", Some("abc".into()))).await;
    assert_eq!((s, message(&b)), (400, "Invalid chain timestamp: abc"));
    // Timestamp outside the window.
    let old = (authchain::now_ms() - 120_000).to_string();
    let (s, _) = get_with(&url, &with("x-identity-timestamp", Some(old))).await;
    assert_eq!(s, 401);
    // A malformed link.
    let (s, b) = get_with(
        &url,
        &with("x-identity-auth-chain-1", Some("{not json".into())),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).starts_with("Invalid chain format"));
    // 11 links.
    let mut eleven = good.clone();
    for i in 3..=10 {
        eleven.push((format!("x-identity-auth-chain-{i}"), good[0].1.clone()));
    }
    let (s, b) = get_with(&url, &eleven).await;
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).contains("at most 10 links"));
    // Metadata that is not JSON; metadata with another signer.
    let (s, _) = get_with(&url, &with("x-identity-metadata", Some("{oops".into()))).await;
    assert_eq!(s, 400);
    let (_, scene) = signed_headers(
        "GET",
        TOKEN_PATH,
        r#"{"signer":"decentraland-kernel-scene"}"#,
    );
    let (s, b) = get_with(&url, &scene).await;
    assert_eq!(s, 400, "{b}");
    // A tampered final signature.
    let mut tampered = good.clone();
    let last = tampered
        .iter_mut()
        .find(|(k, _)| k == "x-identity-auth-chain-2")
        .expect("link 2");
    last.1 = last.1.replace("\"signature\":\"0x", "\"signature\":\"0x00");
    let (s, _) = get_with(&url, &tampered).await;
    assert_eq!(s, 401);
    // Signed for another path.
    let (_, other) = signed_headers("GET", "/private-messages/other", EXPLORER);
    let (s, _) = get_with(&url, &other).await;
    assert_eq!(s, 401);
    // A 64 KiB header.
    let (s, b) = get_with(
        &url,
        &with("x-identity-auth-chain-1", Some("a".repeat(64 * 1024))),
    )
    .await;
    assert_eq!(s, 431, "{b}");
    // Too many headers.
    let mut many = good.clone();
    for i in 0..80 {
        many.push((format!("x-filler-{i}"), "1".into()));
    }
    let (s, _) = get_with(&url, &many).await;
    assert_eq!(s, 431);

    // The server is still fine, and the failures were counted.
    let (s, _) = get_with(&url, &good).await;
    assert_eq!(s, 200);
    let metrics = reqwest::get(gk.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("gatekeeper_auth_failures_total{reason=\"invalid_timestamp\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("gatekeeper_http_requests_total{route=\"/private-messages/token\",method=\"GET\",status=\"200\"}"));
    assert!(metrics.contains("gatekeeper_http_request_duration_seconds_bucket"));
    gk.shutdown().await;
}

#[tokio::test]
async fn patch_validates_bearer_address_body_and_value() {
    let (gk, rooms) = app().await;
    let base = gk.url("");
    let addr = "0x23C86705Dd3a3855D939322C53379d42A4E365ee";
    let good = r#"{"private_messages_privacy":"only_friends"}"#;

    let (s, b) = patch_privacy(&base, addr, good, None).await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = patch_privacy(&base, addr, good, Some("wrong")).await;
    assert_eq!(s, 401);
    let (s, _) = patch_privacy(&base, addr, good, Some(&format!("{AUTH_TOKEN}x"))).await;
    assert_eq!(s, 401);
    let (s, b) = patch_privacy(&base, "0x1234", good, Some(AUTH_TOKEN)).await;
    assert_eq!((s, message(&b)), (400, "Invalid address"));
    let (s, b) = patch_privacy(&base, "not-an-address", good, Some(AUTH_TOKEN)).await;
    assert_eq!((s, message(&b)), (400, "Invalid address"));
    let (s, b) = patch_privacy(&base, addr, "{nope", Some(AUTH_TOKEN)).await;
    assert_eq!((s, message(&b)), (400, "Invalid request body"));
    let (s, b) = patch_privacy(
        &base,
        addr,
        r#"{"private_messages_privacy":7}"#,
        Some(AUTH_TOKEN),
    )
    .await;
    assert_eq!((s, message(&b)), (400, "Invalid request body"));
    let (s, b) = patch_privacy(
        &base,
        addr,
        r#"{"private_messages_privacy":"friends"}"#,
        Some(AUTH_TOKEN),
    )
    .await;
    assert_eq!((s, message(&b)), (400, "Invalid private_messages_privacy"));
    let big = format!(
        r#"{{"private_messages_privacy":"all","pad":"{}"}}"#,
        "x".repeat(10_000)
    );
    let (s, _) = patch_privacy(&base, addr, &big, Some(AUTH_TOKEN)).await;
    assert_eq!(s, 413);
    assert!(
        rooms.calls.lock().expect("lock").is_empty(),
        "nothing reached LiveKit"
    );

    // Valid, case-insensitive value: one call with the lower-case identity.
    let (s, _) = patch_privacy(
        &base,
        addr,
        r#"{"private_messages_privacy":"ONLY_FRIENDS"}"#,
        Some(AUTH_TOKEN),
    )
    .await;
    assert_eq!(s, 204);
    let calls = rooms.calls.lock().expect("lock").clone();
    assert_eq!(
        calls,
        vec![(
            "private-messages".to_owned(),
            addr.to_lowercase(),
            r#"{"private_messages_privacy":"only_friends"}"#.to_owned()
        )]
    );

    // LiveKit outcomes map to the documented statuses.
    *rooms.answer.lock().expect("lock") = Some(RoomServiceError::NotFound);
    let (s, b) = patch_privacy(&base, addr, good, Some(AUTH_TOKEN)).await;
    assert_eq!(
        (s, message(&b)),
        (400, "Participant is not connected to the room")
    );
    *rooms.answer.lock().expect("lock") = Some(RoomServiceError::Unavailable("refused".into()));
    let (s, b) = patch_privacy(&base, addr, good, Some(AUTH_TOKEN)).await;
    assert_eq!(s, 503, "{b}");
    gk.shutdown().await;
}

#[tokio::test]
async fn unreachable_livekit_gives_503() {
    // The real RoomService client against a port nobody listens on.
    let port = testkit::free_tcp_port().expect("port");
    let mut c = config(&format!("ws://127.0.0.1:{port}"), KEY, SECRET);
    c.livekit_timeout_ms = 2000;
    let gk = start(Builder::new(c)).await;
    let (s, b) = patch_privacy(
        &gk.url(""),
        "0x23c86705dd3a3855d939322c53379d42a4e365ee",
        r#"{"private_messages_privacy":"all"}"#,
        Some(AUTH_TOKEN),
    )
    .await;
    assert_eq!(s, 503, "{b}");
    assert!(message(&b).contains("LiveKit is unreachable"));
    gk.shutdown().await;
}

#[tokio::test]
async fn privacy_falls_back_to_last_known_then_all() {
    let privacy = Arc::new(FlakyPrivacy::default());
    let rooms = Arc::new(FakeRooms::default());
    let gk = start(
        Builder::new(config("ws://127.0.0.1:1", KEY, SECRET))
            .room_service(rooms)
            .privacy_source(privacy.clone()),
    )
    .await;
    let owner = authchain::Wallet::random();
    let id = authchain::Identity::new(&owner, chrono::Utc::now() + chrono::Duration::minutes(5));
    let token_privacy = |body: &Value| -> String {
        let (_, jwt) = split_adapter(body["adapter"].as_str().expect("adapter"));
        let claims: Value =
            serde_json::from_slice(&base64_url_decode(jwt.split('.').nth(1).expect("payload")))
                .expect("claims");
        claims["metadata"].as_str().expect("metadata").to_owned()
    };
    let url = gk.url(TOKEN_PATH);
    let fresh = || id.signed_fetch_headers("GET", TOKEN_PATH, authchain::now_ms(), EXPLORER);

    let (s, b) = get_with(&url, &fresh()).await;
    assert_eq!(s, 200);
    assert_eq!(
        token_privacy(&b),
        r#"{"private_messages_privacy":"only_friends"}"#
    );

    privacy.failing.store(true, Ordering::SeqCst);
    let (s, b) = get_with(&url, &fresh()).await;
    assert_eq!(
        s, 200,
        "chat keeps working while the social service is down"
    );
    assert_eq!(
        token_privacy(&b),
        r#"{"private_messages_privacy":"only_friends"}"#,
        "last known value"
    );

    let (_, other) = signed_headers("GET", TOKEN_PATH, EXPLORER);
    let (s, b) = get_with(&url, &other).await;
    assert_eq!(s, 200);
    assert_eq!(
        token_privacy(&b),
        r#"{"private_messages_privacy":"all"}"#,
        "unknown user: all"
    );

    let metrics = reqwest::get(gk.url("/metrics"))
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert!(
        metrics.contains("gatekeeper_privacy_fallbacks_total{reason=\"last_known\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatekeeper_privacy_fallbacks_total{reason=\"default\"} 1"),
        "{metrics}"
    );
    gk.shutdown().await;
}

#[tokio::test]
async fn privacy_comes_from_the_social_service_over_http() {
    let (stub, stub_url, _task) = privacy_stub().await;
    let mut c = config("ws://127.0.0.1:1", KEY, SECRET);
    c.social_service_url = Some(stub_url);
    let gk = start(Builder::new(c).room_service(Arc::new(FakeRooms::default()))).await;
    let (address, headers) = signed_headers("GET", TOKEN_PATH, EXPLORER);
    stub.set(&address, Privacy::OnlyFriends);
    let (s, b) = get_with(&gk.url(TOKEN_PATH), &headers).await;
    assert_eq!(s, 200);
    let (_, jwt) = split_adapter(b["adapter"].as_str().expect("adapter"));
    let claims: Value =
        serde_json::from_slice(&base64_url_decode(jwt.split('.').nth(1).expect("p")))
            .expect("claims");
    assert_eq!(
        claims["metadata"],
        Value::from(r#"{"private_messages_privacy":"only_friends"}"#)
    );
    gk.shutdown().await;
}

#[tokio::test]
async fn denylisted_wallets_get_401_and_the_list_refreshes() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("deny.json");
    let (address, headers) = signed_headers("GET", TOKEN_PATH, EXPLORER);
    std::fs::write(&path, r#"{"users":[]}"#).expect("write");
    let mut c = config("ws://127.0.0.1:1", KEY, SECRET);
    c.denylist_url = Some(path.display().to_string());
    c.denylist_refresh_secs = 1;
    let gk = start(Builder::new(c).room_service(Arc::new(FakeRooms::default()))).await;
    let url = gk.url(TOKEN_PATH);
    let (s, _) = get_with(&url, &headers).await;
    assert_eq!(s, 200);

    std::fs::write(
        &path,
        format!(
            r#"{{"users":[{{"wallet":"{}"}}]}}"#,
            address.to_uppercase().replace("0X", "0x")
        ),
    )
    .expect("write");
    let mut denied = false;
    for _ in 0..40 {
        let (s, b) = get_with(&url, &headers).await;
        if s == 401 {
            assert_eq!(message(&b), "Access denied, deny-listed wallet");
            denied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(denied, "the refreshed deny list applies");

    // A broken file keeps the last good list.
    std::fs::write(&path, "garbage").expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (s, _) = get_with(&url, &headers).await;
    assert_eq!(s, 401);
    gk.shutdown().await;
}

#[tokio::test]
async fn ping_status_and_unknown_routes() {
    let (gk, _) = app().await;
    let ping = reqwest::get(gk.url("/ping")).await.expect("ping");
    assert_eq!(ping.status(), 200);
    let (s, b) = get_with(&gk.url("/status"), &[]).await;
    assert_eq!(s, 200);
    assert_eq!(b["version"], Value::from(env!("CARGO_PKG_VERSION")));
    assert!(b["uptime_seconds"].is_u64());
    let (s, b) = get_with(&gk.url("/nope"), &[]).await;
    assert_eq!((s, message(&b)), (404, "Not found"));
    let resp = reqwest::Client::new()
        .post(gk.url(TOKEN_PATH))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 405);
    gk.shutdown().await;
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .expect("base64url")
}

/// A stand-in Catalyst `/crypto/validate-signature` that answers with `answer`.
async fn fake_catalyst(answer: Value) -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/lambdas/crypto/validate-signature",
        post(move |axum::Json(body): axum::Json<Value>| {
            let (answer, s) = (answer.clone(), s.clone());
            async move {
                s.lock().expect("lock").push(body);
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/lambdas", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// Signed-fetch headers whose delegation is a contract-wallet (EIP-1654) link.
fn contract_wallet_headers(owner: &str) -> Vec<(String, String)> {
    use authchain::{AuthLink, LinkType};
    let eph = authchain::Wallet::random();
    let exp = chrono::Utc::now() + chrono::Duration::minutes(5);
    let text = authchain::link::ephemeral_message(&eph.address(), exp);
    let ts = authchain::now_ms().to_string();
    let payload = authchain::signed_fetch::payload_v6("GET", TOKEN_PATH, &ts, EXPLORER);
    let chain = [
        AuthLink::new(LinkType::Signer, owner, ""),
        AuthLink::new(
            LinkType::Eip1654Ephemeral,
            text,
            format!("0x{}", "ab".repeat(100)),
        ),
        AuthLink::new(
            LinkType::EcdsaSignedEntity,
            payload.clone(),
            eph.personal_sign(&payload),
        ),
    ];
    let mut h: Vec<(String, String)> = chain
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("x-identity-auth-chain-{i}"), l.to_json()))
        .collect();
    h.push(("x-identity-timestamp".into(), ts));
    h.push(("x-identity-metadata".into(), EXPLORER.into()));
    h
}

#[tokio::test]
async fn contract_wallets_are_checked_by_the_catalyst_or_refused() {
    let owner = "0x1111111111111111111111111111111111111111";
    let headers = contract_wallet_headers(owner);

    // No Catalyst configured: a clear 401.
    let (gk, _) = app().await;
    let (s, b) = get_with(&gk.url(TOKEN_PATH), &headers).await;
    assert_eq!(s, 401, "{b}");
    assert!(message(&b).contains("no Catalyst validate-signature URL is configured"));
    gk.shutdown().await;

    // The Catalyst says valid: 200, and it was asked with the chain and the timestamp.
    let (url, seen) =
        fake_catalyst(serde_json::json!({"valid": true, "ownerAddress": owner})).await;
    let mut c = config("ws://127.0.0.1:1", KEY, SECRET);
    c.catalyst_lambdas_url = Some(url);
    let gk = start(Builder::new(c).room_service(Arc::new(FakeRooms::default()))).await;
    let (s, b) = get_with(&gk.url(TOKEN_PATH), &headers).await;
    assert_eq!(s, 200, "{b}");
    let asked = seen.lock().expect("lock")[0].clone();
    assert_eq!(asked["authChain"].as_array().map(Vec::len), Some(3));
    assert!(asked["timestamp"].is_i64());
    gk.shutdown().await;

    // The Catalyst says invalid: 401.
    let (url, _) =
        fake_catalyst(serde_json::json!({"valid": false, "error": "bad signature"})).await;
    let mut c = config("ws://127.0.0.1:1", KEY, SECRET);
    c.catalyst_lambdas_url = Some(url);
    let gk = start(Builder::new(c).room_service(Arc::new(FakeRooms::default()))).await;
    let (s, b) = get_with(&gk.url(TOKEN_PATH), &headers).await;
    assert_eq!(s, 401, "{b}");
    gk.shutdown().await;

    // The Catalyst is down: 503.
    let port = testkit::free_tcp_port().expect("port");
    let mut c = config("ws://127.0.0.1:1", KEY, SECRET);
    c.catalyst_lambdas_url = Some(format!("http://127.0.0.1:{port}/lambdas"));
    let gk = start(Builder::new(c).room_service(Arc::new(FakeRooms::default()))).await;
    let (s, b) = get_with(&gk.url(TOKEN_PATH), &headers).await;
    assert_eq!(s, 503, "{b}");
    gk.shutdown().await;
}
