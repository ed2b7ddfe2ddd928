//! `pchat up`, the binary: starts livekit-server, the social service and the gatekeeper on the
//! ports it is given, a fresh wallet gets a token from it, and SIGTERM stops everything (the
//! livekit-server child included). A missing livekit-server and a port in use are one clear line
//! and a non-zero exit.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use testkit::{free_tcp_port, free_udp_port, livekit_binary};
use tokio::io::{AsyncBufReadExt, BufReader};

const LIMIT: Duration = Duration::from_secs(60);

fn pchat() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"));
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs a short-lived `pchat` command: (exit success, stdout, stderr).
async fn output(cmd: &mut tokio::process::Command) -> (bool, String, String) {
    let out = tokio::time::timeout(LIMIT, cmd.output())
        .await
        .expect("the command ends in time")
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The pids of `parent`'s children whose command name is `name` (from /proc).
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// How a running `pchat up` is ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// `kill -TERM`/`-INT` to `pchat up`: exit 0, nothing left behind.
    Signal(&'static str),
    /// livekit-server dies (SIGKILL): `pchat up` says so, stops the rest and exits non-zero.
    LiveKitDies,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_tokens_and_stops_everything_on_sigterm() {
    up_then(End::Signal("-TERM")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stops_everything_on_ctrl_c() {
    up_then(End::Signal("-INT")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stops_and_fails_when_livekit_server_dies() {
    up_then(End::LiveKitDies).await;
}

async fn up_then(end: End) {
    let lk_bin = livekit_binary().expect("livekit-server (run scripts/setup)");
    let data = tempfile::tempdir().expect("tmp");
    let data_dir = data.path().join("nested/up");
    let (gk_port, social_port, lk_port, lk_udp) = (
        free_tcp_port().expect("port"),
        free_tcp_port().expect("port"),
        free_tcp_port().expect("port"),
        free_udp_port().expect("port"),
    );
    let mut up = pchat()
        .arg("up")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--gatekeeper-port", &gk_port.to_string()])
        .args(["--social-port", &social_port.to_string()])
        .env("PCHAT_LIVEKIT_PORT", lk_port.to_string())
        .env("PCHAT_LIVEKIT_UDP_PORT", lk_udp.to_string())
        .env("LIVEKIT_SERVER_BIN", &lk_bin)
        .spawn()
        .expect("pchat up");
    let mut stderr = up.stderr.take().expect("stderr");
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let pid = up.id().expect("pid");
    let mut lines = BufReader::new(up.stdout.take().expect("stdout")).lines();
    let mut banner = String::new();
    let started = Instant::now();
    loop {
        let left = LIMIT.saturating_sub(started.elapsed());
        let line = tokio::time::timeout(left, lines.next_line())
            .await
            .expect("pchat up prints its endpoints in time")
            .expect("read")
            .unwrap_or_else(|| panic!("pchat up ended early:\n{banner}"));
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let gatekeeper = format!("http://127.0.0.1:{gk_port}");
    for expected in [
        gatekeeper.clone(),
        format!("ws://127.0.0.1:{social_port}/"),
        format!("ws://127.0.0.1:{lk_port}"),
        format!("PCHAT_GATEKEEPER_URL={gatekeeper}"),
    ] {
        assert!(
            banner.contains(&expected),
            "{expected} missing in:\n{banner}"
        );
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    for url in [
        format!("{gatekeeper}/ping"),
        format!("http://127.0.0.1:{social_port}/ping"),
        format!("http://127.0.0.1:{lk_port}/"),
    ] {
        let resp = http.get(&url).send().await.expect(&url);
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
    }

    // A fresh wallet gets a token from this gatekeeper, for this LiveKit.
    let (ok, out, err) = output(pchat().args(["token", "--gatekeeper", &gatekeeper])).await;
    assert!(ok, "pchat token failed:\n{out}\n{err}");
    assert!(out.contains("status:  200"), "{out}");
    assert!(
        out.contains(&format!("livekit:ws://127.0.0.1:{lk_port}?access_token=")),
        "{out}"
    );

    // Its files: the database, LiveKit's configuration (secret: 0600) and log.
    assert!(data_dir.join("social.sqlite").is_file());
    assert!(data_dir.join("livekit.log").is_file());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&data_dir.join("livekit.yaml")), 0o600);
        assert_eq!(mode(&data_dir), 0o700);
    }

    let livekit = children_named(pid, "livekit-server");
    assert_eq!(livekit.len(), 1, "one livekit-server child: {livekit:?}");

    let (signal, target) = match end {
        End::Signal(signal) => (signal, pid),
        End::LiveKitDies => ("-KILL", livekit[0]),
    };
    let killed = std::process::Command::new("kill")
        .args([signal, &target.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), up.wait())
        .await
        .unwrap_or_else(|_| panic!("pchat up exits within 10 s of {end:?}"))
        .expect("wait");
    let stderr = tokio::time::timeout(Duration::from_secs(5), stderr_text)
        .await
        .expect("stderr closes")
        .expect("stderr");
    match end {
        End::Signal(_) => assert!(status.success(), "exit status {status}; stderr:\n{stderr}"),
        End::LiveKitDies => {
            assert!(!status.success());
            let last = stderr.lines().last().unwrap_or_default();
            assert!(
                last.starts_with("error: livekit-server exited"),
                "stderr:\n{stderr}"
            );
        }
    }
    let gone = Instant::now();
    while alive(livekit[0]) {
        assert!(
            gone.elapsed() < Duration::from_secs(2),
            "livekit-server {} outlived pchat up",
            livekit[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for port in [gk_port, social_port, lk_port] {
        std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("port {port} still held: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_livekit_server_is_one_line_naming_the_install_command() {
    let data = tempfile::tempdir().expect("tmp");
    let (ok, out, err) = output(
        pchat()
            .arg("up")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--gatekeeper-port", "0", "--social-port", "0"])
            .args(["--livekit-port", "0", "--livekit-udp-port", "0"])
            .env("LIVEKIT_SERVER_BIN", "/nonexistent/livekit-server"),
    )
    .await;
    assert!(!ok);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("/nonexistent/livekit-server"), "{err}");
    assert!(err.contains("scripts/setup"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_named() {
    let lk_bin = livekit_binary().expect("livekit-server (run scripts/setup)");
    let data = tempfile::tempdir().expect("tmp");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let udp_taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let udp_port = udp_taken.local_addr().expect("addr").port();
    for (flag, port, what) in [
        ("--gatekeeper-port", port, "gatekeeper"),
        ("--social-port", port, "social service"),
        ("--livekit-port", port, "LiveKit"),
        ("--livekit-udp-port", udp_port, "LiveKit UDP"),
    ] {
        let mut cmd = pchat();
        cmd.arg("up").arg("--data-dir").arg(data.path());
        for other in [
            "--gatekeeper-port",
            "--social-port",
            "--livekit-port",
            "--livekit-udp-port",
        ] {
            let value = if other == flag { port } else { 0 };
            cmd.args([other, &value.to_string()]);
        }
        let (ok, _, err) = output(cmd.env("LIVEKIT_SERVER_BIN", &lk_bin)).await;
        assert!(!ok, "{flag}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("port {port} ({what}) is already in use")),
            "{flag}: {err}"
        );
        assert!(err.contains(flag), "{err}");
    }
    drop((taken, udp_taken));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_data_dir_is_in_the_users_data_directory() {
    let lk_bin = livekit_binary().expect("livekit-server (run scripts/setup)");
    let home = tempfile::tempdir().expect("tmp");
    // Stop at the first check after the directory is made: a gatekeeper port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let (ok, _, err) = output(
        pchat()
            .args(["up", "--gatekeeper-port", &port.to_string()])
            .args([
                "--social-port",
                "0",
                "--livekit-port",
                "0",
                "--livekit-udp-port",
                "0",
            ])
            .env("HOME", home.path())
            .env("LIVEKIT_SERVER_BIN", &lk_bin),
    )
    .await;
    assert!(!ok);
    assert!(err.contains("already in use"), "{err}");
    let dir = home.path().join(".local/share/pchat/up");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&dir).expect("the default data directory was made");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_start_up_leaves_nothing_running() {
    let lk_bin = livekit_binary().expect("livekit-server (run scripts/setup)");
    let data = tempfile::tempdir().expect("tmp");
    let data_dir = data.path().join("starting");
    let mut up = pchat()
        .arg("up")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--gatekeeper-port", "0", "--social-port", "0"])
        .args(["--livekit-port", "0", "--livekit-udp-port", "0"])
        .env("LIVEKIT_SERVER_BIN", &lk_bin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pchat up");
    let pid = up.id().expect("pid");
    // As soon as livekit-server is spawned (before it answers), its pid is in the data dir.
    let started = Instant::now();
    let lk_pid = loop {
        if let Some(pid) = std::fs::read_to_string(data_dir.join("livekit.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(started.elapsed() < LIMIT, "pchat up never started LiveKit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), up.wait())
        .await
        .expect("pchat up exits within 10 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
    // Killed and reaped (a zombie would still be in /proc).
    let gone = Instant::now();
    while alive(lk_pid) {
        assert!(
            gone.elapsed() < Duration::from_secs(3),
            "livekit-server {lk_pid} outlived pchat up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!data_dir.join("livekit.pid").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_server_left_running_in_the_data_dir_is_named() {
    let lk_bin = livekit_binary().expect("livekit-server (run scripts/setup)");
    let data = tempfile::tempdir().expect("tmp");
    // Stands in for the livekit-server of a `pchat up` killed with SIGKILL: a process whose
    // arguments name this directory's livekit.yaml, and its pid in livekit.pid.
    let config = data.path().join("livekit.yaml");
    let mut leftover = tokio::process::Command::new("sh")
        .args(["-c", "sleep 30; exit 0", "livekit-server", "--config"])
        .arg(&config)
        .kill_on_drop(true)
        .spawn()
        .expect("sh");
    let pid = leftover.id().expect("pid");
    std::fs::write(data.path().join("livekit.pid"), format!("{pid}\n")).expect("pid file");
    let (ok, _, err) = output(
        pchat()
            .arg("up")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--gatekeeper-port", "0", "--social-port", "0"])
            .args(["--livekit-port", "0", "--livekit-udp-port", "0"])
            .env("LIVEKIT_SERVER_BIN", &lk_bin),
    )
    .await;
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("kill {pid}")), "{err}");
    let _ = leftover.kill().await;

    // Once it is gone, a stale pid file is no obstacle.
    let mut up = pchat()
        .arg("up")
        .arg("--data-dir")
        .arg(data.path())
        .args(["--gatekeeper-port", "0", "--social-port", "0"])
        .args(["--livekit-port", "0", "--livekit-udp-port", "0"])
        .env("LIVEKIT_SERVER_BIN", &lk_bin)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pchat up");
    let mut lines = BufReader::new(up.stdout.take().expect("stdout")).lines();
    let started = Instant::now();
    loop {
        let left = LIMIT.saturating_sub(started.elapsed());
        let line = tokio::time::timeout(left, lines.next_line())
            .await
            .expect("pchat up starts in time")
            .expect("read")
            .expect("pchat up ended early");
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let up_pid = up.id().expect("pid");
    std::process::Command::new("kill")
        .args(["-TERM", &up_pid.to_string()])
        .status()
        .expect("kill");
    let status = tokio::time::timeout(Duration::from_secs(10), up.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_server_that_exits_at_once_is_reported_with_its_log() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().expect("tmp");
    let fake = data.path().join("fake-livekit-server");
    std::fs::write(&fake, "#!/bin/sh\necho 'cannot start: boom' >&2\nexit 3\n").expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data_dir = data.path().join("up");
    let (ok, out, err) = output(
        pchat()
            .arg("up")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--gatekeeper-port", "0", "--social-port", "0"])
            .args(["--livekit-port", "0", "--livekit-udp-port", "0"])
            .env("LIVEKIT_SERVER_BIN", &fake),
    )
    .await;
    assert!(!ok);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    let log = data_dir.join("livekit.log");
    assert!(
        err.contains("livekit-server exited before answering (exit status: 3)")
            && err.contains(&log.display().to_string()),
        "{err}"
    );
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("cannot start: boom"), "{text}");
}
