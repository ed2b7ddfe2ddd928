//! `pchat up`: the whole system on this machine, for playing with it. [`LocalSystem`] starts
//! `livekit-server` (a child process), the social service (SQLite in the data directory) and the
//! gatekeeper (both in this process), everything on 127.0.0.1, with a fresh LiveKit API secret
//! and gatekeeper↔social token on every start, and waits until all three answer.
//!
//! In the data directory: `social.sqlite` (friendships, blocks, settings: kept between runs),
//! `livekit.yaml` (this run's LiveKit configuration with its secret, mode 0600),
//! `livekit.log`, and `livekit.pid` while livekit-server runs (removed once it is stopped and
//! reaped). The directory is created with mode 0700.
//!
//! Stopping ([`LocalSystem::stop`], or dropping the value) shuts both services down and kills
//! `livekit-server` and waits for it. A `pchat up` killed with SIGKILL cannot do that and leaves
//! its `livekit-server` behind (the standard library has no safe way to ask Linux to kill a
//! child with its parent, and this workspace forbids `unsafe`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The LiveKit API key of the local system (the secret is random on every start).
pub const API_KEY: &str = "devkey";
/// How long [`LocalSystem::start`] waits for the three services to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Ports and places of a local system.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where `social.sqlite`, `livekit.yaml` and `livekit.log` are kept.
    pub data_dir: PathBuf,
    /// The livekit-server binary; `None`: looked up as [`find_livekit_server`] does.
    pub livekit_server_bin: Option<PathBuf>,
    /// Port of the gatekeeper (0: any free port).
    pub gatekeeper_port: u16,
    /// Port of the social service (0: any free port).
    pub social_port: u16,
    /// LiveKit's HTTP/WebSocket port (0: any free port).
    pub livekit_port: u16,
    /// LiveKit's UDP port for WebRTC (0: any free port).
    pub livekit_udp_port: u16,
    /// How long to wait for everything to answer.
    pub ready_timeout: Duration,
}

impl Options {
    /// The defaults of `scripts/dev`: gatekeeper 3000, social 3001, LiveKit 7880 (UDP 7882).
    pub fn new(data_dir: PathBuf) -> Self {
        Options {
            data_dir,
            livekit_server_bin: None,
            gatekeeper_port: 3000,
            social_port: 3001,
            livekit_port: 7880,
            livekit_udp_port: 7882,
            ready_timeout: READY_TIMEOUT,
        }
    }

    /// Every port chosen free by the system (for a system that must not meet another).
    #[allow(dead_code)] // for `pchat demo` and tests of the player commands
    pub fn any_free_ports(data_dir: PathBuf) -> Self {
        Options {
            gatekeeper_port: 0,
            social_port: 0,
            livekit_port: 0,
            livekit_udp_port: 0,
            ..Options::new(data_dir)
        }
    }
}

/// Where a running local system answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `http://127.0.0.1:<port>`: tokens (`/private-messages/token`), `/ping`, `/status`.
    pub gatekeeper: String,
    /// `ws://127.0.0.1:<port>/`: the social service's dcl-rpc WebSocket.
    pub social: String,
    /// `http://127.0.0.1:<port>`: the social service's HTTP side (`/ping`, privacy settings).
    pub social_http: String,
    /// `ws://127.0.0.1:<port>`: LiveKit, as handed to clients in the gatekeeper's adapter.
    pub livekit: String,
    /// LiveKit's UDP port.
    pub livekit_udp_port: u16,
}

/// Why a local system could not start. One line each.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "livekit-server not found (looked at {looked}); install it with `scripts/setup` from the private-chat repository, or set LIVEKIT_SERVER_BIN"
    )]
    LiveKitMissing { looked: String },
    #[error(
        "LIVEKIT_SERVER_BIN {0} is not a file; install livekit-server with `scripts/setup` from the private-chat repository, or fix the path"
    )]
    LiveKitBinNotAFile(PathBuf),
    #[error("no data directory for this user could be found; give one with --data-dir DIR")]
    NoDataDir,
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {0} is not valid UTF-8; choose another with --data-dir")]
    DataDirNotUtf8(PathBuf),
    #[error(
        "port {port} ({what}) is already in use on 127.0.0.1; stop what uses it or choose another port with {flag}"
    )]
    PortInUse {
        port: u16,
        what: &'static str,
        flag: &'static str,
    },
    #[error("cannot listen on 127.0.0.1:{port} ({what}): {source}")]
    Listen {
        port: u16,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start livekit-server {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the social service cannot start: {0}")]
    Social(String),
    #[error("the gatekeeper cannot start: {0}")]
    Gatekeeper(String),
    #[error("livekit-server exited before answering ({status}); see its log {log}")]
    LiveKitExited { status: String, log: PathBuf },
    #[error("cannot listen for Ctrl-C and SIGTERM: {source}")]
    Signals {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "a livekit-server (pid {pid}) started by another `pchat up` with data directory {dir} is still running; stop that `pchat up`, or `kill {pid}` if it was killed"
    )]
    LiveKitStillRunning { pid: u32, dir: PathBuf },
    #[error("start-up was cancelled")]
    Cancelled,
    #[error("{0}; everything else was stopped too")]
    PartFailed(String),
    #[error("{what} did not answer within {secs} s{hint}")]
    NotReady {
        what: &'static str,
        secs: u64,
        hint: String,
    },
}

/// `pchat up`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Where the social service's SQLite database, LiveKit's configuration and its log are kept.
    /// Default: the user's data directory + pchat/up (on Linux ~/.local/share/pchat/up).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Gatekeeper port.
    #[arg(long, env = "PCHAT_GATEKEEPER_PORT", default_value_t = gatekeeper::config::DEFAULT_PORT)]
    pub gatekeeper_port: u16,
    /// Social service port (HTTP and the dcl-rpc WebSocket at /).
    #[arg(long, env = "PCHAT_SOCIAL_PORT", default_value_t = social::config::DEFAULT_PORT)]
    pub social_port: u16,
    /// LiveKit HTTP/WebSocket port.
    #[arg(long, env = "PCHAT_LIVEKIT_PORT", default_value_t = 7880)]
    pub livekit_port: u16,
    /// LiveKit UDP port (WebRTC).
    #[arg(long, env = "PCHAT_LIVEKIT_UDP_PORT", default_value_t = 7882)]
    pub livekit_udp_port: u16,
    /// The livekit-server binary. Default: $PCHAT_TOOLS_DIR/bin/livekit-server, then the
    /// repository's .tools/bin/livekit-server (where `scripts/setup` installs it), then PATH.
    #[arg(long, env = "LIVEKIT_SERVER_BIN", value_name = "FILE")]
    pub livekit_server_bin: Option<PathBuf>,
}

/// The default data directory: `<user data dir>/pchat/up`.
pub fn default_data_dir() -> Result<PathBuf, UpError> {
    dirs::data_dir()
        .map(|d| d.join("pchat").join("up"))
        .ok_or(UpError::NoDataDir)
}

/// Finds livekit-server as `scripts/setup` and `scripts/dev` do: `explicit` (LIVEKIT_SERVER_BIN)
/// must exist when given; otherwise `$PCHAT_TOOLS_DIR/bin/livekit-server`, then
/// `.tools/bin/livekit-server` in the repository this binary was built from, in the working
/// directory or above the executable (`target/debug/pchat` → the repository), then `PATH`.
pub fn find_livekit_server(explicit: Option<&Path>) -> Result<PathBuf, UpError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(UpError::LiveKitBinNotAFile(path.to_owned()))
        };
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    const IN_TOOLS: &str = "bin/livekit-server";
    if let Some(tools) = std::env::var_os("PCHAT_TOOLS_DIR").filter(|t| !t.is_empty()) {
        candidates.push(PathBuf::from(tools).join(IN_TOOLS));
    }
    // The repository this binary was compiled in (crates/pchat → two levels up).
    if let Some(repo) = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2) {
        candidates.push(repo.join(".tools").join(IN_TOOLS));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(".tools").join(IN_TOOLS));
    }
    if let Ok(exe) = std::env::current_exe() {
        // <repo>/target/<profile>/pchat: the repository is at most three levels up.
        for dir in exe.ancestors().skip(1).take(3) {
            candidates.push(dir.join(".tools").join(IN_TOOLS));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("livekit-server")));
    }
    candidates.dedup();
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    let shown: Vec<String> = candidates
        .iter()
        .take(5)
        .map(|c| c.display().to_string())
        .collect();
    let more = if candidates.len() > 5 { ", PATH" } else { "" };
    Err(UpError::LiveKitMissing {
        looked: format!("{}{more}", shown.join(", ")),
    })
}

/// A running local system. Dropping it stops everything too, without waiting.
pub struct LocalSystem {
    endpoints: Endpoints,
    data_dir: PathBuf,
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    failures: mpsc::UnboundedReceiver<Failure>,
    livekit_pid: Option<u32>,
}

impl LocalSystem {
    /// Starts livekit-server, the social service and the gatekeeper and waits until each
    /// answers. On any error, what was started is stopped again.
    #[allow(dead_code)] // for `pchat demo` (`pchat up` uses `start_unless`)
    pub async fn start(options: Options) -> Result<LocalSystem, UpError> {
        Self::start_unless(options, std::future::pending()).await
    }

    /// Like [`LocalSystem::start`], but when `cancel` resolves first, what was started is
    /// stopped (livekit-server killed and reaped) and the answer is [`UpError::Cancelled`].
    pub async fn start_unless(
        options: Options,
        cancel: impl Future<Output = ()>,
    ) -> Result<LocalSystem, UpError> {
        let bin = find_livekit_server(options.livekit_server_bin.as_deref())?;
        let dir = options.data_dir.clone();
        create_private_dir(&dir)?;
        if let Some(pid) = livekit_left_running(&dir) {
            return Err(UpError::LiveKitStillRunning { pid, dir });
        }
        let db_path = dir.join("social.sqlite");
        let db_url = sqlite_url(&db_path)?;

        // Bind our own listeners first, and check LiveKit's ports are free, before starting
        // anything: a port in use is the most likely failure, and says so clearly.
        let social_listener = listen(
            options.social_port,
            "social service",
            "--social-port/PCHAT_SOCIAL_PORT",
        )
        .await?;
        let gatekeeper_listener = listen(
            options.gatekeeper_port,
            "gatekeeper",
            "--gatekeeper-port/PCHAT_GATEKEEPER_PORT",
        )
        .await?;
        let social_port = local_port(&social_listener, "social service")?;
        let gatekeeper_port = local_port(&gatekeeper_listener, "gatekeeper")?;
        let livekit_port = free_tcp(
            options.livekit_port,
            "LiveKit",
            "--livekit-port/PCHAT_LIVEKIT_PORT",
        )?;
        let livekit_udp_port = free_udp(
            options.livekit_udp_port,
            "LiveKit UDP",
            "--livekit-udp-port/PCHAT_LIVEKIT_UDP_PORT",
        )?;
        let endpoints = Endpoints {
            gatekeeper: format!("http://127.0.0.1:{gatekeeper_port}"),
            social: format!("ws://127.0.0.1:{social_port}/"),
            social_http: format!("http://127.0.0.1:{social_port}"),
            livekit: format!("ws://127.0.0.1:{livekit_port}"),
            livekit_udp_port,
        };

        let api_secret = hex::encode(rand::random::<[u8; 32]>());
        let auth_token = hex::encode(rand::random::<[u8; 16]>());

        let (shutdown, _) = watch::channel(false);
        let (fail_tx, failures) = mpsc::unbounded_channel();
        let mut system = LocalSystem {
            endpoints: endpoints.clone(),
            data_dir: dir.clone(),
            shutdown,
            tasks: Vec::new(),
            failures,
            livekit_pid: None,
        };

        // LiveKit.
        let config_path = dir.join("livekit.yaml");
        let log_path = dir.join("livekit.log");
        let started = async {
            write_private_file(
                &config_path,
                &livekit_config(livekit_port, livekit_udp_port, &api_secret),
            )
            .map_err(|source| UpError::DataDir {
                path: config_path.clone(),
                source,
            })?;
            let log = std::fs::File::create(&log_path).map_err(|source| UpError::DataDir {
                path: log_path.clone(),
                source,
            })?;
            let log_err = log.try_clone().map_err(|source| UpError::DataDir {
                path: log_path.clone(),
                source,
            })?;
            let child = tokio::process::Command::new(&bin)
                .arg("--config")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| UpError::Spawn {
                    bin: bin.clone(),
                    source,
                })?;
            system.livekit_pid = child.id();
            system.tasks.push((
                "livekit-server",
                tokio::spawn(watch_livekit(
                    child,
                    dir.join("livekit.pid"),
                    system.shutdown.subscribe(),
                    fail_tx.clone(),
                )),
            ));

            // The social service.
            let mut social_config = social::SocialConfig::new(&db_url);
            social_config.port = social_port;
            social_config.gatekeeper_url = Some(endpoints.gatekeeper.clone());
            social_config.gatekeeper_token = auth_token.clone();
            let app = social::App::build(&social_config)
                .await
                .map_err(|e| UpError::Social(e.to_string()))?;
            let stop = system.shutdown_future();
            let tx = fail_tx.clone();
            system.tasks.push((
                "social service",
                tokio::spawn(async move {
                    let result = social::serve(social_listener, app, stop).await;
                    report_end(&tx, "the social service", result);
                }),
            ));

            // The gatekeeper.
            let mut gk_config = gatekeeper::GatekeeperConfig::new(
                &endpoints.livekit,
                API_KEY,
                &api_secret,
                &auth_token,
            );
            gk_config.port = gatekeeper_port;
            gk_config.social_service_url = Some(endpoints.social_http.clone());
            let state = gatekeeper::Builder::new(gk_config)
                .build()
                .map_err(|e| UpError::Gatekeeper(e.to_string()))?;
            let stop = system.shutdown_future();
            let tx = fail_tx.clone();
            system.tasks.push((
                "gatekeeper",
                tokio::spawn(async move {
                    let result = gatekeeper::serve(gatekeeper_listener, state, stop).await;
                    report_end(&tx, "the gatekeeper", result);
                }),
            ));

            system.wait_ready(options.ready_timeout, &log_path).await
        };
        let outcome = tokio::select! {
            outcome = started => outcome,
            () = cancel => Err(UpError::Cancelled),
        };
        match outcome {
            Ok(()) => Ok(system),
            Err(e) => {
                system.stop().await;
                Err(e)
            }
        }
    }

    /// Where everything answers.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The data directory in use.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The livekit-server child's process id.
    #[allow(dead_code)] // for `pchat demo` and tests of the player commands
    pub fn livekit_pid(&self) -> Option<u32> {
        self.livekit_pid
    }

    /// Resolves when a part stops by itself (livekit-server exits, a service's server fails),
    /// with what happened.
    pub async fn failed(&mut self) -> String {
        match self.failures.recv().await {
            Some(Failure::LiveKit(status)) => format!("livekit-server exited ({status})"),
            Some(Failure::Service(message)) => message,
            None => "every part of the local system has stopped".into(),
        }
    }

    /// Stops both services (requests in progress get up to 10 s) and kills livekit-server,
    /// waiting for each (at most 15 s in all).
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        for (name, mut task) in std::mem::take(&mut self.tasks) {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(part = name, "did not stop in time; aborted");
                    // Aborting drops the child, and kill_on_drop kills it.
                    task.abort();
                }
            }
        }
    }

    fn shutdown_future(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            // An error means the system was dropped: stop too.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    async fn wait_ready(&mut self, limit: Duration, log: &Path) -> Result<(), UpError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .no_proxy()
            .build()
            .map_err(|e| UpError::NotReady {
                what: "the HTTP client",
                secs: 0,
                hint: format!(": {e}"),
            })?;
        let checks: [(&'static str, String, String); 3] = [
            (
                "livekit-server",
                format!("http://127.0.0.1:{}/", port_of(&self.endpoints.livekit)),
                format!("; see its log {}", log.display()),
            ),
            (
                "the social service",
                format!("{}/ping", self.endpoints.social_http),
                String::new(),
            ),
            (
                "the gatekeeper",
                format!("{}/ping", self.endpoints.gatekeeper),
                String::new(),
            ),
        ];
        let deadline = tokio::time::Instant::now() + limit;
        for (what, url, hint) in checks {
            loop {
                if let Ok(failure) = self.failures.try_recv() {
                    return Err(match failure {
                        Failure::LiveKit(status) => UpError::LiveKitExited {
                            status,
                            log: log.to_owned(),
                        },
                        Failure::Service(message) => UpError::PartFailed(message),
                    });
                }
                if let Ok(resp) = client.get(&url).send().await
                    && resp.status().is_success()
                {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(UpError::NotReady {
                        what,
                        secs: limit.as_secs(),
                        hint,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

fn port_of(url: &str) -> &str {
    url.rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
}

/// A part that stopped by itself.
enum Failure {
    /// livekit-server exited, with this status.
    LiveKit(String),
    /// A service's server ended: what happened.
    Service(String),
}

fn report_end(tx: &mpsc::UnboundedSender<Failure>, what: &str, result: std::io::Result<()>) {
    let message = match result {
        Ok(()) => format!("{what} stopped"),
        Err(e) => format!("{what} failed: {e}"),
    };
    let _ = tx.send(Failure::Service(message));
}

/// Owns the livekit-server child: kills it on shutdown (or when the system is dropped), reports
/// an exit of its own.
async fn watch_livekit(
    mut child: tokio::process::Child,
    pid_path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
    failures: mpsc::UnboundedSender<Failure>,
) {
    if let Some(pid) = child.id()
        && let Err(e) = std::fs::write(&pid_path, format!("{pid}\n"))
    {
        tracing::warn!(error = %e, path = %pid_path.display(), "cannot write livekit-server's pid");
    }
    tokio::select! {
        status = child.wait() => {
            let status = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = failures.send(Failure::LiveKit(status));
        }
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            // SIGKILL: LiveKit keeps nothing here worth a graceful drain, and its drain waits
            // for participants to leave.
            if let Err(e) = child.kill().await {
                tracing::warn!(error = %e, "cannot kill livekit-server");
            }
        }
    }
    // Gone and reaped: the pid file no longer names it.
    let _ = std::fs::remove_file(&pid_path);
}

async fn listen(
    port: u16,
    what: &'static str,
    flag: &'static str,
) -> Result<tokio::net::TcpListener, UpError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| bind_error(port, what, flag, source))
}

fn local_port(listener: &tokio::net::TcpListener, what: &'static str) -> Result<u16, UpError> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| UpError::Listen {
            port: 0,
            what,
            source,
        })
}

/// Checks `port` is free for LiveKit (0: picks one), by binding it and letting it go again.
fn free_tcp(port: u16, what: &'static str, flag: &'static str) -> Result<u16, UpError> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| bind_error(port, what, flag, source))
}

fn free_udp(port: u16, what: &'static str, flag: &'static str) -> Result<u16, UpError> {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|source| bind_error(port, what, flag, source))
}

fn bind_error(
    port: u16,
    what: &'static str,
    flag: &'static str,
    source: std::io::Error,
) -> UpError {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        UpError::PortInUse { port, what, flag }
    } else {
        UpError::Listen { port, what, source }
    }
}

/// The livekit-server named by `dir/livekit.pid` when it still runs with this directory's
/// configuration (a `pchat up` still running, or one killed with SIGKILL). Linux only (/proc);
/// elsewhere, or when the process is another one now, `None`.
fn livekit_left_running(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("livekit.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let config = dir.join("livekit.yaml");
    let config = config.to_str()?;
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == config.as_bytes())
        .then_some(pid)
}

fn create_private_dir(dir: &Path) -> Result<(), UpError> {
    let err = |source| UpError::DataDir {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(err)?;
    if !dir.is_dir() {
        return Err(err(std::io::Error::other("not a directory")));
    }
    Ok(())
}

fn write_private_file(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // An older file keeps its mode through `open`: set it again.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(content.as_bytes())
}

/// `sqlite://<path>` with the characters sqlx would read otherwise (`%`, `?`, `#`, `=`, `:`)
/// percent-encoded; sqlx decodes the path.
fn sqlite_url(path: &Path) -> Result<String, UpError> {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    const SET: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#').add(b'=').add(b':');
    let text = path
        .to_str()
        .ok_or_else(|| UpError::DataDirNotUtf8(path.to_owned()))?;
    Ok(format!("sqlite://{}", utf8_percent_encode(text, SET)))
}

/// LiveKit's configuration: loopback only, one UDP port, no TURN, rooms created on demand.
fn livekit_config(port: u16, udp_port: u16, api_secret: &str) -> String {
    format!(
        "port: {port}\n\
         bind_addresses: [127.0.0.1]\n\
         rtc:\n  udp_port: {udp_port}\n  tcp_port: 0\n  use_external_ip: false\n  \
         enable_loopback_candidate: true\n  ips:\n    includes: [127.0.0.1/32]\n\
         room:\n  auto_create: true\n\
         turn:\n  enabled: false\n\
         keys:\n  {API_KEY}: {api_secret}\n"
    )
}

/// Logs of the in-process services on stderr: warnings and errors unless `RUST_LOG` says
/// otherwise (the endpoints go to stdout).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Ctrl-C or SIGTERM, listened for from the moment this returns (so a signal during start-up
/// is not the default action, which would leave livekit-server running).
fn stop_signals() -> Result<impl Future<Output = ()>, UpError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let register = |kind| signal(kind).map_err(|source| UpError::Signals { source });
        let mut term = register(SignalKind::terminate())?;
        let mut int = register(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// `pchat up`: starts the system, prints where it is and how to chat, and stops it on Ctrl-C
/// or SIGTERM (exit 0, also during start-up), or when a part fails (an error).
pub async fn run(args: UpArgs) -> Result<(), UpError> {
    let signal = stop_signals()?;
    tokio::pin!(signal);
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let options = Options {
        livekit_server_bin: args.livekit_server_bin,
        gatekeeper_port: args.gatekeeper_port,
        social_port: args.social_port,
        livekit_port: args.livekit_port,
        livekit_udp_port: args.livekit_udp_port,
        ..Options::new(data_dir)
    };
    let mut system = match LocalSystem::start_unless(options, &mut signal).await {
        Ok(system) => system,
        Err(UpError::Cancelled) => {
            eprintln!("stopped during start-up");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    print!("{}", banner(&system));
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let failure = tokio::select! {
        () = &mut signal => None,
        message = system.failed() => Some(message),
    };
    eprintln!("stopping…");
    system.stop().await;
    match failure {
        None => Ok(()),
        Some(message) => Err(UpError::PartFailed(message)),
    }
}

fn banner(system: &LocalSystem) -> String {
    let e = system.endpoints();
    let dir = system.data_dir().display();
    let pchat = std::env::args().next().unwrap_or_else(|| "pchat".into());
    let defaults = e.gatekeeper == crate::args::DEFAULT_GATEKEEPER_URL
        && e.social == crate::args::DEFAULT_SOCIAL_URL;
    let env = if defaults {
        "  (these are the defaults of every player command)\n".to_owned()
    } else {
        format!(
            "  For the player commands: export PCHAT_GATEKEEPER_URL={} PCHAT_SOCIAL_URL={}\n",
            e.gatekeeper, e.social
        )
    };
    format!(
        "private chat is running (data and livekit.log in {dir}):\n\
         \x20 gatekeeper      {gk}\n\
         \x20 social service  {social}\n\
         \x20 livekit-server  {lk}  (UDP {udp})\n\
         {env}\n\
         Chat: make an identity for each player, then run one chat per terminal:\n\
         \x20 {pchat} identity new --out alice.key\n\
         \x20 {pchat} identity new --out bob.key\n\
         \x20 {pchat} chat --identity alice.key\n\
         \x20 {pchat} chat --identity bob.key      (then type /to <alice's address>)\n\
         \n\
         Press Ctrl-C to stop.\n",
        gk = e.gatekeeper,
        social = e.social,
        lk = e.livekit,
        udp = e.livekit_udp_port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_keep_odd_paths_intact() {
        let url = sqlite_url(Path::new("/tmp/a b/x?y#z=1:memory:/s.sqlite")).expect("utf-8");
        assert_eq!(url, "sqlite:///tmp/a b/x%3Fy%23z%3D1%3Amemory%3A/s.sqlite");
    }

    #[test]
    fn an_explicit_missing_binary_is_named() {
        let e = find_livekit_server(Some(Path::new("/nonexistent/livekit-server")))
            .expect_err("missing");
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/livekit-server") && msg.contains("scripts/setup"),
            "{msg}"
        );
    }
}
