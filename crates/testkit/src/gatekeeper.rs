//! One way to start our gatekeeper in a test (feature `gatekeeper`): the real service, built by
//! its own `Builder` (any boundary replaceable, as in production otherwise), served on
//! 127.0.0.1 port 0, stopped when the handle is dropped — the way crates.io's `TestApp` starts
//! the real application per test.
//!
//! It lives here rather than in the gatekeeper crate so that tests of several crates (the
//! gatekeeper's own, the end-to-end crate, the binaries') share it; Cargo allows the resulting
//! dev-dependency cycle (gatekeeper's integration tests → testkit → gatekeeper), and integration
//! tests link one copy of the gatekeeper library, so the types are the same on both sides. It is
//! behind a feature so the tests that need only livekit-server or PostgreSQL do not build the
//! gatekeeper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatekeeper::{AppState, Builder, GatekeeperConfig};
use tokio::sync::oneshot;

use crate::{HarnessError, LiveKitCluster, LiveKitServer};

/// The shared secret (`COMMS_GATEKEEPER_AUTH_TOKEN`) of every test gatekeeper.
pub const AUTH_TOKEN: &str = "test-gatekeeper-token";

/// The test configuration: LiveKit at `livekit_host` with that key and secret, [`AUTH_TOKEN`],
/// every other setting at its default.
pub fn config(livekit_host: &str, key: &str, secret: &str) -> GatekeeperConfig {
    GatekeeperConfig::new(livekit_host, key, secret, AUTH_TOKEN)
}

/// The test configuration for a running [`LiveKitServer`].
pub fn config_for(lk: &LiveKitServer) -> GatekeeperConfig {
    config(&lk.ws_url(), &lk.api_key, &lk.api_secret)
}

/// The test configuration in front of a [`LiveKitCluster`]: every node handed out
/// (`LIVEKIT_NODE_URLS`), each checked every 200 ms; node 0 is `PROD_LIVEKIT_HOST`.
pub fn config_for_cluster(cluster: &LiveKitCluster) -> GatekeeperConfig {
    let mut c = config_for(&cluster.nodes[0]);
    c.livekit_node_urls = cluster.nodes.iter().map(LiveKitServer::ws_url).collect();
    c.node_check_interval_ms = 200;
    c
}

/// A gatekeeper serving on 127.0.0.1; stopped (its task aborted) when dropped, or gracefully
/// with [`TestGatekeeper::shutdown`].
pub struct TestGatekeeper {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestGatekeeper {
    /// Builds the gatekeeper from `builder` and serves it on a fresh loopback port.
    pub async fn start(builder: Builder) -> Result<TestGatekeeper, HarnessError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = builder
            .build()
            .map_err(|e| HarnessError::Setup(format!("gatekeeper: {e}")))?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gatekeeper::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Ok(TestGatekeeper {
            addr,
            state,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// A gatekeeper with the test configuration in front of `lk` (see [`config_for`]).
    pub async fn for_livekit(lk: &LiveKitServer) -> Result<TestGatekeeper, HarnessError> {
        TestGatekeeper::start(Builder::new(config_for(lk))).await
    }

    /// A gatekeeper with [`config_for_cluster`] in front of `cluster`.
    pub async fn for_cluster(cluster: &LiveKitCluster) -> Result<TestGatekeeper, HarnessError> {
        TestGatekeeper::start(Builder::new(config_for_cluster(cluster))).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s) and waits for the server.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for TestGatekeeper {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
