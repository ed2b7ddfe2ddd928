//! Shared test wiring: the test kit's gatekeeper (127.0.0.1:0, a chosen RoomService and privacy
//! source), a stand-in privacy source, and request helpers.
#![allow(dead_code, unused_imports)]

use gatekeeper::Builder;
pub use testkit::gatekeeper::{AUTH_TOKEN, TestGatekeeper, config};

/// The kit's [`TestGatekeeper`] built from `builder`.
pub async fn start(builder: Builder) -> TestGatekeeper {
    TestGatekeeper::start(builder).await.expect("gatekeeper")
}

/// Starts the stand-in privacy source on 127.0.0.1:0; returns it and its base URL.
pub async fn privacy_stub() -> (
    gatekeeper::stub::PrivacyStub,
    String,
    tokio::task::JoinHandle<()>,
) {
    let stub = gatekeeper::stub::PrivacyStub::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let s = stub.clone();
    let task = tokio::spawn(async move {
        let _ = s.serve(listener, std::future::pending()).await;
    });
    (stub, url, task)
}

/// Signed-fetch headers made by our own signer for a fresh wallet.
pub fn signed_headers(method: &str, path: &str, metadata: &str) -> (String, Vec<(String, String)>) {
    let owner = authchain::Wallet::random();
    let id = authchain::Identity::new(&owner, chrono::Utc::now() + chrono::Duration::minutes(5));
    let headers = id.signed_fetch_headers(method, path, authchain::now_ms(), metadata);
    (owner.address().to_lower_hex(), headers)
}

pub async fn get_with(url: &str, headers: &[(String, String)]) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub async fn patch_privacy(
    base: &str,
    address: &str,
    body: &str,
    bearer: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .patch(format!("{base}/users/{address}/private-messages-privacy"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Splits `livekit:<url>?access_token=<jwt>` the way the explorer does.
pub fn split_adapter(adapter: &str) -> (String, String) {
    let rest = adapter.strip_prefix("livekit:").expect("livekit: prefix");
    let (url, query) = rest.split_once('?').expect("query");
    let token = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("access_token="))
        .expect("access_token");
    (url.to_owned(), token.to_owned())
}

/// The social service's PATCH of `address`'s privacy to `privacy` (`all`/`only_friends`), with
/// the right bearer token.
pub async fn set_privacy(
    gk: &TestGatekeeper,
    address: &str,
    privacy: &str,
) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "private_messages_privacy": privacy }).to_string();
    patch_privacy(&gk.url(""), address, &body, Some(AUTH_TOKEN)).await
}

/// Parses a JSON line (a test failure names the line when it is not JSON).
pub fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Signed-fetch headers for `GET url` made by the official packages (`decentraland-crypto-fetch`
/// / `@dcl/crypto`) with `metadata`, in the `legacy` or `v6` payload format: (address, headers).
pub async fn official_headers(
    url: &str,
    metadata: &str,
    format: &str,
) -> (String, Vec<(String, String)>) {
    let out = testkit::node::run(
        "signed-fetch.mjs",
        &["headers", "GET", url, metadata, "", format],
        std::time::Duration::from_secs(30),
    )
    .await
    .expect("signed-fetch.mjs headers");
    let v = json(out.trim());
    let mut headers = Vec::new();
    let mut address = String::new();
    for (k, val) in v.as_object().expect("object") {
        let s = val.as_str().expect("string").to_owned();
        if k == "address" {
            address = s;
        } else {
            headers.push((k.clone(), s));
        }
    }
    (address, headers)
}

/// A JWT's claims, checked against `lk`'s secret.
pub fn claims(lk: &testkit::LiveKitServer, jwt: &str) -> serde_json::Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[&lk.api_key]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
    jsonwebtoken::decode::<serde_json::Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(lk.api_secret.as_bytes()),
        &validation,
    )
    .expect("a valid token")
    .claims
}
