//! The dcl-rpc server over a real WebSocket, driven frame by frame: handshake and buffering,
//! unary calls, acknowledged streams, cancellation (the producer is dropped), every close
//! code for bad input, and the per-connection and server-wide bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use dcl_rpc_server::{
    AuthRefused, Authenticator, CallContext, Module, Procedure, RpcError, RpcServer, ServerConfig,
};
use dcl_rpc_wire::{
    CreatePort, DestroyPort, Frame, MessageType, Request, RequestModule, StreamMessage, identifier,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const LIMIT: Duration = Duration::from_secs(10);

struct TestAuth;

#[async_trait]
impl Authenticator for TestAuth {
    async fn authenticate(&self, frame: &str) -> Result<String, AuthRefused> {
        // Slow on purpose, so that frames sent right after the auth frame must be buffered.
        tokio::time::sleep(Duration::from_millis(100)).await;
        frame
            .strip_prefix("user:")
            .map(str::to_owned)
            .ok_or_else(|| AuthRefused::new("bad"))
    }
}

/// Counts live producers, to prove a cancelled stream's producer is dropped.
struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn module(live: Arc<AtomicUsize>) -> Module {
    let forever_live = live.clone();
    Module {
        name: "Test".into(),
        procedures: vec![
            (
                "Echo".into(),
                Procedure::unary(|ctx: CallContext, p: Vec<u8>| async move {
                    let mut out = ctx.address.into_bytes();
                    out.extend(p);
                    Ok(out)
                }),
            ),
            (
                "Fail".into(),
                Procedure::unary(|_, _| async { Err(RpcError::new("nope")) }),
            ),
            (
                "Count".into(),
                Procedure::server_stream(move |_, p: Vec<u8>| {
                    let live = live.clone();
                    async move {
                        let n = p.first().copied().unwrap_or(3) as u32;
                        live.fetch_add(1, Ordering::SeqCst);
                        let guard = Live(live);
                        let s =
                            futures_util::stream::unfold((0u32, guard), move |(i, g)| async move {
                                if i == n {
                                    None
                                } else {
                                    Some((Ok(vec![i as u8]), (i + 1, g)))
                                }
                            });
                        Ok(s.boxed())
                    }
                }),
            ),
            (
                "Forever".into(),
                Procedure::server_stream(move |_, _| {
                    let live = forever_live.clone();
                    async move {
                        live.fetch_add(1, Ordering::SeqCst);
                        let guard = Live(live);
                        // One item, then nothing ever again (like an update stream).
                        let s = futures_util::stream::once(async { Ok(vec![1]) })
                            .chain(futures_util::stream::pending())
                            .map(move |item| {
                                let _ = &guard;
                                item
                            });
                        Ok(s.boxed())
                    }
                }),
            ),
            (
                "Slow".into(),
                Procedure::unary(|_, _| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(vec![])
                }),
            ),
        ],
    }
}

async fn serve(config: ServerConfig) -> (String, Arc<AtomicUsize>, RpcServer) {
    let live = Arc::new(AtomicUsize::new(0));
    let server = RpcServer::builder(Arc::new(TestAuth), config)
        .with_module(module(live.clone()))
        .build();
    let s = server.clone();
    let app = Router::new().route(
        "/",
        get(move |ws: WebSocketUpgrade| async move { s.upgrade(ws) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, live, server)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

async fn send(ws: &mut Ws, f: Frame) {
    ws.send(Message::Binary(f.encode().into()))
        .await
        .expect("send");
}

async fn next_frame(ws: &mut Ws) -> Frame {
    loop {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Binary(b))) => {
                return Frame::decode(&b).expect("server frames decode");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Close(None))) | None => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error instead of a close: {e}"),
        }
    }
}

fn create_port(n: u32) -> Frame {
    Frame::CreatePort(CreatePort {
        message_identifier: identifier(MessageType::CreatePort, n),
        port_name: "p".into(),
    })
}
fn request_module(n: u32, port: u32, name: &str) -> Frame {
    Frame::RequestModule(RequestModule {
        message_identifier: identifier(MessageType::RequestModule, n),
        port_id: port,
        module_name: name.into(),
    })
}
fn request(n: u32, port: u32, procedure: u32, payload: Vec<u8>) -> Frame {
    Frame::Request(Request {
        message_identifier: identifier(MessageType::Request, n),
        port_id: port,
        procedure_id: procedure,
        client_stream: 0,
        payload,
    })
}
fn ack(n: u32, port: u32, seq: u32) -> Frame {
    Frame::StreamAck(StreamMessage {
        message_identifier: identifier(MessageType::StreamAck, n),
        port_id: port,
        sequence_id: seq,
        payload: vec![],
        closed: false,
        ack: true,
    })
}
fn cancel(n: u32, port: u32, seq: u32) -> Frame {
    Frame::StreamMessage(StreamMessage {
        message_identifier: identifier(MessageType::StreamMessage, n),
        port_id: port,
        sequence_id: seq,
        payload: vec![],
        closed: true,
        ack: false,
    })
}

/// Authenticates and opens port 1 with module Test loaded; returns procedure ids by name.
async fn ready(url: &str, first_number: u32) -> (Ws, std::collections::HashMap<String, u32>) {
    let mut ws = connect(url).await;
    ws.send(Message::Text("user:0xabc".into()))
        .await
        .expect("auth");
    // Sent at once, before the auth check finishes: must be buffered.
    send(&mut ws, create_port(first_number)).await;
    send(&mut ws, request_module(first_number + 1, 1, "Test")).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        Frame::ServerReady { .. }
    ));
    match next_frame(&mut ws).await {
        Frame::CreatePortResponse(r) => assert_eq!(
            (r.port_id, Frame::CreatePortResponse(r.clone()).number()),
            (1, first_number)
        ),
        other => panic!("{other:?}"),
    }
    let procedures = match next_frame(&mut ws).await {
        Frame::RequestModuleResponse(r) => r
            .procedures
            .into_iter()
            .map(|p| (p.procedure_name, p.procedure_id))
            .collect(),
        other => panic!("{other:?}"),
    };
    (ws, procedures)
}

#[tokio::test]
async fn handshake_unary_calls_and_remote_errors() {
    let (url, _, _) = serve(ServerConfig::default()).await;
    // The client's counter is process-global: start far from 1.
    let (mut ws, ids) = ready(&url, 1000).await;
    assert_eq!(ids["Echo"], 1);
    send(&mut ws, request(1002, 1, ids["Echo"], b"!".to_vec())).await;
    match next_frame(&mut ws).await {
        f @ Frame::Response(_) => {
            assert_eq!(f.number(), 1002);
            let Frame::Response(r) = f else {
                unreachable!()
            };
            assert_eq!(r.payload, b"0xabc!");
        }
        other => panic!("{other:?}"),
    }
    send(&mut ws, request(1003, 1, ids["Fail"], vec![])).await;
    assert!(
        matches!(next_frame(&mut ws).await, Frame::RemoteError(e) if e.error_message == "nope")
    );
    // Unknown module, procedure and port: REMOTE_ERROR and the connection stays up.
    send(
        &mut ws,
        request_module(1004, 1, "decentraland.social_service.v2.SocialService"),
    )
    .await;
    assert!(matches!(next_frame(&mut ws).await, Frame::RemoteError(_)));
    send(&mut ws, request(1005, 1, 99, vec![])).await;
    assert!(matches!(next_frame(&mut ws).await, Frame::RemoteError(_)));
    send(&mut ws, request(1006, 7, 1, vec![])).await;
    assert!(matches!(next_frame(&mut ws).await, Frame::RemoteError(_)));
    send(&mut ws, request(1007, 1, ids["Echo"], vec![])).await;
    assert!(matches!(next_frame(&mut ws).await, Frame::Response(_)));
}

#[tokio::test]
async fn streams_wait_for_acks_and_cancel_drops_the_producer() {
    let (url, live, _) = serve(ServerConfig::default()).await;
    let (mut ws, ids) = ready(&url, 1).await;
    send(&mut ws, request(10, 1, ids["Count"], vec![3])).await;
    let mut seen = Vec::new();
    let mut seq = 0;
    loop {
        match next_frame(&mut ws).await {
            Frame::StreamMessage(m) => {
                assert_eq!(Frame::StreamMessage(m.clone()).number(), 10);
                if m.closed {
                    assert_eq!(
                        m.sequence_id,
                        seq - 1,
                        "the close repeats the last sequence"
                    );
                    break;
                }
                assert_eq!(m.sequence_id, seq);
                if seq > 0 {
                    seen.push(m.payload[0]);
                }
                // Nothing more arrives until we acknowledge.
                assert!(
                    tokio::time::timeout(Duration::from_millis(100), ws.next())
                        .await
                        .is_err()
                );
                send(&mut ws, ack(10, 1, seq)).await;
                seq += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, vec![0, 1, 2]);

    // A long stream, cancelled after the first item: the producer is dropped.
    send(&mut ws, request(20, 1, ids["Count"], vec![200])).await;
    assert!(matches!(next_frame(&mut ws).await, Frame::StreamMessage(m) if m.sequence_id == 0));
    assert_eq!(live.load(Ordering::SeqCst), 1);
    send(&mut ws, ack(20, 1, 0)).await;
    assert!(matches!(next_frame(&mut ws).await, Frame::StreamMessage(m) if m.sequence_id == 1));
    send(&mut ws, cancel(20, 1, 1)).await;
    for _ in 0..50 {
        if live.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the cancelled producer was dropped"
    );
    send(&mut ws, request(21, 1, ids["Echo"], vec![])).await;
    assert!(
        matches!(next_frame(&mut ws).await, Frame::Response(_)),
        "the connection stays up"
    );

    // Closing the connection drops a running producer too.
    send(&mut ws, request(22, 1, ids["Count"], vec![200])).await;
    let _ = next_frame(&mut ws).await;
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(ws);
    for _ in 0..50 {
        if live.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bad_input_closes_with_the_documented_codes() {
    let (url, _, server) = serve(ServerConfig {
        auth_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    // Bad auth frame: 3003.
    let mut ws = connect(&url).await;
    ws.send(Message::Text("nobody".into())).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 3003);
    // No auth frame: 3004.
    let mut ws = connect(&url).await;
    assert_eq!(close_code(&mut ws).await, 3004);
    // Garbage after auth: 1011.
    let (mut ws, _) = ready(&url, 1).await;
    ws.send(Message::Binary(vec![0xff, 0xff, 0x00].into()))
        .await
        .expect("send");
    assert_eq!(close_code(&mut ws).await, 1011);
    // Message type 0 and a server-only type: 1011.
    let (mut ws, _) = ready(&url, 1).await;
    ws.send(Message::Binary(vec![0x0d, 0, 0, 0, 0].into()))
        .await
        .expect("send");
    assert_eq!(close_code(&mut ws).await, 1011);
    let (mut ws, _) = ready(&url, 1).await;
    send(&mut ws, Frame::response(5, vec![])).await;
    assert_eq!(close_code(&mut ws).await, 1011);
    // A text frame after auth: 1011.
    let (mut ws, _) = ready(&url, 1).await;
    ws.send(Message::Text("hello".into())).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 1011);
    // An oversized frame: 1009.
    let (mut ws, ids) = ready(&url, 1).await;
    send(
        &mut ws,
        request(3, 1, ids["Echo"], vec![0; 1024 * 1024 + 1]),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 1009);
    // Shutdown: 1001.
    let (mut ws, _) = ready(&url, 1).await;
    server.shutdown();
    assert_eq!(close_code(&mut ws).await, 1001);
    let _ = CloseCode::Normal;
}

/// Reads frames until one with `number` arrives (skipping pings and other numbers).
async fn frame_numbered(ws: &mut Ws, number: u32) -> Frame {
    loop {
        let f = next_frame(ws).await;
        if f.number() == number {
            return f;
        }
    }
}

fn destroy_port(n: u32, port: u32) -> Frame {
    Frame::DestroyPort(DestroyPort {
        message_identifier: identifier(MessageType::DestroyPort, n),
        port_id: port,
    })
}

#[tokio::test]
async fn a_repeated_request_module_answers_the_same_procedure_ids() {
    let (url, _, _) = serve(ServerConfig::default()).await;
    let (mut ws, ids) = ready(&url, 1).await;
    let mut first: Vec<(String, u32)> = ids.into_iter().collect();
    first.sort();
    // Thousands of REQUEST_MODULE for the same module on the same port, sent in one go.
    const N: u32 = 5_000;
    for i in 0..N {
        ws.feed(Message::Binary(
            request_module(100 + i, 1, "Test").encode().into(),
        ))
        .await
        .expect("feed");
    }
    ws.flush().await.expect("flush");
    let mut answered = 0;
    while answered < N {
        match next_frame(&mut ws).await {
            Frame::RequestModuleResponse(r) => {
                let mut got: Vec<(String, u32)> = r
                    .procedures
                    .into_iter()
                    .map(|p| (p.procedure_name, p.procedure_id))
                    .collect();
                got.sort();
                assert_eq!(got, first, "a repeat answers the ids of the first time");
                answered += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    // Procedure ids beyond the module's are unknown: nothing was registered again.
    let beyond = first.len() as u32 + 1;
    send(&mut ws, request(200_000, 1, beyond, vec![])).await;
    assert!(
        matches!(frame_numbered(&mut ws, 200_000).await, Frame::RemoteError(e) if e.error_message.contains("Unknown procedure"))
    );
    send(&mut ws, request(200_001, 1, 1, b"?".to_vec())).await;
    assert!(matches!(
        frame_numbered(&mut ws, 200_001).await,
        Frame::Response(_)
    ));
}

#[tokio::test]
async fn ports_beyond_the_cap_are_refused_and_destroy_port_frees_one() {
    let (url, _, _) = serve(ServerConfig {
        max_ports_per_connection: 3,
        ..ServerConfig::default()
    })
    .await;
    let (mut ws, _) = ready(&url, 1).await; // port 1
    for n in [10, 11] {
        send(&mut ws, create_port(n)).await;
        assert!(matches!(
            frame_numbered(&mut ws, n).await,
            Frame::CreatePortResponse(_)
        ));
    }
    send(&mut ws, create_port(12)).await;
    match frame_numbered(&mut ws, 12).await {
        Frame::RemoteError(e) => assert_eq!(
            e.error_message,
            "Too many ports on this connection (limit 3)"
        ),
        other => panic!("{other:?}"),
    }
    send(&mut ws, destroy_port(13, 2)).await;
    send(&mut ws, create_port(14)).await;
    assert!(matches!(
        frame_numbered(&mut ws, 14).await,
        Frame::CreatePortResponse(_)
    ));
}

#[tokio::test]
async fn streams_beyond_the_cap_are_refused_with_a_clear_error() {
    let (url, live, server) = serve(ServerConfig::default()).await;
    let (mut ws, ids) = ready(&url, 1).await;
    // The default cap is 64 open streams per connection.
    for n in 0..64 {
        send(&mut ws, request(100 + n, 1, ids["Count"], vec![200])).await;
        assert!(matches!(
            frame_numbered(&mut ws, 100 + n).await,
            Frame::StreamMessage(m) if m.sequence_id == 0
        ));
    }
    assert_eq!(live.load(Ordering::SeqCst), 64);
    send(&mut ws, request(500, 1, ids["Count"], vec![200])).await;
    match frame_numbered(&mut ws, 500).await {
        Frame::RemoteError(e) => assert_eq!(
            e.error_message,
            "Too many open streams on this connection (limit 64)"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.active_streams(), 64);
    // Reusing the number of an open stream is refused too.
    send(&mut ws, request(100, 1, ids["Count"], vec![200])).await;
    assert!(matches!(
        frame_numbered(&mut ws, 100).await,
        Frame::RemoteError(e) if e.error_message == "Stream 100 is already open"
    ));
    // Cancelling one frees its place; unary calls still work meanwhile.
    send(&mut ws, cancel(100, 1, 0)).await;
    send(&mut ws, request(501, 1, ids["Echo"], vec![])).await;
    assert!(matches!(
        frame_numbered(&mut ws, 501).await,
        Frame::Response(_)
    ));
    send(&mut ws, request(502, 1, ids["Count"], vec![1])).await;
    assert!(matches!(
        frame_numbered(&mut ws, 502).await,
        Frame::StreamMessage(m) if m.sequence_id == 0
    ));
    // A stream that ends frees its place as well.
    send(&mut ws, ack(502, 1, 0)).await;
    assert!(
        matches!(frame_numbered(&mut ws, 502).await, Frame::StreamMessage(m) if m.sequence_id == 1)
    );
    send(&mut ws, ack(502, 1, 1)).await;
    assert!(matches!(frame_numbered(&mut ws, 502).await, Frame::StreamMessage(m) if m.closed));
    let mut opened = false;
    for attempt in 0..50 {
        send(&mut ws, request(600 + attempt, 1, ids["Count"], vec![200])).await;
        match frame_numbered(&mut ws, 600 + attempt).await {
            Frame::StreamMessage(_) => {
                opened = true;
                break;
            }
            Frame::RemoteError(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("{other:?}"),
        }
    }
    assert!(opened, "the ended stream's place is free again");
    // Destroying the port drops every producer at once.
    send(&mut ws, destroy_port(700, 1)).await;
    for _ in 0..100 {
        if live.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live.load(Ordering::SeqCst), 0);
    assert_eq!(server.active_streams(), 0);
}

#[tokio::test]
async fn calls_in_progress_beyond_the_cap_are_refused() {
    let (url, _, _) = serve(ServerConfig {
        max_calls_per_connection: 8,
        ..ServerConfig::default()
    })
    .await;
    let (mut ws, ids) = ready(&url, 1).await;
    for n in 0..8 {
        send(&mut ws, request(100 + n, 1, ids["Slow"], vec![])).await;
    }
    send(&mut ws, request(200, 1, ids["Echo"], vec![])).await;
    match frame_numbered(&mut ws, 200).await {
        Frame::RemoteError(e) => assert_eq!(
            e.error_message,
            "Too many calls in progress on this connection (limit 8)"
        ),
        other => panic!("{other:?}"),
    }
    // Streams are counted apart.
    send(&mut ws, request(201, 1, ids["Count"], vec![1])).await;
    assert!(matches!(
        frame_numbered(&mut ws, 201).await,
        Frame::StreamMessage(_)
    ));
}

#[tokio::test]
async fn connections_beyond_the_server_cap_are_refused_while_others_are_served() {
    let (url, _, server) = serve(ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    })
    .await;
    let (mut a, ids) = ready(&url, 1).await;
    let (_b, _) = ready(&url, 1).await;
    for _ in 0..3 {
        let mut c = connect(&url).await;
        // The refused client sends its auth frame and more at once, as a real client would.
        c.send(Message::Text("user:0xdef".into()))
            .await
            .expect("auth");
        for n in 0..300 {
            let _ = c.feed(Message::Binary(padded(n + 1).encode().into())).await;
        }
        let _ = c.flush().await;
        assert_eq!(clean_close(&mut c).await, 1013);
    }
    send(&mut a, request(50, 1, ids["Echo"], b"!".to_vec())).await;
    assert!(matches!(
        frame_numbered(&mut a, 50).await,
        Frame::Response(r) if r.payload == b"0xabc!"
    ));
    assert_eq!(server.connections(), 2);
}

/// Reads until a close frame; a failed write before it (the server stopped reading an
/// oversized frame) is fine, a reset instead of the close frame is not.
async fn close_code_after_oversized(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Close(None))) => return 1005,
            None => return 1006,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error instead of a close frame (1006): {e}"),
        }
    }
}

/// Reads until a close frame, then on to the end of the connection, which must come without a
/// TCP reset (a reset is what a client may see as 1006 instead of the close frame). Returns the
/// close code.
async fn clean_close(ws: &mut Ws) -> u16 {
    let code = close_code_after_oversized(ws).await;
    loop {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("the end in time")
        {
            None => return code,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the connection was reset after the close frame {code}: {e}"),
        }
    }
}

/// A REQUEST frame of about 1 KiB.
fn padded(n: u32) -> Frame {
    request(n, 1, 1, vec![0; 1024])
}

#[tokio::test]
async fn an_oversized_auth_frame_gets_a_1009_close_frame() {
    let (url, _, _) = serve(ServerConfig::default()).await;
    // Just over the limit: read whole, then refused.
    let mut ws = connect(&url).await;
    let big = format!("user:{}", "a".repeat(1024 * 1024));
    let _ = ws.send(Message::Text(big.into())).await;
    // More frames follow at once; the server reads them until our close frame.
    for n in 0..200 {
        let _ = ws
            .feed(Message::Binary(padded(n + 1).encode().into()))
            .await;
    }
    let _ = ws.flush().await;
    assert_eq!(clean_close(&mut ws).await, 1009);
    // Far over the limit: refused from the frame header.
    let mut ws = connect(&url).await;
    let huge = vec![b'a'; 4 * 1024 * 1024];
    let _ = ws.send(Message::Binary(huge.into())).await;
    assert_eq!(close_code_after_oversized(&mut ws).await, 1009);
}

#[tokio::test]
async fn frames_beyond_the_buffer_before_the_verdict_get_a_1013_close_frame() {
    let (url, _, _) = serve(ServerConfig::default()).await;
    for _ in 0..3 {
        let mut ws = connect(&url).await;
        ws.send(Message::Text("user:0xabc".into()))
            .await
            .expect("auth");
        // The verdict takes 100 ms; 300 frames at once overflow the buffer of 64 frames.
        for n in 0..300 {
            if ws
                .feed(Message::Binary(padded(n + 1).encode().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = ws.flush().await;
        assert_eq!(clean_close(&mut ws).await, 1013);
    }
}

#[tokio::test]
async fn no_producer_outlives_its_connection_even_when_a_stream_number_is_reused() {
    let (url, live, server) = serve(ServerConfig::default()).await;
    let (mut ws, ids) = ready(&url, 1).await;
    // A stream whose producer waits for updates forever once its first item is acknowledged.
    send(&mut ws, request(5, 1, ids["Forever"], vec![])).await;
    assert!(
        matches!(frame_numbered(&mut ws, 5).await, Frame::StreamMessage(m) if m.sequence_id == 0)
    );
    send(&mut ws, ack(5, 1, 0)).await;
    assert!(
        matches!(frame_numbered(&mut ws, 5).await, Frame::StreamMessage(m) if m.sequence_id == 1)
    );
    send(&mut ws, ack(5, 1, 1)).await;
    // The same number again: refused, the first stream stays tracked.
    send(&mut ws, request(5, 1, ids["Forever"], vec![])).await;
    let answer = frame_numbered(&mut ws, 5).await;
    drop(ws);
    for _ in 0..100 {
        if live.load(Ordering::SeqCst) == 0 && server.active_streams() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live.load(Ordering::SeqCst), 0, "every producer was dropped");
    assert_eq!(server.active_streams(), 0);
    assert!(
        matches!(&answer, Frame::RemoteError(e) if e.error_message == "Stream 5 is already open"),
        "{answer:?}"
    );
}
