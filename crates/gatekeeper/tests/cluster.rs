//! The gatekeeper in front of a LiveKit cluster (issue #11, `LIVEKIT_NODE_URLS`): three real
//! livekit-server nodes sharing one redis-server. Tokens name the node each address prefers,
//! spread over the nodes; a node killed with SIGKILL stops being handed out within a few health
//! checks (only its players move), comes back once it answers again, and with every node down a
//! token request is a 503, not a URL known to be dead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::LiveKitCluster;
use testkit::gatekeeper::TestGatekeeper;

const PATH: &str = "/private-messages/token";
const LIMIT: Duration = Duration::from_secs(10);

/// GET the token as `identity` (our signed fetch); (status, body).
async fn token(gk: &TestGatekeeper, identity: &authchain::Identity) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.get(gk.url(PATH));
    for (name, value) in identity.signed_fetch_headers(
        "GET",
        PATH,
        authchain::now_ms(),
        r#"{"signer":"dcl:explorer"}"#,
    ) {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

/// The ws URL a 200 answer's adapter names.
fn node_of(body: &Value) -> String {
    let adapter = body["adapter"].as_str().expect("adapter");
    let url = adapter.strip_prefix("livekit:").expect("livekit:");
    url.split_once('?').expect("query").0.to_owned()
}

/// Each identity's node, as the gatekeeper hands it out now.
async fn nodes_of(gk: &TestGatekeeper, ids: &[authchain::Identity]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let (status, body) = token(gk, id).await;
        assert_eq!(status, 200, "{body}");
        out.push(node_of(&body));
    }
    out
}

async fn wait_healthy(gk: &TestGatekeeper, n: usize) {
    let nodes = gk.state.nodes.as_ref().expect("nodes");
    let started = Instant::now();
    while nodes.healthy() != n {
        assert!(
            started.elapsed() < LIMIT,
            "{} healthy nodes, not {n}: {nodes:?}",
            nodes.healthy()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_name_healthy_nodes_only() {
    let mut cluster = LiveKitCluster::start(3).await.expect("cluster");
    let gk = TestGatekeeper::for_cluster(&cluster)
        .await
        .expect("gatekeeper");
    wait_healthy(&gk, 3).await;

    let expiry = chrono::Utc::now() + chrono::Duration::hours(1);
    let ids: Vec<authchain::Identity> = (0..60)
        .map(|_| authchain::Identity::new(&authchain::Wallet::random(), expiry))
        .collect();
    let before = nodes_of(&gk, &ids).await;
    let mut share: HashMap<&str, usize> = HashMap::new();
    for url in &before {
        *share.entry(url.as_str()).or_default() += 1;
    }
    for node in &cluster.nodes {
        assert!(
            share.get(node.ws_url().as_str()).is_some_and(|n| *n > 0),
            "no player on {}: {share:?}",
            node.ws_url()
        );
    }
    // The same address gets the same node again.
    assert_eq!(nodes_of(&gk, &ids).await, before);

    // Node 1 dies: within a few checks it is no longer handed out; only its players move.
    let dead = cluster.nodes[1].ws_url();
    cluster.nodes[1].stop().await.expect("kill");
    wait_healthy(&gk, 2).await;
    let after = nodes_of(&gk, &ids).await;
    for (was, now) in before.iter().zip(&after) {
        assert_ne!(*now, dead);
        if *was != dead {
            assert_eq!(now, was, "a player moved although its node is up");
        }
    }

    // Back: handed out again, to the same players as before.
    cluster.nodes[1].restart().await.expect("restart");
    wait_healthy(&gk, 3).await;
    assert_eq!(nodes_of(&gk, &ids).await, before);

    // Every node down: a 503 in the gatekeeper's error shape, counted.
    for node in &mut cluster.nodes {
        node.stop().await.expect("kill");
    }
    wait_healthy(&gk, 0).await;
    let (status, body) = token(&gk, &ids[0]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], Value::Bool(false));
    assert_eq!(body["message"], "No LiveKit node is available");
    assert!(
        gk.state
            .metrics
            .encode()
            .contains("gatekeeper_no_livekit_node_total 1"),
        "{}",
        gk.state.metrics.encode()
    );
}
