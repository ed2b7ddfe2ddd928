//! The serving loop's bounds on a two-route router: slow header senders and idle keep-alive
//! connections are closed on time, the cap sheds waiting connections so `/ping` answers, a
//! request in progress is not shed, and shutdown drains.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http_serve::{HttpLimits, ServeMetrics, serve, testkit};
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    metrics: ServeMetrics,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(header: u64, idle: u64, cap: u64) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "done"
            }),
        );
    let limits = HttpLimits {
        header_read_timeout_secs: header,
        idle_timeout_secs: idle,
        max_connections: cap,
    };
    let metrics = ServeMetrics::default();
    let (tx, rx) = oneshot::channel::<()>();
    let m = metrics.clone();
    let task = tokio::spawn(async move {
        serve(listener, router, &limits, m, async move {
            let _ = rx.await;
        })
        .await
    });
    Server {
        addr,
        metrics,
        stop: Some(tx),
        task,
    }
}

#[tokio::test]
async fn a_slow_header_sender_is_closed_at_the_header_timeout() {
    let s = start(2, 30, 100).await;
    let took =
        testkit::slow_header_sender(s.addr, Duration::from_millis(500), Duration::from_secs(8))
            .await
            .expect("connect")
            .expect("closed by the server");
    assert!(
        took >= Duration::from_millis(1500),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "closed too late: {took:?}");
    assert_eq!(s.metrics.closed("header_timeout"), 1);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let s = start(30, 1, 100).await;
    let (status, mut conn) = testkit::keep_alive_get(s.addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping");
    assert_eq!(status, 200);
    let took = testkit::closed_within(&mut conn, Duration::from_secs(5))
        .await
        .expect("closed by the server");
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(s.metrics.closed("idle_timeout"), 1);
}

#[tokio::test]
async fn a_silent_new_connection_is_closed_at_the_idle_timeout() {
    let s = start(30, 1, 100).await;
    let mut socks = testkit::idle_sockets(s.addr, 1).await.expect("connect");
    let took = testkit::closed_within(&mut socks[0], Duration::from_secs(5))
        .await
        .expect("closed by the server");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn over_the_cap_waiting_connections_are_shed_and_ping_answers() {
    // Timeouts far away: only shedding can make room.
    let s = start(60, 60, 50).await;
    let mut idle = testkit::idle_sockets(s.addr, 200).await.expect("connect");
    let started = std::time::Instant::now();
    let (status, body) = testkit::get(s.addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping answers while the cap is full");
    assert_eq!((status, body.as_str()), (200, "pong"));
    assert!(started.elapsed() < Duration::from_secs(2));
    let closed = testkit::count_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(closed >= 150, "only {closed} of 200 idle sockets were shed");
    assert!(
        s.metrics.connections.get() <= 50,
        "{}",
        s.metrics.connections.get()
    );
    assert!(s.metrics.closed("shed") >= 150);
}

#[tokio::test]
async fn a_request_in_progress_is_not_shed() {
    let s = start(60, 60, 2).await;
    let slow = tokio::spawn({
        let addr = s.addr;
        async move { testkit::get(addr, "/slow", Duration::from_secs(5)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Fill the cap with silent sockets, then more: only those are shed.
    let _idle = testkit::idle_sockets(s.addr, 20).await.expect("connect");
    let (status, body) = testkit::get(s.addr, "/ping", Duration::from_secs(2))
        .await
        .expect("ping");
    assert_eq!((status, body.as_str()), (200, "pong"));
    let (status, body) = slow.await.expect("join").expect("slow request completes");
    assert_eq!((status, body.as_str()), (200, "done"));
}

#[tokio::test]
async fn shutdown_finishes_requests_in_progress_and_stops_accepting() {
    let mut s = start(60, 60, 10).await;
    let slow = tokio::spawn({
        let addr = s.addr;
        async move { testkit::get(addr, "/slow", Duration::from_secs(5)).await }
    });
    let _idle = testkit::idle_sockets(s.addr, 3).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = s.stop.take().expect("stop").send(());
    let (status, body) = slow.await.expect("join").expect("slow request completes");
    assert_eq!((status, body.as_str()), (200, "done"));
    tokio::time::timeout(Duration::from_secs(3), s.task)
        .await
        .expect("serve returns once drained")
        .expect("join")
        .expect("serve");
    assert!(tokio::net::TcpStream::connect(s.addr).await.is_err());
}
