//! The client against our dcl-rpc server with test procedures: the server's one-item-in-flight
//! backpressure reaches the consumer, a dropped stream stops its producer, remote errors and
//! timeouts are typed and leave the connection usable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use dcl_rpc_client::{ClientConfig, RpcClient, RpcError, ServerStream};
use dcl_rpc_server::{AuthRefused, Authenticator, Module, Procedure, RpcServer, ServerConfig};
use futures_util::StreamExt;
use prost::Message;

const LIMIT: Duration = Duration::from_secs(10);

struct TestAuth;

#[async_trait]
impl Authenticator for TestAuth {
    async fn authenticate(&self, frame: &str) -> Result<String, AuthRefused> {
        frame
            .strip_prefix("user:")
            .map(str::to_owned)
            .ok_or_else(|| AuthRefused::new("bad"))
    }
}

/// Counts live producers.
struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Counters {
    produced: Arc<AtomicUsize>,
    live: Arc<AtomicUsize>,
}

async fn serve() -> (String, Counters) {
    let produced = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(AtomicUsize::new(0));
    let (p, l) = (produced.clone(), live.clone());
    let module = Module {
        name: "Test".into(),
        procedures: vec![
            (
                "Ping".into(),
                Procedure::unary(|_, _| async { Ok(().encode_to_vec()) }),
            ),
            (
                "Fail".into(),
                Procedure::unary(|_, _| async { Err(dcl_rpc_server::RpcError::new("nope")) }),
            ),
            (
                "Slow".into(),
                Procedure::unary(|_, _| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Ok(().encode_to_vec())
                }),
            ),
            (
                // 0, 1, …, 99, counting each item the producer makes.
                "Numbers".into(),
                Procedure::server_stream(move |_, _| {
                    let (produced, live) = (p.clone(), l.clone());
                    async move {
                        live.fetch_add(1, Ordering::SeqCst);
                        let guard = Live(live);
                        let s = futures_util::stream::unfold((0u32, guard), move |(i, g)| {
                            let produced = produced.clone();
                            async move {
                                if i == 100 {
                                    return None;
                                }
                                produced.fetch_add(1, Ordering::SeqCst);
                                Some((Ok(i.encode_to_vec()), (i + 1, g)))
                            }
                        });
                        Ok(s.boxed())
                    }
                }),
            ),
        ],
    };
    let server = RpcServer::builder(Arc::new(TestAuth), ServerConfig::default())
        .with_module(module)
        .build();
    let app = Router::new().route(
        "/",
        get(move |ws: WebSocketUpgrade| async move { server.upgrade(ws) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, Counters { produced, live })
}

async fn module(url: &str, config: ClientConfig) -> dcl_rpc_client::Module {
    RpcClient::connect(url, "user:0xabc", config)
        .await
        .expect("connects")
        .module("p", "Test")
        .await
        .expect("module")
}

#[tokio::test]
async fn the_server_sends_only_what_the_consumer_took_and_a_dropped_stream_stops() {
    let (url, c) = serve().await;
    let m = module(&url, ClientConfig::default()).await;
    let mut s: ServerStream<u32> = m.server_stream("Numbers", &()).await.expect("open");
    for want in 0..3 {
        assert_eq!(s.next().await.expect("ok"), Some(want));
    }
    // The consumer stops taking: the producer stops too (the 3 taken, at most one in flight
    // and the one the server holds ready).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let produced = c.produced.load(Ordering::SeqCst);
    assert!(produced <= 5, "produced {produced} while 3 were taken");
    // Taking resumes it, in order.
    for want in 3..10 {
        assert_eq!(s.next().await.expect("ok"), Some(want));
    }
    assert_eq!(c.live.load(Ordering::SeqCst), 1);
    drop(s);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while c.live.load(Ordering::SeqCst) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the producer was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.produced.load(Ordering::SeqCst) < 100);
    let _: () = m
        .call("Ping", &())
        .await
        .expect("the connection is still up");
}

#[tokio::test]
async fn a_stream_read_to_its_end_is_none() {
    let (url, _c) = serve().await;
    let m = module(&url, ClientConfig::default()).await;
    let mut s: ServerStream<u32> = m.server_stream("Numbers", &()).await.expect("open");
    let mut got = Vec::new();
    while let Some(n) = tokio::time::timeout(LIMIT, s.next())
        .await
        .expect("in time")
        .expect("ok")
    {
        got.push(n);
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert!(matches!(s.next().await, Ok(None)));
}

#[tokio::test]
async fn remote_errors_and_timeouts_are_typed_and_leave_the_connection_up() {
    let (url, _c) = serve().await;
    let config = ClientConfig {
        call_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let m = module(&url, config).await;
    match m.call::<(), ()>("Fail", &()).await {
        Err(RpcError::Remote { message, .. }) => assert_eq!(message, "nope"),
        other => panic!("{other:?}"),
    }
    match m.call::<(), ()>("Slow", &()).await {
        Err(RpcError::Timeout(d)) => assert_eq!(d, Duration::from_millis(300)),
        other => panic!("{other:?}"),
    }
    // An unknown module is an error too, not a hang.
    let e = m
        .client()
        .module("p", "NoSuchModule")
        .await
        .err()
        .expect("unknown module");
    assert!(matches!(e, RpcError::Remote { .. }), "{e:?}");
    // The late answer of Slow arrives and is dropped; calls go on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _: () = m.call("Ping", &()).await.expect("up");
    assert!(m.client().closed().is_none());
}

#[tokio::test]
async fn close_ends_the_connection_for_every_handle() {
    let (url, _c) = serve().await;
    let m = module(&url, ClientConfig::default()).await;
    let mut s: ServerStream<u32> = m.server_stream("Numbers", &()).await.expect("open");
    m.client().close().await;
    // The stream may still hand out what had arrived, then ends with Closed.
    let end = loop {
        match tokio::time::timeout(LIMIT, s.next())
            .await
            .expect("in time")
        {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(matches!(end, Err(RpcError::Closed { .. })), "{end:?}");
    let e = m.call::<(), ()>("Ping", &()).await.expect_err("closed");
    assert!(matches!(e, RpcError::Closed { .. }), "{e:?}");
}

/// A server that answers the handshake and then goes silent (no pings, no close, as after a
/// lost network): the connection is taken as dead after the idle timeout, and a waiting stream
/// learns it.
#[tokio::test]
async fn a_silent_server_is_taken_as_dead_after_the_idle_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message as M;
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("ws");
        let _auth = ws.next().await;
        ws.send(M::Binary(
            dcl_rpc_wire::Frame::server_ready().encode().into(),
        ))
        .await
        .expect("ready");
        // Read (so the client's frames are taken) but never answer.
        while let Some(Ok(_)) = ws.next().await {}
    });
    let config = ClientConfig {
        idle_timeout: Some(Duration::from_millis(400)),
        call_timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let client = RpcClient::connect(&url, "user:0xabc", config)
        .await
        .expect("connects");
    let started = tokio::time::Instant::now();
    let e = tokio::time::timeout(LIMIT, client.create_port("p"))
        .await
        .expect("ends in time")
        .err()
        .expect("no answer");
    assert!(
        matches!(e, RpcError::Timeout(d) if d == Duration::from_millis(400)),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(client.closed().is_some());
}
