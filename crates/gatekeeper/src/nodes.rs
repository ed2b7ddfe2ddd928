//! Which LiveKit node a client is sent to when LiveKit runs as a cluster (`LIVEKIT_NODE_URLS`).
//!
//! A LiveKit room lives on one node, but a client may signal through any node of the cluster:
//! that node relays its signalling to the room's node over Redis, and the client's WebRTC
//! transport goes to the room's node directly. So the gatekeeper may hand out any node's URL.
//! It hands out a node that answers its health check (`GET /` is 200 while the node's stats in
//! Redis are fresh), rather than one URL in front of the cluster, because a client whose node
//! dies reconnects with a fresh token from the gatekeeper: with the dead node left out of the
//! answers, it comes back through a live one without a load balancer having to notice first.
//!
//! Each address has a preferred node (a hash of the address), so a player keeps its node across
//! reconnections while that node is healthy, and the players spread over the nodes; when the
//! preferred node is down the next healthy one in order takes its players. Every node is taken
//! for healthy until its first check (the first round starts when the gatekeeper does). With no
//! healthy node the token request fails (503) rather than naming a node known to be down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Errors in `LIVEKIT_NODE_URLS`.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error("LIVEKIT_NODE_URLS: {url:?} is not a ws(s):// or http(s):// URL")]
    BadUrl { url: String },
    #[error("LIVEKIT_NODE_URLS: at most {MAX_NODES} nodes")]
    TooMany,
}

/// Most nodes one gatekeeper checks.
pub const MAX_NODES: usize = 64;

struct Node {
    /// The URL handed to clients (ws:// or wss://).
    ws_url: String,
    /// The node's health check (http:// or https://, path `/`).
    health_url: String,
    healthy: AtomicBool,
}

/// The cluster's nodes and what their last health check said.
pub struct Nodes {
    nodes: Vec<Node>,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.nodes
                    .iter()
                    .map(|n| (&n.ws_url, n.healthy.load(Ordering::Relaxed))),
            )
            .finish()
    }
}

impl Nodes {
    /// The nodes at `urls` (ws, wss, http or https), each taken for healthy until checked.
    pub fn new(urls: &[String]) -> Result<Nodes, NodesError> {
        if urls.len() > MAX_NODES {
            return Err(NodesError::TooMany);
        }
        let nodes = urls
            .iter()
            .map(|url| {
                let bad = || NodesError::BadUrl { url: url.clone() };
                let parsed = url::Url::parse(url.trim()).map_err(|_| bad())?;
                let secure = match parsed.scheme() {
                    "ws" | "http" => false,
                    "wss" | "https" => true,
                    _ => return Err(bad()),
                };
                let host = parsed.host_str().ok_or_else(bad)?;
                let authority = match parsed.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                };
                let (ws, http) = if secure {
                    ("wss", "https")
                } else {
                    ("ws", "http")
                };
                Ok(Node {
                    ws_url: format!("{ws}://{authority}"),
                    health_url: format!("{http}://{authority}/"),
                    healthy: AtomicBool::new(true),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Nodes { nodes })
    }

    /// The URL to hand to `identity`: its preferred node if healthy, else the next healthy one
    /// in order; `None` when no node is healthy (or there are none).
    pub fn pick(&self, identity: &str) -> Option<&str> {
        self.healthy_for(identity)
            .next()
            .map(|i| self.nodes[i].ws_url.as_str())
    }

    /// The healthy nodes (their indexes in the configured list) in `identity`'s order of
    /// preference: its preferred node first, then the following ones.
    pub fn healthy_for(&self, identity: &str) -> impl Iterator<Item = usize> + '_ {
        let n = self.nodes.len();
        let first = if n == 0 {
            0
        } else {
            (fnv1a(identity.as_bytes()) % n as u64) as usize
        };
        (0..n)
            .map(move |i| (first + i) % n)
            .filter(|&i| self.nodes[i].healthy.load(Ordering::Relaxed))
    }

    /// The nodes' client URLs, in the configured order.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.ws_url.as_str())
    }

    /// How many nodes passed their last check.
    pub fn healthy(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.healthy.load(Ordering::Relaxed))
            .count()
    }

    /// Checks every node once, at the same time (each within `client`'s timeout).
    pub async fn check(&self, client: &reqwest::Client) {
        let checks = self.nodes.iter().map(|node| async move {
            let ok = matches!(
                client.get(&node.health_url).send().await,
                Ok(resp) if resp.status().is_success()
            );
            let was = node.healthy.swap(ok, Ordering::Relaxed);
            if was != ok {
                if ok {
                    tracing::info!(node = %node.ws_url, "LiveKit node healthy again");
                } else {
                    tracing::warn!(node = %node.ws_url, "LiveKit node failed its health check; not handed out");
                }
            }
        });
        futures_util::future::join_all(checks).await;
    }
}

/// Checks `nodes` every `every` until they are dropped.
pub fn spawn_checks(nodes: &Arc<Nodes>, every: Duration) -> tokio::task::JoinHandle<()> {
    let weak: Weak<Nodes> = Arc::downgrade(nodes);
    let every = every.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let client = match reqwest::Client::builder().timeout(every).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the LiveKit health-check client");
                return;
            }
        };
        loop {
            let Some(nodes) = weak.upgrade() else { return };
            nodes.check(&client).await;
            drop(nodes);
            tokio::time::sleep(every).await;
        }
    })
}

/// FNV-1a (64 bit, [`pchat_core::rooms::stable_hash`]): the same in every process and version,
/// so every gatekeeper instance prefers the same node for an address. The sharded rooms' home
/// room mixes the same hash before using its high bits, so a player's node does not follow from
/// its home room.
fn fnv1a(bytes: &[u8]) -> u64 {
    pchat_core::rooms::stable_hash(bytes.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Nodes {
        let urls: Vec<String> = (0..n)
            .map(|i| format!("ws://127.0.0.1:{}", 7000 + i))
            .collect();
        Nodes::new(&urls).expect("nodes")
    }

    #[test]
    fn urls_are_normalised_and_bad_ones_refused() {
        let n = Nodes::new(&["http://a.example:7880/".into(), "wss://b.example".into()])
            .expect("nodes");
        assert_eq!(n.nodes[0].ws_url, "ws://a.example:7880");
        assert_eq!(n.nodes[0].health_url, "http://a.example:7880/");
        assert_eq!(n.nodes[1].ws_url, "wss://b.example");
        assert_eq!(n.nodes[1].health_url, "https://b.example/");
        for bad in ["", "a.example:7880", "ftp://a.example", "ws://"] {
            assert!(Nodes::new(&[bad.into()]).is_err(), "{bad:?} accepted");
        }
        let many: Vec<String> = (0..=MAX_NODES).map(|i| format!("ws://h{i}")).collect();
        assert!(matches!(Nodes::new(&many), Err(NodesError::TooMany)));
    }

    #[test]
    fn an_address_keeps_its_node_and_moves_only_when_that_node_is_down() {
        let n = nodes(3);
        let ids: Vec<String> = (0..300).map(|i| format!("0x{i:040x}")).collect();
        let first: Vec<&str> = ids.iter().map(|id| n.pick(id).expect("a node")).collect();
        // Spread over the nodes.
        for node in &n.nodes {
            let share = first.iter().filter(|u| **u == node.ws_url).count();
            assert!(share > 50, "{} got {share} of 300", node.ws_url);
        }
        // Node 1 goes down: only its players move, and not to node 1.
        n.nodes[1].healthy.store(false, Ordering::Relaxed);
        for (id, was) in ids.iter().zip(&first) {
            let now = n.pick(id).expect("a node");
            assert_ne!(now, n.nodes[1].ws_url);
            if *was != n.nodes[1].ws_url {
                assert_eq!(now, *was, "{id} moved although its node is up");
            }
        }
        // Back up: everyone is on their own node again.
        n.nodes[1].healthy.store(true, Ordering::Relaxed);
        let again: Vec<&str> = ids.iter().map(|id| n.pick(id).expect("a node")).collect();
        assert_eq!(again, first);
    }

    #[test]
    fn no_healthy_node_means_no_answer() {
        let n = nodes(2);
        for node in &n.nodes {
            node.healthy.store(false, Ordering::Relaxed);
        }
        assert_eq!(n.pick("0xabc"), None);
        assert_eq!(n.healthy(), 0);
        assert_eq!(nodes(0).pick("0xabc"), None);
    }

    #[test]
    fn the_hash_is_stable() {
        // Known FNV-1a 64 values: the same in every process and build.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
