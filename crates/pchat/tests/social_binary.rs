//! `pchat social`, the binary, configured only through its environment variables, passes the
//! official clients' scenario (`interop/social-client.mjs`: @dcl/rpc + @dcl/protocol +
//! @dcl/crypto) on SQLite (the default: a file in the working directory) and on PostgreSQL; and
//! `--help` lists every variable with its default.

use std::process::Stdio;
use std::time::{Duration, Instant};

use testkit::{FreshPostgres, free_tcp_port, node};

const LIMIT: Duration = Duration::from_secs(90);

/// Starts `pchat social` in `dir` with `envs` (and nothing else) and runs the scenario.
async fn scenario_against_binary(dir: &std::path::Path, envs: &[(&str, String)]) {
    let port = free_tcp_port().expect("port");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"));
    cmd.arg("social")
        .current_dir(dir)
        .env_clear()
        .env("HTTP_SERVER_HOST", "127.0.0.1")
        .env("HTTP_SERVER_PORT", port.to_string());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let _social = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("pchat social");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{base}/ping")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pchat social did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = node::run(
        "social-client.mjs",
        &[&format!("ws://127.0.0.1:{port}/")],
        LIMIT,
    )
    .await
    .unwrap_or_else(|e| panic!("scenario failed: {e}"));
    let failed: Vec<&str> = out.lines().filter(|l| l.contains("\"ok\":false")).collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
    assert!(
        out.lines().any(|l| l.contains("\"done\":true")),
        "scenario did not finish:\n{out}"
    );
    // The gatekeeper's lookup on the same port.
    let v: serde_json::Value = reqwest::get(format!(
        "{base}/v1/users/0x0000000000000000000000000000000000000001/privacy-settings"
    ))
    .await
    .expect("GET")
    .json()
    .await
    .expect("JSON");
    assert_eq!(v["private_messages_privacy"], "all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_against_the_binary_on_its_default_sqlite_file() {
    let dir = tempfile::tempdir().expect("tmp");
    scenario_against_binary(dir.path(), &[]).await;
    assert!(
        dir.path().join("social.sqlite").exists(),
        "the data is kept in social.sqlite in the working directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_against_the_binary_on_postgres() {
    let db = FreshPostgres::create("b").expect("a fresh PostgreSQL database");
    let dir = tempfile::tempdir().expect("tmp");
    scenario_against_binary(dir.path(), &[("DATABASE_URL", db.url.clone())]).await;
    assert!(
        !dir.path().join("social.sqlite").exists(),
        "with DATABASE_URL no SQLite file is made"
    );
}

#[test]
fn help_lists_every_variable_with_its_default() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
        .args(["social", "--help"])
        .env_clear()
        .output()
        .expect("pchat social --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "HTTP_SERVER_HOST",
        "HTTP_SERVER_PORT",
        "DATABASE_URL",
        "REDIS_URL",
        "COMMS_GATEKEEPER_URL",
        "COMMS_GATEKEEPER_AUTH_TOKEN",
        "CATALYST_LAMBDAS_URL",
        "WS_AUTH_TIMEOUT_SECONDS",
        "SOCIAL_CACHE_TTL_SECONDS",
        "SOCIAL_PRESENCE_TTL_SECONDS",
        "FRIENDSHIP_RATE_LIMIT_WINDOW_SECONDS",
        "FRIENDSHIP_RATE_LIMIT_PER_ACTOR",
        "FRIENDSHIP_RATE_LIMIT_PER_PAIR",
    ] {
        assert!(help.contains(var), "--help does not mention {var}:\n{help}");
    }
    for default in [
        "[default: 127.0.0.1]",
        "[default: 3001]",
        "[default: sqlite://social.sqlite]",
        "[default: 10]",
    ] {
        assert!(help.contains(default), "--help lacks {default}:\n{help}");
    }
}
