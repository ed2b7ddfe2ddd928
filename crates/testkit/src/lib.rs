//! The project's test kit: what the tests of every crate start instead of fakes.
//!
//! - [`LiveKitServer`] starts a real `livekit-server` (v1.13.5, installed by `scripts/setup`)
//!   bound to 127.0.0.1 with free ports and a generated loopback-only configuration, waits until
//!   it answers, and kills it when dropped (also when the test panics, printing its log tail).
//!   [`participant_token`] mints tokens like the gatekeeper's for it.
//! - [`RedisServer`] starts a throwaway `redis-server` on 127.0.0.1.
//! - [`FreshPostgres`] ([`postgres`]) makes a fresh database per test on the PostgreSQL server
//!   named by `PCHAT_TEST_DATABASE_URL`, and drops it afterwards; it can also make the database
//!   unreachable for outage tests.
//! - [`node`] runs the Node.js interop scripts in `interop/` (the official npm packages).
//! - `gatekeeper::TestGatekeeper` (feature `gatekeeper`) serves our gatekeeper on 127.0.0.1
//!   port 0 for a test and stops it on drop.
//! - [`free_tcp_port`] / [`free_udp_port`] pick ports for servers that cannot take a bound
//!   listener; [`workspace_root`], [`tools_dir`] and [`livekit_binary`] find what
//!   `scripts/setup` installed.
//!
//! The whole system (livekit-server, social service and gatekeeper wired together) for the
//! end-to-end tests is `e2e_tests::System` in `crates/e2e`, which builds on this kit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

#[cfg(feature = "gatekeeper")]
pub mod gatekeeper;
pub mod node;
pub mod postgres;

pub use postgres::FreshPostgres;

/// Errors from the harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "livekit-server binary not found (looked at {0}); run `scripts/setup` or set LIVEKIT_SERVER_BIN"
    )]
    LiveKitMissing(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("livekit-server did not become ready within {0:?}; log:\n{1}")]
    NotReady(Duration, String),
    #[error("livekit-server exited early ({0}); log:\n{1}")]
    Exited(String, String),
    #[error("node: {0}")]
    Node(String),
    #[error("test setup: {0}")]
    Setup(String),
}

/// The workspace root: two levels above the crate being tested. Cargo gives that crate's
/// directory at run time; the path compiled in is only a fallback, because a build cache shared
/// between two checkouts can hand one checkout a binary compiled in the other.
pub fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `scripts/setup` installs tools: `$PCHAT_TOOLS_DIR`, default `<workspace>/.tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("PCHAT_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"))
}

/// Path of the livekit-server binary: `$LIVEKIT_SERVER_BIN`, else `<tools>/bin/livekit-server`.
pub fn livekit_binary() -> Result<PathBuf, HarnessError> {
    let path = std::env::var_os("LIVEKIT_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("bin/livekit-server"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::LiveKitMissing(path.display().to_string()))
    }
}

/// A figure in KiB from `/proc/<pid>/status` (`field` such as `"VmRSS:"` or `"VmHWM:"`);
/// `None` where the file or the line is not there (not Linux, or the process is gone).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(field))?;
    line.split_whitespace().next()?.parse().ok()
}

/// CPU time a process has used so far (user + system, all threads), from `/proc/<pid>/stat`;
/// `None` where it cannot be read. The kernel reports it in clock ticks of `USER_HZ`, which the
/// Linux ABI fixes at 100 per second on every architecture we run on (so no `sysconf` call).
pub fn proc_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may itself hold spaces.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// This process's resident memory in KiB (0 where it cannot be read).
pub fn rss_kib() -> u64 {
    proc_status_kib(std::process::id(), "VmRSS:").unwrap_or(0)
}

/// A free TCP port on 127.0.0.1 (bound and released; a small race is possible).
pub fn free_tcp_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A participant token like the gatekeeper's (join `room`, subscribe, publish data only, no
/// media), minted with the server's key; valid for `ttl`.
pub fn participant_token(
    api_key: &str,
    api_secret: &str,
    room: &str,
    identity: &str,
    metadata: &str,
    ttl: Duration,
) -> String {
    use livekit_api::access_token::{AccessToken, VideoGrants};
    AccessToken::with_api_key(api_key, api_secret)
        .with_identity(identity)
        .with_metadata(metadata)
        .with_grants(VideoGrants {
            room_join: true,
            room: room.into(),
            can_publish: Some(false),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            can_update_own_metadata: Some(false),
            ..Default::default()
        })
        .with_ttl(ttl)
        .to_jwt()
        .unwrap_or_default()
}

/// A running `livekit-server` on loopback. Killed on drop.
pub struct LiveKitServer {
    child: Option<Child>,
    pub http_port: u16,
    pub udp_port: u16,
    pub api_key: String,
    pub api_secret: String,
    /// The Redis port of the cluster this server is a node of (`None`: a single node).
    redis_port: Option<u16>,
    dir: tempfile::TempDir,
}

/// A random API key and secret (the secret long enough for livekit-server outside dev mode).
fn random_keys() -> (String, String) {
    let key = format!("APItest{:08x}", rand::random::<u32>());
    let secret = format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    (key, secret)
}

impl LiveKitServer {
    /// Starts a server with a random API key and secret and waits until it answers.
    pub async fn start() -> Result<Self, HarnessError> {
        let (key, secret) = random_keys();
        Self::start_with(key, secret, None).await
    }

    /// Starts a server with these keys, as a node of the cluster whose Redis listens on
    /// `redis_port` (or alone), and waits until it answers.
    async fn start_with(
        api_key: String,
        api_secret: String,
        redis_port: Option<u16>,
    ) -> Result<Self, HarnessError> {
        let mut server = LiveKitServer {
            child: None,
            http_port: free_tcp_port()?,
            udp_port: free_udp_port()?,
            api_key,
            api_secret,
            redis_port,
            dir: tempfile::tempdir()?,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// A participant token for `identity` in `room` (see [`participant_token`]), 10 minutes.
    pub fn token(&self, room: &str, identity: &str, metadata: &str) -> String {
        participant_token(
            &self.api_key,
            &self.api_secret,
            room,
            identity,
            metadata,
            Duration::from_secs(600),
        )
    }

    /// `ws://127.0.0.1:<port>`: the URL clients connect to.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.http_port)
    }

    /// `http://127.0.0.1:<port>`: the URL of the Twirp APIs.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("livekit.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The node ID this server took when it last started (`ND_…`, random at every start), from
    /// its "starting LiveKit server" log line.
    pub fn node_id(&self) -> Option<String> {
        let log = self.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("starting LiveKit server"))?;
        let rest = &line[line.find("\"nodeID\": \"")? + "\"nodeID\": \"".len()..];
        Some(rest[..rest.find('"')?].to_owned())
    }

    fn config(&self) -> String {
        format!(
            "port: {http}\n\
             bind_addresses:\n  - 127.0.0.1\n\
             rtc:\n  udp_port: {udp}\n  tcp_port: 0\n  use_external_ip: false\n  \
             enable_loopback_candidate: true\n  ips:\n    includes:\n      - 127.0.0.1/32\n\
             room:\n  auto_create: true\n\
             turn:\n  enabled: false\n\
             keys:\n  {key}: {secret}\n\
             logging:\n  level: info\n{redis}",
            http = self.http_port,
            udp = self.udp_port,
            key = self.api_key,
            secret = self.api_secret,
            redis = self
                .redis_port
                .map(|p| format!("redis:\n  address: 127.0.0.1:{p}\n"))
                .unwrap_or_default(),
        )
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let bin = livekit_binary()?;
        let config_path = self.dir.path().join("livekit.yaml");
        std::fs::write(&config_path, self.config())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = Command::new(bin);
        // livekit-server lets environment variables override any setting of the file
        // (`LIVEKIT_<PATH>`, `REDIS_HOST`, `NODE_IP`, `UDP_PORT`, …): none from our environment
        // may reach it, or two nodes of a cluster could end up on one port.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("LIVEKIT_")
                || name.starts_with("REDIS_")
                || name == "NODE_IP"
                || name == "UDP_PORT"
            {
                command.env_remove(name.as_ref());
            }
        }
        let child = command
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30)).await
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| HarnessError::Node(e.to_string()))?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(HarnessError::Exited(status.to_string(), self.log()));
            }
            if let Ok(resp) = client.get(self.http_url()).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(HarnessError::NotReady(limit, self.log()))
    }

    /// Stops the server (SIGKILL) and waits for it to exit.
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// The server process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Freezes the server (SIGSTOP): sockets stay open but nothing answers.
    pub fn pause(&self) -> Result<(), HarnessError> {
        self.signal("-STOP")
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) -> Result<(), HarnessError> {
        self.signal("-CONT")
    }

    fn signal(&self, sig: &str) -> Result<(), HarnessError> {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .ok_or_else(|| HarnessError::Exited("not running".into(), String::new()))?;
        let status = std::process::Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(HarnessError::Exited(
                format!("kill {sig} failed"),
                String::new(),
            ))
        }
    }

    /// Stops and starts the server again on the same ports and keys.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await?;
        self.spawn().await
    }
}

impl Drop for LiveKitServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- livekit-server log (last lines) ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A LiveKit cluster on loopback: `n` livekit-server nodes sharing one `redis-server` and one
/// API key, each with its own HTTP and UDP port, as LiveKit documents multi-node deployments. A
/// room lives on one node; a participant may signal through any node (that node relays its
/// signalling to the room's node over Redis) while its WebRTC transport goes to the room's node.
pub struct LiveKitCluster {
    pub nodes: Vec<LiveKitServer>,
    pub redis: RedisServer,
}

impl LiveKitCluster {
    /// Starts Redis, then `n` nodes, and waits until each answers.
    pub async fn start(n: usize) -> Result<Self, HarnessError> {
        let redis = RedisServer::start().await?;
        let (key, secret) = random_keys();
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(
                LiveKitServer::start_with(key.clone(), secret.clone(), Some(redis.port)).await?,
            );
        }
        Ok(LiveKitCluster { nodes, redis })
    }

    /// A token for `room` valid on every node (they share the key).
    pub fn token(&self, room: &str, identity: &str, metadata: &str) -> String {
        self.nodes[0].token(room, identity, metadata)
    }

    /// Creates `room` on node `node` (LiveKit's `CreateRoom` with that node's id), instead of
    /// leaving the placement to LiveKit's selector, which picks a random available node.
    pub async fn create_room_on(&self, room: &str, node: usize) -> Result<(), HarnessError> {
        let server = self
            .nodes
            .get(node)
            .ok_or_else(|| HarnessError::Setup(format!("no node {node}")))?;
        let node_id = server
            .node_id()
            .ok_or_else(|| HarnessError::Setup(format!("node {node} has not logged its id")))?;
        let client = livekit_api::services::room::RoomClient::with_api_key(
            &server.http_url(),
            &server.api_key,
            &server.api_secret,
        );
        client
            .create_room(
                room,
                livekit_api::services::room::CreateRoomOptions {
                    node_id,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| HarnessError::Setup(format!("CreateRoom {room} on node {node}: {e}")))?;
        Ok(())
    }

    /// The index of the node hosting `room`, as the cluster's Redis maps it (`room_node_map`);
    /// `None` while no node hosts it or the host is not one of [`LiveKitCluster::nodes`].
    pub async fn room_node(&self, room: &str) -> Result<Option<usize>, HarnessError> {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &self.redis.port.to_string(),
                "HGET",
                "room_node_map",
                room,
            ])
            .stdin(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            return Err(HarnessError::Setup(format!(
                "redis-cli: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(self
            .nodes
            .iter()
            .position(|n| !id.is_empty() && n.node_id().as_deref() == Some(id.as_str())))
    }
}

/// A throwaway `redis-server` on 127.0.0.1 (from Debian's package, installed by
/// `scripts/setup`), killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub async fn start() -> Result<Self, HarnessError> {
        let port = free_tcp_port()?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                HarnessError::Node(format!(
                    "cannot start redis-server ({e}); run scripts/setup"
                ))
            })?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(RedisServer { child, port });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(HarnessError::NotReady(
            Duration::from_secs(10),
            "redis-server".into(),
        ))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod proc_status_tests {
    use super::*;

    #[test]
    fn reads_this_process_and_refuses_what_is_not_there() {
        assert!(proc_status_kib(std::process::id(), "VmRSS:").is_some_and(|k| k > 0));
        assert!(rss_kib() > 0);
        assert_eq!(proc_status_kib(std::process::id(), "NoSuchField:"), None);
        assert_eq!(proc_status_kib(u32::MAX, "VmRSS:"), None);
    }

    #[test]
    fn cpu_time_grows_with_work_and_is_none_for_no_process() {
        let me = std::process::id();
        let before = proc_cpu_time(me).expect("this process's CPU time");
        // Busy for about 100 ms of CPU (the counter ticks every 10 ms).
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = proc_cpu_time(me).expect("this process's CPU time");
        assert!(after > before, "{before:?} → {after:?}");
        assert_eq!(proc_cpu_time(u32::MAX), None);
    }
}
