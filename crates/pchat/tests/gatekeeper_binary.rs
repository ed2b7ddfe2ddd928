//! `pchat gatekeeper`, the binary, configured only through the reference environment variables,
//! answers a request signed by the official npm packages with an adapter that the official
//! LiveKit SDK can join with.

use std::process::Stdio;
use std::time::{Duration, Instant};

use testkit::node::{self, NodeProcess};
use testkit::{LiveKitServer, free_tcp_port};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tokens_to_official_clients() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let port = free_tcp_port().expect("port");
    let mut gk = tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
        .arg("gatekeeper")
        .env_clear()
        .env("PROD_LIVEKIT_HOST", lk.ws_url())
        .env("PROD_LIVEKIT_API_KEY", &lk.api_key)
        .env("PROD_LIVEKIT_API_SECRET", &lk.api_secret)
        // Nothing listens here: the gatekeeper must fall back to privacy "all".
        .env(
            "SOCIAL_SERVICE_URL",
            format!("http://127.0.0.1:{}", free_tcp_port().expect("port")),
        )
        .env("COMMS_GATEKEEPER_AUTH_TOKEN", "binary-test-token")
        .env("HTTP_SERVER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("pchat gatekeeper");

    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{base}/ping")).await.is_err() {
        assert!(started.elapsed() < LIMIT, "gatekeeper did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let url = format!("{base}/private-messages/token");
    let resp = node::signed_get(&url, r#"{"signer":"dcl:explorer"}"#, None, LIMIT)
        .await
        .expect("signed-fetch.mjs");
    assert_eq!(resp["status"], serde_json::Value::from(200), "{resp}");
    let body: serde_json::Value =
        serde_json::from_str(resp["body"].as_str().expect("body")).expect("json");
    let adapter = body["adapter"].as_str().expect("adapter");
    let (url, query) = adapter
        .strip_prefix("livekit:")
        .expect("prefix")
        .split_once('?')
        .expect("query");
    let token = query.strip_prefix("access_token=").expect("token");
    assert_eq!(url, lk.ws_url());

    let mut peer = NodeProcess::spawn("lk-participant.mjs", &[url, token]).expect("node");
    let line = peer
        .wait_for("\"connected\"", LIMIT)
        .await
        .expect("connected");
    let connected: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(connected["identity"], resp["address"]);
    assert_eq!(
        connected["metadata"],
        serde_json::Value::from(r#"{"private_messages_privacy":"all"}"#)
    );

    peer.kill().await;
    let _ = gk.kill().await;
}
