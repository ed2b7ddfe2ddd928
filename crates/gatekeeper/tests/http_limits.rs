//! The gatekeeper sheds slow and idle clients (header-read timeout, idle timeout, connection
//! cap) so `/ping` keeps answering, and its metrics cannot be inflated by clients (extension
//! methods and unmatched paths fold into one label value each).

mod common;

use std::time::{Duration, Instant};

use common::*;
use gatekeeper::Builder;
use http_serve::testkit;

async fn gatekeeper(header: u64, idle: u64, cap: u64) -> TestGatekeeper {
    let mut c = config(
        "ws://127.0.0.1:1",
        "APIfake",
        "fake-secret-that-is-long-enough-0123",
    );
    c.http.header_read_timeout_secs = header;
    c.http.idle_timeout_secs = idle;
    c.http.max_connections = cap;
    start(Builder::new(c)).await
}

#[tokio::test]
async fn a_slow_header_sender_is_disconnected_after_the_header_timeout() {
    let gk = gatekeeper(2, 30, 100).await;
    let took = testkit::slow_header_sender(gk.addr, Duration::from_secs(1), Duration::from_secs(8))
        .await
        .expect("connect")
        .expect("the server closes a client that sends a header byte a second");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (status, body) = testkit::get(gk.addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping");
    assert_eq!((status, body.as_str()), (200, "pong"));
    gk.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let gk = gatekeeper(30, 1, 100).await;
    let (status, mut conn) = testkit::keep_alive_get(gk.addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping");
    assert_eq!(status, 200);
    let took = testkit::closed_within(&mut conn, Duration::from_secs(6))
        .await
        .expect("the server closes an idle keep-alive connection");
    assert!(took < Duration::from_secs(3), "{took:?}");
    gk.shutdown().await;
}

#[tokio::test]
async fn ping_answers_with_more_idle_sockets_than_the_cap() {
    // Timeouts far away: the cap alone has to keep room for new clients.
    let gk = gatekeeper(60, 60, 50).await;
    let mut idle = testkit::idle_sockets(gk.addr, 200).await.expect("connect");
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = testkit::get(gk.addr, "/ping", Duration::from_secs(2))
            .await
            .expect("ping answers while 200 idle sockets are open");
        assert_eq!((status, body.as_str()), (200, "pong"));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // The server holds at most the cap: the longest-waiting sockets were closed.
    let closed = testkit::count_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(
        closed >= 150,
        "only {closed} of 200 idle sockets were closed"
    );
    let metrics = testkit::get(gk.addr, "/metrics", Duration::from_secs(2))
        .await
        .expect("metrics")
        .1;
    assert!(
        metrics.contains("gatekeeper_http_connections_closed_total{reason=\"shed\"}"),
        "{metrics}"
    );
    gk.shutdown().await;
}

#[tokio::test]
async fn extension_methods_and_unmatched_paths_do_not_grow_the_metrics() {
    let gk = gatekeeper(10, 5, 100).await;
    let client = reqwest::Client::new();
    for i in 0..1000 {
        let method = reqwest::Method::from_bytes(format!("XMETHOD{i}").as_bytes()).expect("method");
        let resp = client
            .request(method, gk.url(&format!("/no-such-path-{i}")))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 404);
    }
    // An extension method on a real route is folded too.
    let resp = client
        .request(
            reqwest::Method::from_bytes(b"XPING").expect("method"),
            gk.url("/ping"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 405);
    let metrics = client
        .get(gk.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(!metrics.contains("XMETHOD"), "{metrics}");
    assert!(!metrics.contains("no-such-path"), "{metrics}");
    assert!(
        metrics.contains(
            "gatekeeper_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 1000"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "gatekeeper_http_requests_total{route=\"/ping\",method=\"other\",status=\"405\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.len() < 16 * 1024,
        "/metrics grew to {} bytes",
        metrics.len()
    );
    gk.shutdown().await;
}
