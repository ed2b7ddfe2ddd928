//! The official clients (`@dcl/rpc`, `@dcl/protocol`, `@dcl/crypto`) against our social
//! service, on SQLite and on PostgreSQL: handshake, procedures, pushed updates, a cancelled
//! stream, documented errors (see `interop/social-client.mjs` for every check).

use std::sync::Arc;
use std::time::Duration;

use livekit_testkit::node;
use social::{App, SocialConfig};
use sqlx_free_pg::fresh_postgres_url;

mod sqlx_free_pg {
    /// A fresh database on the test server (`PCHAT_TEST_DATABASE_URL`), created with psql so
    /// that this test needs no SQL client crate of its own.
    pub fn fresh_postgres_url() -> String {
        let admin = std::env::var("PCHAT_TEST_DATABASE_URL")
            .expect("PCHAT_TEST_DATABASE_URL is not set: run scripts/setup and source .tools/env");
        let name = format!("pchat_i_{:016x}", rand_u64());
        let status = std::process::Command::new("psql")
            .arg(&admin)
            .arg("-qc")
            .arg(format!("CREATE DATABASE {name}"))
            .status()
            .expect("psql");
        assert!(status.success(), "cannot create a test database");
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .expect("url with a database");
        format!("{base}/{name}")
    }

    fn rand_u64() -> u64 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        (t as u64) ^ (std::process::id() as u64).rotate_left(32)
    }
}

async fn run_scenario(database_url: &str) {
    let app: Arc<App> = App::build(&SocialConfig::new(database_url))
        .await
        .expect("social service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let server = tokio::spawn(social::serve(listener, app, std::future::pending()));
    let out = node::run("social-client.mjs", &[&url], Duration::from_secs(90)).await;
    server.abort();
    let out = out.unwrap_or_else(|e| panic!("scenario failed: {e}"));
    assert!(
        out.lines().any(|l| l.contains("\"done\":true")),
        "scenario did not finish:\n{out}"
    );
    let failed: Vec<&str> = out.lines().filter(|l| l.contains("\"ok\":false")).collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_against_sqlite() {
    let dir = tempfile::tempdir().expect("tmp");
    run_scenario(&format!(
        "sqlite://{}",
        dir.path().join("social.sqlite").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_against_postgres() {
    let url = fresh_postgres_url();
    run_scenario(&url).await;
    // Drop the test database (best effort).
    if let (Ok(admin), Some((_, name))) = (
        std::env::var("PCHAT_TEST_DATABASE_URL"),
        url.rsplit_once('/'),
    ) {
        let _ = std::process::Command::new("psql")
            .arg(&admin)
            .arg("-qc")
            .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .status();
    }
}
