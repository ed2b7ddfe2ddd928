//! The social service sheds slow and idle HTTP clients (header-read timeout, idle timeout,
//! connection cap) so `/ping` keeps answering, while an upgraded WebSocket outlives the HTTP
//! idle timeout; `/metrics` is prometheus-client's exposition with the same names as before.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Client;
use http_serve::testkit;
use social::{App, SocialConfig};
use social_proto::v2;

async fn start(header: u64, idle: u64, cap: u64) -> (SocketAddr, Arc<App>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = SocialConfig::new(&format!(
        "sqlite://{}",
        dir.path().join("s.sqlite").display()
    ));
    config.http.header_read_timeout_secs = header;
    config.http.idle_timeout_secs = idle;
    config.http.max_connections = cap;
    let app = App::build_with(&config, Arc::new(social::gatekeeper::NoGatekeeper))
        .await
        .expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(social::serve(listener, app.clone(), std::future::pending()));
    (addr, app, dir)
}

#[tokio::test]
async fn a_slow_header_sender_is_disconnected_after_the_header_timeout() {
    let (addr, _app, _dir) = start(2, 30, 100).await;
    let took = testkit::slow_header_sender(addr, Duration::from_secs(1), Duration::from_secs(8))
        .await
        .expect("connect")
        .expect("the server closes a client that sends a header byte a second");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (status, body) = testkit::get(addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping");
    assert_eq!((status, body.as_str()), (200, "pong"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (addr, _app, _dir) = start(30, 1, 100).await;
    let (status, mut conn) = testkit::keep_alive_get(addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping");
    assert_eq!(status, 200);
    let took = testkit::closed_within(&mut conn, Duration::from_secs(6))
        .await
        .expect("the server closes an idle keep-alive connection");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn ping_answers_with_more_idle_sockets_than_the_cap() {
    // Timeouts far away: the cap alone has to keep room for new clients.
    let (addr, app, _dir) = start(60, 60, 50).await;
    let mut idle = testkit::idle_sockets(addr, 200).await.expect("connect");
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = testkit::get(addr, "/ping", Duration::from_secs(2))
            .await
            .expect("ping answers while 200 idle sockets are open");
        assert_eq!((status, body.as_str()), (200, "pong"));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let closed = testkit::count_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(
        closed >= 150,
        "only {closed} of 200 idle sockets were closed"
    );
    assert!(app.metrics.serve.connections.get() <= 50);
}

#[tokio::test]
async fn a_websocket_outlives_the_http_idle_and_header_timeouts_and_the_cap() {
    let (addr, app, _dir) = start(1, 1, 2).await;
    let url = format!("ws://{addr}/");
    let owner = authchain::Wallet::random();
    let mut c = Client::connect(&url, &owner).await;
    let mut other = Client::connect(&url, &authchain::Wallet::random()).await;
    // Both upgraded connections have left the HTTP cap of 2: plain HTTP still gets in.
    let (status, _) = testkit::get(addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping");
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settings: Result<v2::GetSocialSettingsResponse, _> = c.call("GetSocialSettings", &()).await;
    assert!(settings.is_ok(), "{settings:?}");
    let settings: Result<v2::GetSocialSettingsResponse, _> =
        other.call("GetSocialSettings", &()).await;
    assert!(settings.is_ok(), "{settings:?}");
    assert_eq!(app.rpc.connections(), 2);
}

#[tokio::test]
async fn metrics_keep_their_names_in_prometheus_client_text() {
    let (addr, _app, _dir) = start(10, 5, 100).await;
    let (status, _) = testkit::get(addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping");
    assert_eq!(status, 200);
    let (status, text) = testkit::get(addr, "/metrics", Duration::from_secs(2))
        .await
        .expect("metrics");
    assert_eq!(status, 200);
    for line in [
        "# TYPE social_ws_connections gauge",
        "social_ws_connections 0",
        "# TYPE social_rpc_streams gauge",
        "social_rpc_streams 0",
        "# TYPE social_uptime_seconds gauge",
        "# TYPE social_cache_hits counter",
        "social_cache_hits_total 0",
        "# TYPE social_cache_misses counter",
        "social_cache_misses_total 0",
        "# TYPE social_updates_dropped counter",
        "social_updates_dropped_total 0",
        "# TYPE social_http_connections gauge",
        "social_http_connections_accepted_total",
        "# EOF",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
