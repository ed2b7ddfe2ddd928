//! The official clients (`@dcl/rpc`, `@dcl/protocol`, `@dcl/crypto`) against our social
//! service, on SQLite and on PostgreSQL: handshake, procedures, pushed updates, a cancelled
//! stream, documented errors (see `interop/social-client.mjs` for every check).

use std::sync::Arc;
use std::time::Duration;

use social::{App, SocialConfig};
use testkit::{FreshPostgres, node};

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
    let db = FreshPostgres::create("i").expect("a fresh PostgreSQL database");
    run_scenario(&db.url).await;
}
